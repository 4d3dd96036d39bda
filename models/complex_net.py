"""A small complex-valued network on PyTorch's native complex tensors (``torch.cfloat``).

The weights, activations and mask are complex numbers throughout (no real/imaginary channel pairs):

1. features: the power-law compressed noisy spectrum ``Y_c = Y / |Y|^0.7`` per frame, ``(B, T, 257)`` complex;
2. ``layers`` causal complex 1-D convolutions along time (kernel ``kernel``, dilation doubling, padding on
   the past side only), each followed by a complex ReLU (ReLU on real and imaginary parts) and a residual;
3. a complex linear layer to 257 outputs: the complex mask ``M``, bounded in magnitude by
   ``M' = tanh(|M|) M / |M|`` (phase kept);
4. output spectrum ``Ŝ = M' · Y``.

No normalisation and no look-ahead, so it is causal by construction. Shapes: ``(B, 257, T, 2)`` in and out.

Streaming: ``forward(spec, state)`` with a dict carries each convolution's last ``(kernel - 1) * dilation``
input frames from one block of frames to the next (an empty dict starts from zeros, as the whole-utterance
call does), so any split into blocks gives the whole-utterance output.
"""

from __future__ import annotations

import torch
from torch import nn


class _ComplexCausalConv(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.past = (kernel - 1) * dilation
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, dtype=torch.cfloat)

    def forward(self, x: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        past = None if state is None else state.get((id(self), "past"))
        x_ = nn.functional.pad(x, (self.past, 0)) if past is None else torch.cat([past, x], dim=-1)
        if state is not None:
            state[(id(self), "past")] = x_[..., x_.shape[-1] - self.past:]
        y = self.conv(x_)
        return x + torch.complex(torch.relu(y.real), torch.relu(y.imag))


class ComplexNet(nn.Module):
    """Complex-valued causal mask network.

    Args:
        hidden: complex channels of the hidden layers.
        layers: number of causal complex convolutions (dilations 1, 2, 4, ...).
        kernel: their kernel size in frames.
    """

    def __init__(self, hidden: int = 64, layers: int = 4, kernel: int = 3, bins: int = 257):
        super().__init__()
        self.hidden, self.layers, self.kernel = hidden, layers, kernel
        self.inp = nn.Linear(bins, hidden, dtype=torch.cfloat)
        self.convs = nn.ModuleList(_ComplexCausalConv(hidden, kernel, 2 ** i) for i in range(layers))
        self.out = nn.Linear(hidden, bins, dtype=torch.cfloat)

    def forward(self, spec: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        """``state``: ``None`` for a whole utterance; a dict (empty at the start) to run a stream of blocks."""
        y = torch.view_as_complex(spec.contiguous())                  # (B, F, T)
        mag = torch.sqrt(y.real ** 2 + y.imag ** 2 + 1e-12)
        feat = (y / mag.pow(0.7)).transpose(1, 2)                     # (B, T, F)
        h = self.inp(feat).transpose(1, 2)                           # (B, H, T)
        for conv in self.convs:
            h = conv(h, state)
        m = self.out(h.transpose(1, 2)).transpose(1, 2)              # (B, F, T)
        m_mag = torch.sqrt(m.real ** 2 + m.imag ** 2 + 1e-12)
        mask = m * (torch.tanh(m_mag) / m_mag)
        return torch.view_as_real(mask * y)


def _pair(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return z.real.detach().clone(), z.imag.detach().clone()


class RealValuedComplexNet(nn.Module):
    """:class:`ComplexNet`'s computation in real arithmetic (real/imaginary pairs), for ONNX, which has no
    complex tensors. Built from a trained :class:`ComplexNet`; its weights are that network's, split.

    With ``z = a + jb`` and complex weights ``W = Wr + jWi`` (no conjugation, as torch's complex layers):

    * linear: ``Wz + c = (Wr a - Wi b + cr) + j(Wi a + Wr b + ci)``;
    * convolution: the same with ``*`` (cross-correlation) in place of the matrix product;
    * complex ReLU: ReLU of each part; the features ``Y / |Y|^0.7`` and the mask bound
      ``tanh(|M|) M / |M|`` divide both parts by the same real number;
    * output ``M'Y = (Mr Yr - Mi Yi) + j(Mr Yi + Mi Yr)``.

    Shapes as :class:`ComplexNet`: ``(B, 257, T, 2)`` in and out.
    """

    def __init__(self, net: ComplexNet):
        super().__init__()
        self.inp_wr, self.inp_wi = (nn.Parameter(w, requires_grad=False) for w in _pair(net.inp.weight))
        self.inp_br, self.inp_bi = (nn.Parameter(b, requires_grad=False) for b in _pair(net.inp.bias))
        self.out_wr, self.out_wi = (nn.Parameter(w, requires_grad=False) for w in _pair(net.out.weight))
        self.out_br, self.out_bi = (nn.Parameter(b, requires_grad=False) for b in _pair(net.out.bias))
        self.conv_w = nn.ParameterList()
        self.conv_b = nn.ParameterList()
        self.pasts, self.dilations = [], []
        for conv in net.convs:
            for part in _pair(conv.conv.weight):
                self.conv_w.append(nn.Parameter(part, requires_grad=False))
            for part in _pair(conv.conv.bias):
                self.conv_b.append(nn.Parameter(part, requires_grad=False))
            self.pasts.append(conv.past)
            self.dilations.append(conv.conv.dilation[0])

    @staticmethod
    def _linear(ar, ai, wr, wi, br, bi):
        f = nn.functional.linear
        return f(ar, wr) - f(ai, wi) + br, f(ar, wi) + f(ai, wr) + bi

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        yr, yi = spec[..., 0], spec[..., 1]                          # (B, F, T) each
        scale = torch.sqrt(yr ** 2 + yi ** 2 + 1e-12).pow(0.7)
        fr, fi = (yr / scale).transpose(1, 2), (yi / scale).transpose(1, 2)
        hr, hi = self._linear(fr, fi, self.inp_wr, self.inp_wi, self.inp_br, self.inp_bi)
        hr, hi = hr.transpose(1, 2), hi.transpose(1, 2)              # (B, H, T)
        conv = nn.functional.conv1d
        for k, (past, dilation) in enumerate(zip(self.pasts, self.dilations)):
            wr, wi = self.conv_w[2 * k], self.conv_w[2 * k + 1]
            br, bi = self.conv_b[2 * k], self.conv_b[2 * k + 1]
            pr, pi = nn.functional.pad(hr, (past, 0)), nn.functional.pad(hi, (past, 0))
            cr = conv(pr, wr, dilation=dilation) - conv(pi, wi, dilation=dilation) + br[:, None]
            ci = conv(pr, wi, dilation=dilation) + conv(pi, wr, dilation=dilation) + bi[:, None]
            hr, hi = hr + torch.relu(cr), hi + torch.relu(ci)
        mr, mi = self._linear(hr.transpose(1, 2), hi.transpose(1, 2), self.out_wr, self.out_wi,
                              self.out_br, self.out_bi)
        mr, mi = mr.transpose(1, 2), mi.transpose(1, 2)              # (B, F, T)
        m_mag = torch.sqrt(mr ** 2 + mi ** 2 + 1e-12)
        bound = torch.tanh(m_mag) / m_mag
        mr, mi = mr * bound, mi * bound
        return torch.stack([mr * yr - mi * yi, mr * yi + mi * yr], dim=-1)
