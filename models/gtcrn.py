"""GTCRN: grouped temporal convolutional recurrent network (Rong et al., ICASSP 2024).

A 48.2 k-parameter causal complex-ratio-mask model at 16 kHz. This is an independent PyTorch
implementation written from the paper's description and the parameter names and shapes in the
authors' public checkpoints (``model_trained_on_dns3.tar`` / ``model_trained_on_vctk.tar``), so that
those checkpoints load with ``load_state_dict(strict=True)``.

Signal path (shapes for batch ``B``, frames ``T``, 257 STFT bins):

1. STFT: 512-point, hop 256, periodic sqrt-Hann window, ``torch.stft(center=True)`` (reflect padding).
   The network sees ``(B, 257, T, 2)`` real/imag.
2. Features ``(B, 3, T, 257)``: magnitude ``sqrt(re^2 + im^2 + 1e-12)``, real, imaginary.
3. ERB band merging: bins 0..64 kept, bins 65..256 mapped onto 64 ERB bands by a fixed triangular
   filterbank -> ``(B, 3, T, 129)``.
4. SFE (subband feature extraction): each frequency gets its two neighbours stacked as channels
   (unfold with kernel 3 along frequency) -> ``(B, 9, T, 129)``.
5. Encoder: two strided ConvBlocks (frequency 129 -> 65 -> 33) and three GTConvBlocks (grouped
   temporal convolution, dilations 1, 2, 5 along time, causal padding) -> ``(B, 16, T, 33)``.
6. Two DPGRNN blocks: grouped bidirectional GRU across frequency (intra-frame), grouped
   unidirectional GRU across time (inter-frame), each with a linear layer, LayerNorm and residual.
7. Decoder mirrors the encoder with transposed convolutions and additive skip connections, ends in
   Tanh -> a complex ratio mask on 129 bands, split back to 257 bins by the transposed filterbank.
8. Output spectrum = mask * input spectrum (complex multiplication), inverse STFT to the input length.

Every operation along time is causal, so the model is causal; the whole-utterance path with a centred
STFT and its exact inverse has no output delay.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.core.threads import threads_from_env
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.errors import ModelError

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256


# --------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------

def _hz_to_erb(freq_hz: np.ndarray | float) -> np.ndarray | float:
    """ERB-rate scale (Glasberg & Moore): ``21.4 * log10(1 + 0.00437 f)``."""
    return 21.4 * np.log10(0.00437 * np.asarray(freq_hz) + 1.0)


def _erb_to_hz(erb: np.ndarray | float) -> np.ndarray | float:
    return (10.0 ** (np.asarray(erb) / 21.4) - 1.0) / 0.00437


def erb_filterbank(low_bins: int = 65, bands: int = 64, n_fft: int = 512, high_hz: float = 8000.0,
                   sample_rate: int = 16000) -> np.ndarray:
    """Triangular ERB filterbank for the bins above ``low_bins``.

    Band edges are ``bands`` points equally spaced on the ERB-rate scale between the frequency of bin
    ``low_bins`` and ``high_hz``, rounded to FFT bins. Neighbouring triangles overlap so their sum is 1
    across the covered range (the last band is completed to 1 up to Nyquist).

    Returns:
        float32 ``(bands, n_fft // 2 + 1 - low_bins)``: row ``b`` weights the high bins for band ``b``.
    """
    n_bins = n_fft // 2 + 1
    edges_erb = np.linspace(_hz_to_erb(low_bins / n_fft * sample_rate), _hz_to_erb(high_hz), bands)
    edges = np.round(_erb_to_hz(edges_erb) / sample_rate * n_fft).astype(int)
    fb = np.zeros((bands, n_bins), np.float32)
    eps = 1e-12

    def rising(a: int, b: int) -> np.ndarray:
        return (np.arange(a, b) - a + eps) / (b - a + eps)

    def falling(a: int, b: int) -> np.ndarray:
        return (b - np.arange(a, b) + eps) / (b - a + eps)

    fb[0, edges[0]:edges[1]] = falling(edges[0], edges[1])
    for i in range(bands - 2):
        fb[i + 1, edges[i]:edges[i + 1]] = rising(edges[i], edges[i + 1])
        fb[i + 1, edges[i + 1]:edges[i + 2]] = falling(edges[i + 1], edges[i + 2])
    # The top band takes whatever the band below leaves, up to and including the last edge bin.
    fb[-1, edges[-2]:edges[-1] + 1] = 1.0 - fb[-2, edges[-2]:edges[-1] + 1]
    return np.abs(fb[:, low_bins:])


class ERB(nn.Module):
    """Band merging (``bm``) and splitting (``bs``) on the last axis; low bins pass through untouched."""

    def __init__(self, low_bins: int = 65, bands: int = 64, n_fft: int = 512, high_hz: float = 8000.0,
                 sample_rate: int = 16000):
        super().__init__()
        fb = torch.from_numpy(erb_filterbank(low_bins, bands, n_fft, high_hz, sample_rate))
        self.low_bins = low_bins
        high = n_fft // 2 + 1 - low_bins
        self.erb_fc = nn.Linear(high, bands, bias=False)
        self.ierb_fc = nn.Linear(bands, high, bias=False)
        # Fixed (not trained) projections; they are stored in the checkpoint all the same.
        self.erb_fc.weight = nn.Parameter(fb, requires_grad=False)
        self.ierb_fc.weight = nn.Parameter(fb.T.contiguous(), requires_grad=False)

    def bm(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., 257)`` -> ``(..., 129)``."""
        return torch.cat([x[..., :self.low_bins], self.erb_fc(x[..., self.low_bins:])], dim=-1)

    def bs(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., 129)`` -> ``(..., 257)``."""
        return torch.cat([x[..., :self.low_bins], self.ierb_fc(x[..., self.low_bins:])], dim=-1)


class SFE(nn.Module):
    """Subband feature extraction: stack each frequency with its ``kernel - 1`` neighbours as channels.

    ``(B, C, T, F)`` -> ``(B, C * kernel, T, F)``; channel ``c * kernel + k`` holds frequency ``f + k - 1``
    of input channel ``c`` (zero outside the band).
    """

    def __init__(self, kernel: int = 3):
        super().__init__()
        self.kernel = kernel
        self.unfold = nn.Unfold(kernel_size=(1, kernel), stride=(1, 1), padding=(0, (kernel - 1) // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, f = x.shape
        return self.unfold(x).reshape(b, c * self.kernel, t, f)


class TRA(nn.Module):
    """Temporal recurrent attention: a per-channel gain over time from the frame energy.

    ``z[b, c, t] = mean_f x^2``; ``a = sigmoid(Linear(GRU(z)))``; output ``x * a[..., None]``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.att_gru = nn.GRU(channels, channels * 2, 1, batch_first=True)
        self.att_fc = nn.Linear(channels * 2, channels)
        self.att_act = nn.Sigmoid()

    def forward(self, x: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        energy = x.pow(2).mean(dim=-1).transpose(1, 2)          # (B, T, C)
        key = (id(self), "gru")
        seq, h = self.att_gru(energy, None if state is None else state.get(key))
        if state is not None:
            state[key] = h
        gain = self.att_act(self.att_fc(seq))                   # (B, T, C)
        return x * gain.transpose(1, 2)[..., None]


class ConvBlock(nn.Module):
    """(Transposed) convolution -> BatchNorm -> PReLU (or Tanh for the mask output)."""

    def __init__(self, cin: int, cout: int, kernel, stride, padding, groups: int = 1,
                 transposed: bool = False, last: bool = False):
        super().__init__()
        conv = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.conv = conv(cin, cout, kernel, stride, padding, groups=groups)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.Tanh() if last else nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class GTConvBlock(nn.Module):
    """Grouped temporal convolution block.

    The channels are split in two halves. The first half goes through SFE, a pointwise conv, a causal
    dilated depthwise conv along time (padding ``(3 - 1) * dilation`` frames on the past side only),
    a pointwise conv and TRA; the second half is untouched. The halves are then interleaved channel by
    channel (channel shuffle: out channel ``2c`` from the processed half, ``2c + 1`` from the other).
    """

    def __init__(self, channels: int, hidden: int, kernel, padding, dilation, transposed: bool = False):
        super().__init__()
        conv = nn.ConvTranspose2d if transposed else nn.Conv2d
        half = channels // 2
        self.past_pad = (kernel[0] - 1) * dilation[0]
        self.sfe = SFE(3)
        self.point_conv1 = conv(half * 3, hidden, 1)
        self.point_bn1 = nn.BatchNorm2d(hidden)
        self.point_act = nn.PReLU()
        self.depth_conv = conv(hidden, hidden, kernel, stride=1, padding=padding, dilation=dilation,
                               groups=hidden)
        self.depth_bn = nn.BatchNorm2d(hidden)
        self.depth_act = nn.PReLU()
        self.point_conv2 = conv(hidden, half, 1)
        self.point_bn2 = nn.BatchNorm2d(half)
        self.tra = TRA(half)

    def forward(self, x: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        """``state`` (streaming): carries the last ``past_pad`` frames and the TRA hidden state between
        calls; ``None`` starts from silence (zeros), exactly like the first call of a stream."""
        x1, x2 = torch.chunk(x, 2, dim=1)
        h = self.point_act(self.point_bn1(self.point_conv1(self.sfe(x1))))
        key = (id(self), "past")
        past = None if state is None else state.get(key)
        if past is None:
            h = nn.functional.pad(h, [0, 0, self.past_pad, 0])
        else:
            h = torch.cat([past, h], dim=2)
        if state is not None:
            state[key] = h[:, :, h.shape[2] - self.past_pad:]
        h = self.depth_act(self.depth_bn(self.depth_conv(h)))
        h = self.tra(self.point_bn2(self.point_conv2(h)), state)
        b, c, t, f = h.shape
        return torch.stack([h, x2], dim=2).reshape(b, 2 * c, t, f)


class GroupedGRU(nn.Module):
    """Two GRUs, each on half of the features (``rnn1`` first half, ``rnn2`` second half)."""

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool):
        super().__init__()
        self.rnn1 = nn.GRU(input_size // 2, hidden_size // 2, 1, batch_first=True, bidirectional=bidirectional)
        self.rnn2 = nn.GRU(input_size // 2, hidden_size // 2, 1, batch_first=True, bidirectional=bidirectional)

    def forward(self, x: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        x1, x2 = torch.chunk(x, 2, dim=-1)
        outs = []
        for rnn, part in ((self.rnn1, x1), (self.rnn2, x2)):
            key = (id(rnn), "h")
            seq, h = rnn(part, None if state is None else state.get(key))
            if state is not None:
                state[key] = h
            outs.append(seq)
        return torch.cat(outs, dim=-1)


class DPGRNN(nn.Module):
    """Dual-path grouped RNN on ``(B, C, T, F)``: intra-frame across F (bidirectional), then
    inter-frame across T (causal), each followed by Linear, LayerNorm over ``(F, C)`` and a residual."""

    def __init__(self, channels: int, width: int, hidden: int):
        super().__init__()
        self.width, self.hidden = width, hidden
        self.intra_rnn = GroupedGRU(channels, hidden // 2, bidirectional=True)
        self.intra_fc = nn.Linear(hidden, hidden)
        self.intra_ln = nn.LayerNorm((width, hidden), eps=1e-8)
        self.inter_rnn = GroupedGRU(channels, hidden, bidirectional=False)
        self.inter_fc = nn.Linear(hidden, hidden)
        self.inter_ln = nn.LayerNorm((width, hidden), eps=1e-8)

    def forward(self, x: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        b, c, t, f = x.shape
        x = x.permute(0, 2, 3, 1)                                   # (B, T, F, C)
        intra = self.intra_fc(self.intra_rnn(x.reshape(b * t, f, c)))   # within a frame: no state
        x = x + self.intra_ln(intra.reshape(b, t, f, self.hidden))
        y = x.permute(0, 2, 1, 3).reshape(b * f, t, c)               # (B*F, T, C)
        inter = self.inter_fc(self.inter_rnn(y, state)).reshape(b, f, t, self.hidden).permute(0, 2, 1, 3)
        x = x + self.inter_ln(inter)
        return x.permute(0, 3, 1, 2)                                 # (B, C, T, F)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.en_convs = nn.ModuleList([
            ConvBlock(9, 16, (1, 5), (1, 2), (0, 2)),
            ConvBlock(16, 16, (1, 5), (1, 2), (0, 2), groups=2),
            GTConvBlock(16, 16, (3, 3), (0, 1), (1, 1)),
            GTConvBlock(16, 16, (3, 3), (0, 1), (2, 1)),
            GTConvBlock(16, 16, (3, 3), (0, 1), (5, 1)),
        ])

    def forward(self, x: torch.Tensor, state: dict | None = None):
        skips = []
        for layer in self.en_convs:
            x = layer(x, state) if isinstance(layer, GTConvBlock) else layer(x)
            skips.append(x)
        return x, skips


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        # Transposed depthwise convs with time padding 2*dilation trim exactly the past padding that
        # GTConvBlock adds, so the frame count is preserved and the convolution stays causal.
        self.de_convs = nn.ModuleList([
            GTConvBlock(16, 16, (3, 3), (2 * 5, 1), (5, 1), transposed=True),
            GTConvBlock(16, 16, (3, 3), (2 * 2, 1), (2, 1), transposed=True),
            GTConvBlock(16, 16, (3, 3), (2 * 1, 1), (1, 1), transposed=True),
            ConvBlock(16, 16, (1, 5), (1, 2), (0, 2), groups=2, transposed=True),
            ConvBlock(16, 2, (1, 5), (1, 2), (0, 2), transposed=True, last=True),
        ])

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor], state: dict | None = None) -> torch.Tensor:
        n = len(self.de_convs)
        for i, layer in enumerate(self.de_convs):
            y = x + skips[n - 1 - i]
            x = layer(y, state) if isinstance(layer, GTConvBlock) else layer(y)
        return x


class GTCRN(nn.Module):
    """The network: ``(B, 257, T, 2)`` noisy spectrum -> ``(B, 257, T, 2)`` enhanced spectrum."""

    def __init__(self):
        super().__init__()
        self.erb = ERB(65, 64)
        self.sfe = SFE(3)
        self.encoder = Encoder()
        self.dpgrnn1 = DPGRNN(16, 33, 16)
        self.dpgrnn2 = DPGRNN(16, 33, 16)
        self.decoder = Decoder()

    def forward(self, spec: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        """``spec`` ``(B, 257, T, 2)``. With ``state`` (a dict, empty at the start of a stream) the
        recurrent and convolution caches are carried over, so consecutive calls on consecutive frames
        give exactly the output of one call on all frames."""
        re = spec[..., 0].transpose(1, 2)                # (B, T, F)
        im = spec[..., 1].transpose(1, 2)
        mag = torch.sqrt(re ** 2 + im ** 2 + 1e-12)
        feat = self.sfe(self.erb.bm(torch.stack([mag, re, im], dim=1)))   # (B, 9, T, 129)
        feat, skips = self.encoder(feat, state)
        feat = self.dpgrnn2(self.dpgrnn1(feat, state), state)
        mask = self.erb.bs(self.decoder(feat, skips, state))    # (B, 2, T, 257)
        m_re, m_im = mask[:, 0], mask[:, 1]
        out_re = re * m_re - im * m_im
        out_im = im * m_re + re * m_im
        return torch.stack([out_re, out_im], dim=-1).transpose(1, 2)  # (B, F, T, 2)


# --------------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------------

#: A handful of parameter names that together identify a GTCRN state dict.
SIGNATURE_KEYS = ("erb.erb_fc.weight", "encoder.en_convs.2.tra.att_gru.weight_ih_l0",
                  "dpgrnn1.intra_rnn.rnn1.weight_ih_l0_reverse", "decoder.de_convs.4.conv.weight")


def unwrap_state_dict(obj) -> dict | None:
    """The tensor dict inside a checkpoint: the object itself, or its ``model``/``state_dict`` entry."""
    if not isinstance(obj, dict):
        return None
    for key in ("model", "state_dict", "model_state_dict", "net"):
        inner = obj.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return _strip_prefix(inner)
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _strip_prefix(obj)
    return None


def _strip_prefix(sd: dict) -> dict:
    """Drop a ``module.`` prefix left by DataParallel so the names match the architecture."""
    if all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return sd


def is_gtcrn_state_dict(sd: dict) -> bool:
    return all(k in sd for k in SIGNATURE_KEYS)


def build_gtcrn(state_dict: dict, source: str = "") -> GTCRN:
    """A GTCRN in eval mode with ``state_dict`` loaded strictly; ModelError when names or shapes differ."""
    net = GTCRN()
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:4]
        raise ModelError(f"{source or 'checkpoint'}: looks like GTCRN but does not match the architecture: "
                         + " ".join(first)) from None
    net.eval()
    return net


def count_macs_per_second(net: GTCRN, sample_rate: int = SAMPLE_RATE) -> float:
    """Multiply-accumulates per second of audio, counted with forward hooks on one second of input.

    Counted: convolutions (``outputs * cin/groups * kernel`` for Conv2d, ``inputs * cout/groups * kernel``
    for ConvTranspose2d), linear layers, and GRUs ``3 * (in*h + h*h)`` per step and direction.
    Element-wise operations are not counted.
    """
    total = [0]

    def hook(mod, inp, out):
        x = inp[0]
        if isinstance(mod, nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += x.numel() * (mod.out_channels // mod.groups) * k
        elif isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += out.numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            total[0] += out.numel() * mod.in_features
        elif isinstance(mod, nn.GRU):
            steps = x.shape[0] * x.shape[1]
            dirs = 2 if mod.bidirectional else 1
            total[0] += steps * dirs * 3 * (mod.input_size * mod.hidden_size + mod.hidden_size ** 2)

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.GRU))]
    try:
        frames = sample_rate // HOP
        with torch.inference_mode():
            net(torch.zeros(1, N_FFT // 2 + 1, frames, 2))
    finally:
        for h in handles:
            h.remove()
    return total[0] * sample_rate / (frames * HOP)


# --------------------------------------------------------------------------------------------------------
# Enhancer
# --------------------------------------------------------------------------------------------------------

def _apply_torch_threads() -> None:
    """Set torch's intra-op threads by the project's convention (:func:`threads_from_env`, default 1)."""
    threads = threads_from_env(1)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class _GtcrnStream(EnhancerStream):
    """Block streaming with carried state: each call runs all the frames its block completes at once.

    The analysis keeps the previous ``HOP`` input samples, so a block of ``m`` samples (a multiple of
    ``HOP``) completes ``m / HOP`` frames of ``N_FFT`` samples; the network carries its convolution
    caches and GRU states (see :meth:`GTCRN.forward`); synthesis is overlap-add with the same window
    (sqrt-Hann squared at hop ``N_FFT / 2`` sums to exactly 1, so no normalisation is needed) and keeps
    the last ``HOP`` samples for the next call. Output lags input by ``N_FFT - HOP`` samples.

    The first frame's past is the mirrored start of the signal, as in ``torch.stft(center=True)``; with
    blocks longer than ``HOP`` this reproduces the authors' whole-utterance run exactly up to the end.
    Live, the end is unknown and the engine's zero flush stands in for their mirrored end (last frame
    only). As the offline path, the engine announces the length (:meth:`begin_pass`) and the stream ends
    as their inverse STFT does: the end mirrored, no frame past the last one, and the last partial hop
    divided by the one window that covers it; so a file in blocks equals one whole run to float rounding.
    """

    def __init__(self, enh: "GtcrnEnhancer"):
        self.net, self.window = enh.net, enh.window
        self.prev: torch.Tensor | None = None
        self.carry = torch.zeros(HOP)
        self.state: dict = {}
        self.n: int | None = None     # real samples, when announced
        self.fed = 0                  # input samples received
        self.frame = 0                # index of the next frame
        self.emitted = 0              # output samples returned
        self.history = torch.zeros(0)  # the last N_FFT input samples as received

    def begin_pass(self, index: int, frames: int) -> None:
        # The whole run pads an input shorter than N_FFT // 2 + 1 with zeros to that length first.
        self.n = max(int(frames), N_FFT // 2 + 1) if frames > 0 else None

    def _mirror_end(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (the next input samples) with positions ``n .. n + HOP - 1`` replaced by the mirrored end
        ``x[n - 2], x[n - 3], ...`` as ``torch.stft(center=True)`` pads it, and zeros after that."""
        start, n = self.fed, self.n
        known = torch.cat([self.history, x])           # positions start - len(history) .. start + len(x) - 1
        base = start - len(self.history)
        self.history = known[max(len(known) - N_FFT, 0):].clone()
        if start + len(x) <= n:
            return x
        x = x.clone()
        pos = torch.arange(max(start, n), start + len(x))
        src = 2 * n - 2 - pos
        inside = pos < n + N_FFT // 2
        x[pos - start] = torch.where(inside, known[torch.clamp(src - base, min=0)], torch.zeros(()))
        return x

    def process(self, block: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
        if self.n is not None:
            x = self._mirror_end(x)
        self.fed += len(x)
        if self.prev is None:
            idx = torch.clamp(torch.arange(N_FFT - HOP, 0, -1), max=len(x) - 1)
            self.prev = x[idx]
        buf = torch.cat([self.prev, x])
        self.prev = buf[len(buf) - (N_FFT - HOP):]
        frames = buf.unfold(0, N_FFT, HOP)                                    # (T, N_FFT)
        with torch.inference_mode():
            spec = torch.view_as_real(torch.fft.rfft(frames * self.window))   # (T, F, 2)
            out = self.net(spec.transpose(0, 1)[None], self.state)[0]         # (F, T, 2)
            y = torch.fft.irfft(torch.view_as_complex(out.transpose(0, 1).contiguous()), n=N_FFT)
        y = y * self.window                                                   # (T, N_FFT)
        t = y.shape[0]
        first = self.frame
        self.frame += t
        if self.n is not None:
            last = self.n // HOP                        # the whole run's last frame (centred STFT)
            if first + t > last + 1:
                y[max(last + 1 - first, 0):] = 0.0
        ola = torch.zeros(t + 1, HOP)
        ola[:t] += y[:, :HOP]
        ola[1:] += y[:, HOP:]
        ola[0] += self.carry
        self.carry = ola[t].clone()
        out = ola[:t].reshape(-1)
        if self.n is not None and self.n % HOP:
            # Output sample s is input sample s - HOP; the last partial hop has one frame's window over it.
            lo = (self.n // HOP + 1) * HOP
            a, b = max(lo, self.emitted), min(self.n + HOP, self.emitted + len(out))
            if a < b:
                envelope = self.window[HOP:] ** 2
                out[a - self.emitted:b - self.emitted] /= envelope[a - lo:b - lo]
        self.emitted += len(out)
        return out.numpy()


class GtcrnEnhancer(Enhancer):
    """GTCRN from a PyTorch checkpoint.

    Two paths, the same network; ``processing`` picks the default, the engine's ``processing=`` (CLI
    ``--processing``) the other:

    * ``"offline"`` (default): :meth:`process_offline` takes the centred STFT of the whole buffer, runs
      the network once over all frames and applies the matching inverse STFT -- exactly the authors'
      inference script (aligned, no delay, their mirrored padding at both ends). The engine runs the same
      computation block by block (:meth:`new_offline_stream`).
    * ``"streaming"``: blocks of any multiple of 256 samples with convolution caches and GRU states
      carried over (:class:`_GtcrnStream`): bounded memory and output independent of the block size,
      latency 256 samples (removed by the engine). It cannot mirror the end of the signal, so the last
      frame differs from the authors' run (measured correlation with the offline output 0.997-0.99999
      on clips cut mid-speech), and small blocks add per-call cost (1 s blocks about 1.4x offline time).

    The engine runs the offline path as :meth:`new_offline_stream`: the carried-state computation fed
    ``chunk_s`` blocks, so chunk seams equal a one-piece run (float rounding) and memory is that of one
    block however long the file; told the file's length, it also ends as the authors' whole-utterance run
    does (see :class:`_GtcrnStream`), so the two agree to float rounding.
    """

    #: Offline blocks: the network's activations take about 13 MB per second of block, and shorter
    #: blocks add per-call cost (1 s blocks take about twice as long as 4 s blocks).
    chunk_s = 4.0
    overlap_s = 0.0

    def __init__(self, net: GTCRN, *, id: str = "gtcrn", source: str = "built-in", name: str = "GTCRN",
                 processing: str = "offline", licence: str = ""):
        if processing not in ("streaming", "offline"):
            raise ValueError(f"processing must be 'streaming' or 'offline', not {processing!r}")
        self.net = net
        self._onnx = None
        #: why streams run their step in PyTorch rather than onnxruntime (``None``: they do not)
        self.stream_fallback: str | None = None
        _apply_torch_threads()
        # Counted like the paper's 48.2 k: every parameter, including the fixed ERB projections.
        params = sum(p.numel() for p in net.parameters())
        self.window = torch.hann_window(N_FFT).sqrt()
        self.info = EnhancerInfo(
            id=id, name=name,
            description="GTCRN (Rong et al., ICASSP 2024): ultra-light causal complex-ratio-mask model, "
                        "ERB bands, grouped temporal convolutions and dual-path grouped RNNs.",
            sample_rate=SAMPLE_RATE, causal=True,
            # The model's algorithmic latency is the framing delay of a 512/256 STFT whichever path
            # runs it; the offline path returns aligned output itself, so the engine removes nothing.
            latency_samples=N_FFT - HOP, family="complex-mask",
            processing=processing, processing_paths=("offline", "streaming"), block_samples=HOP,
            source=source, parameters=params, licence=licence,
            extra={"stft": f"{N_FFT}-point, hop {HOP}, sqrt-Hann",
                   "offline path": "4 s blocks with carried state, seams exact (PyTorch)",
                   "streaming path": "blocks of frames with carried state (the network step exported "
                                     "from PyTorch to ONNX, run by onnxruntime)",
                   "trainable parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
                   "MMAC/s": round(count_macs_per_second(net) / 1e6, 1)})

    @classmethod
    def from_checkpoint(cls, path: str | Path, state_dict: dict | None = None,
                        processing: str = "offline") -> "GtcrnEnhancer":
        path = Path(path)
        if state_dict is None:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise ModelError(f"{path}: cannot be read as a PyTorch checkpoint: {exc}") from None
            state_dict = unwrap_state_dict(obj)
            if state_dict is None or not is_gtcrn_state_dict(state_dict):
                raise ModelError(f"{path}: not a GTCRN checkpoint (expected a state dict with keys such as "
                                 f"{SIGNATURE_KEYS[0]!r})")
        net = build_gtcrn(state_dict, str(path))
        return cls(net, id=f"gtcrn:{path.stem}", source=str(path), name=f"GTCRN ({path.stem})",
                   processing=processing)

    def new_stream(self) -> EnhancerStream:
        """The carried-state stream; its network step runs in onnxruntime (:mod:`.gtcrn_onnx`: the same
        arithmetic about five times cheaper per frame than PyTorch's op-by-op dispatch), or in PyTorch
        where onnxruntime or the export is unavailable (the reason is kept in ``stream_fallback``)."""
        if self._onnx is None and self.stream_fallback is None:
            from .gtcrn_onnx import onnx_session
            try:
                self._onnx = onnx_session(self.net, N_FFT // 2 + 1)
            except ModelError as exc:
                self.stream_fallback = str(exc)
        if self._onnx is not None:
            from .gtcrn_onnx import GtcrnOnnxStream
            session, shapes = self._onnx
            return GtcrnOnnxStream(session, shapes, self.window.numpy(), N_FFT, HOP)
        return _GtcrnStream(self)

    def new_offline_stream(self) -> EnhancerStream:
        """The offline path block by block with convolution caches and GRU states carried."""
        return _GtcrnStream(self)

    def enhance_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(n,)`` float32 waveform -> ``(n,)`` enhanced waveform (same length, aligned)."""
        n = x.shape[0]
        # Reflect padding of the centred STFT needs more than half a window; pad very short inputs.
        padded = x if n > N_FFT // 2 else nn.functional.pad(x, (0, N_FFT // 2 + 1 - n))
        with torch.inference_mode():
            spec = torch.stft(padded, N_FFT, HOP, N_FFT, self.window, center=True, return_complex=True)
            out = self.net(torch.view_as_real(spec)[None])[0]
            y = torch.istft(torch.view_as_complex(out.contiguous()), N_FFT, HOP, N_FFT, self.window,
                            center=True, length=padded.shape[0])
        return y[:n]

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        if x.shape[0] == 0:
            return np.zeros(0, np.float32)
        return self.enhance_tensor(x).numpy().astype(np.float32, copy=False)


def load_gtcrn_checkpoint(path: str | Path, processing: str = "offline") -> GtcrnEnhancer:
    """Load ``model_trained_on_dns3.tar``-style checkpoints (``{'model': state_dict, ...}``)."""
    return GtcrnEnhancer.from_checkpoint(path, processing=processing)

