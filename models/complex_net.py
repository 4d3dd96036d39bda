"""A small complex-valued network on PyTorch's native complex tensors (``torch.cfloat``).

The weights, activations and mask are complex numbers throughout (no real/imaginary channel pairs):

1. features: the power-law compressed noisy spectrum ``Y_c = Y / |Y|^0.7`` per frame, ``(B, T, 257)`` complex;
2. ``layers`` causal complex 1-D convolutions along time (kernel ``kernel``, dilation doubling, padding on
   the past side only), each followed by a complex ReLU (ReLU on real and imaginary parts) and a residual;
3. a complex linear layer to 257 outputs: the complex mask ``M``, bounded in magnitude by
   ``M' = tanh(|M|) M / |M|`` (phase kept);
4. output spectrum ``Ŝ = M' · Y``.

No normalisation and no look-ahead, so it is causal by construction. Shapes: ``(B, 257, T, 2)`` in and out.
"""

from __future__ import annotations

import torch
from torch import nn


class _ComplexCausalConv(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.past = (kernel - 1) * dilation
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, dtype=torch.cfloat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(nn.functional.pad(x, (self.past, 0)))
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

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        y = torch.view_as_complex(spec.contiguous())                  # (B, F, T)
        mag = torch.sqrt(y.real ** 2 + y.imag ** 2 + 1e-12)
        feat = (y / mag.pow(0.7)).transpose(1, 2)                     # (B, T, F)
        h = self.inp(feat).transpose(1, 2)                           # (B, H, T)
        for conv in self.convs:
            h = conv(h)
        m = self.out(h.transpose(1, 2)).transpose(1, 2)              # (B, F, T)
        m_mag = torch.sqrt(m.real ** 2 + m.imag ** 2 + 1e-12)
        mask = m * (torch.tanh(m_mag) / m_mag)
        return torch.view_as_real(mask * y)
