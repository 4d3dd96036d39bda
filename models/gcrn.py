"""GCRN-style complex spectral mapping: one convolutional encoder, an LSTM, two decoders (real and imaginary).

After Tan & Wang's gated convolutional recurrent network for complex spectral mapping (2019/2020): the
network maps the noisy spectrum's real and imaginary parts directly to the clean ones (no mask). This is a
small, ungated variant written for training on a laptop; causal by construction:

* convolutions are ``(2, 3)`` (time, frequency) with one frame of padding on the *past* side only;
* frequency is halved by stride 2 at every encoder layer (257 -> 128 -> 63 -> 31 -> 15 -> 7), time never;
* the LSTM across frames is unidirectional;
* transposed convolutions along time produce ``T + 1`` frames; the last one (which would need the next
  input frame) is dropped;
* no normalisation layers (nothing averages over time).

Shapes: input and output ``(B, F=257, T, 2)`` real/imaginary of a 512-point STFT (hop 256), like GTCRN.

Streaming: ``forward(spec, state)`` with a dict carries each convolution's and transposed convolution's
previous input frame and the LSTM's ``(h, c)`` from one block of frames to the next; an empty dict starts
from zeros exactly as the whole-utterance call (``state=None``) does, so any split of the frames into
blocks gives the whole-utterance output.
"""

from __future__ import annotations

import torch
from torch import nn

#: Frequency sizes after each encoder layer for 257 bins (kernel 3, stride 2, no frequency padding).
_FREQS = (257, 128, 63, 31, 15, 7)


class _CausalConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, (2, 3), stride=(1, 2))
        self.act = nn.ELU()

    def forward(self, x: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        # the frame before the first: zeros, or (streaming) the previous block's last frame
        past = None if state is None else state.get((id(self), "past"))
        x_ = nn.functional.pad(x, (0, 0, 1, 0)) if past is None else torch.cat([past, x], dim=2)
        if state is not None:
            state[(id(self), "past")] = x[:, :, -1:]
        return self.act(self.conv(x_))


class _CausalDeconv(nn.Module):
    def __init__(self, cin: int, cout: int, out_freq: int, last: bool = False):
        super().__init__()
        self.out_freq = out_freq
        self.conv = nn.ConvTranspose2d(cin, cout, (2, 3), stride=(1, 2))
        self.act = nn.Identity() if last else nn.ELU()

    def forward(self, x: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        t = x.shape[2]
        past = None if state is None else state.get((id(self), "past"))
        if past is None:
            y = self.conv(x)[:, :, :t]              # drop the frame that would look ahead
        else:                                       # output t = W0 x[t] + W1 x[t-1]: the previous frame's share
            y = self.conv(torch.cat([past, x], dim=2))[:, :, 1:t + 1]
        if state is not None:
            state[(id(self), "past")] = x[:, :, -1:]
        f = y.shape[-1]
        if f < self.out_freq:                        # 63 -> 127 needs one more bin to meet 128
            y = nn.functional.pad(y, (0, self.out_freq - f))
        return self.act(y[..., :self.out_freq])


class _Decoder(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        c = channels
        outs = [c, c, c, c, 1]
        self.layers = nn.ModuleList(
            _CausalDeconv(2 * c, outs[i], _FREQS[4 - i], last=(i == 4)) for i in range(5))

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor], state: dict | None = None) -> torch.Tensor:
        for layer, skip in zip(self.layers, reversed(skips)):
            x = layer(torch.cat([x, skip], dim=1), state)
        return x[:, 0]                               # (B, T, F)


class GCRN(nn.Module):
    """Complex spectral mapping network (``(B, 257, T, 2)`` -> ``(B, 257, T, 2)``).

    Args:
        channels: convolution channels of every encoder/decoder layer.
        hidden: LSTM hidden size (its input and output are ``channels * 7`` features per frame).
    """

    def __init__(self, channels: int = 16, hidden: int = 128):
        super().__init__()
        self.channels, self.hidden = channels, hidden
        c = channels
        self.encoder = nn.ModuleList(_CausalConv(2 if i == 0 else c, c) for i in range(5))
        width = c * _FREQS[-1]
        self.lstm = nn.LSTM(width, hidden, batch_first=True)
        self.project = nn.Linear(hidden, width)
        self.decoder_real = _Decoder(c)
        self.decoder_imag = _Decoder(c)

    def forward(self, spec: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        """``state``: ``None`` for a whole utterance; a dict (empty at the start) to run a stream of blocks."""
        x = spec.permute(0, 3, 2, 1)                 # (B, 2, T, F)
        skips = []
        for layer in self.encoder:
            x = layer(x, state)
            skips.append(x)
        b, c, t, f = x.shape
        seq = x.permute(0, 2, 1, 3).reshape(b, t, c * f)
        seq, hc = self.lstm(seq, None if state is None else state.get((id(self), "lstm")))
        if state is not None:
            state[(id(self), "lstm")] = hc
        x = self.project(seq).reshape(b, t, c, f).permute(0, 2, 1, 3)
        real = self.decoder_real(x, skips, state)
        imag = self.decoder_imag(x, skips, state)
        return torch.stack([real, imag], dim=-1).transpose(1, 2)   # (B, F, T, 2)
