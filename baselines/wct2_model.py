"""The WCT2 network (Yoo, Uh, Chun, Kang, Ha, "Photorealistic Style Transfer via Wavelet
Transforms", ICCV 2019): a VGG19-like encoder up to ``relu4_1`` whose max-pools are replaced by
Haar wavelet pooling, a mirrored decoder with wavelet unpooling, and the whitening-colouring
transform (WCT) applied to features on the way.

- Haar pooling splits a map into four half-resolution bands with the 2x2 filters
  ``LL = L'L, LH = L'H, HL = H'L, HH = H'H`` where ``L = [1, 1]/sqrt(2)``, ``H = [-1, 1]/sqrt(2)``;
  the low band ``LL`` goes down the encoder, the high bands ``(LH, HL, HH)`` skip to the decoder.
  The transform is orthonormal, so unpooling (the transposed filters) inverts it exactly.
- ``cat5`` (the released model): the decoder concatenates the four unpooled bands with the
  encoder's pre-pooling map (5x the channels); ``sum`` adds the unpooled bands.
- WCT: whiten the centred content features with the inverse square root of their covariance,
  colour them with the square root of the style covariance, add the style mean, clamp to the
  content's range. As in the public code, both covariances get ``+ I`` before the
  eigendecomposition and eigenvalues below 1e-5 are dropped.
- Transfer points (the public defaults): after every encoder level (``encoder``), on every
  high-frequency skip band (``skip``), and before decoder levels 3, 2, 1 against the style's own
  decoded features (``decoder``).

Module and parameter names follow the released checkpoints ``wave_encoder_cat5_l4.pth`` /
``wave_decoder_cat5_l4.pth`` (and the ``sum`` pair) so their state dicts load as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

BANDS = ("LL", "LH", "HL", "HH")
TRANSFER_POINTS = ("encoder", "decoder", "skip")
UNPOOL_OPTIONS = ("cat5", "sum")


def haar_filters() -> torch.Tensor:
    """(4, 2, 2) float32: LL, LH, HL, HH (outer products of the 1-D Haar filters)."""
    low = torch.tensor([1.0, 1.0], dtype=torch.float64) / math.sqrt(2.0)
    high = torch.tensor([-1.0, 1.0], dtype=torch.float64) / math.sqrt(2.0)
    return torch.stack([torch.outer(a, b) for a, b in ((low, low), (low, high), (high, low), (high, high))]).float()


class _HaarBand(nn.Module):
    """One fixed 2x2 depthwise filter; ``weight`` sits where the released checkpoints keep it."""

    def __init__(self, channels: int, band: int, transpose: bool) -> None:
        super().__init__()
        self.channels = channels
        self.transpose = transpose
        self.register_buffer("weight", haar_filters()[band].expand(channels, 1, 2, 2).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transpose:
            return F.conv_transpose2d(x, self.weight, stride=2, groups=self.channels)
        return F.conv2d(x, self.weight, stride=2, groups=self.channels)


class WavePool(nn.Module):
    """x (N, C, H, W) -> LL, LH, HL, HH, each (N, C, H/2, W/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        for i, band in enumerate(BANDS):
            self.add_module(band, _HaarBand(channels, i, transpose=False))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.LL(x), self.LH(x), self.HL(x), self.HH(x)


class WaveUnpool(nn.Module):
    """Four bands (and, for ``cat5``, the encoder map before pooling) -> full resolution."""

    def __init__(self, channels: int, option_unpool: str = "cat5") -> None:
        super().__init__()
        self.option_unpool = option_unpool
        for i, band in enumerate(BANDS):
            self.add_module(band, _HaarBand(channels, i, transpose=True))

    def forward(self, ll, lh, hl, hh, original: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.LL(ll), self.LH(lh), self.HL(hl), self.HH(hh)]
        if self.option_unpool == "sum":
            return parts[0] + parts[1] + parts[2] + parts[3]
        if original is None:
            raise ValueError("cat5 unpooling needs the encoder map before pooling")
        return torch.cat([*parts, original], dim=1)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 0)  # padding is a reflection pad applied before


class WaveEncoder(nn.Module):
    """VGG19 layout to ``relu4_1`` with Haar pooling. ``encode(x, skips, level)`` runs one level."""

    def __init__(self, option_unpool: str = "cat5") -> None:
        super().__init__()
        if option_unpool not in UNPOOL_OPTIONS:
            raise ValueError(f"option_unpool must be one of {UNPOOL_OPTIONS}")
        self.option_unpool = option_unpool
        self.pad = nn.ReflectionPad2d(1)
        self.conv0 = nn.Conv2d(3, 3, 1, 1, 0)
        self.conv1_1, self.conv1_2 = _conv(3, 64), _conv(64, 64)
        self.pool1 = WavePool(64)
        self.conv2_1, self.conv2_2 = _conv(64, 128), _conv(128, 128)
        self.pool2 = WavePool(128)
        self.conv3_1, self.conv3_2 = _conv(128, 256), _conv(256, 256)
        self.conv3_3, self.conv3_4 = _conv(256, 256), _conv(256, 256)
        self.pool3 = WavePool(256)
        self.conv4_1 = _conv(256, 512)

    def _c(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        return F.relu(conv(self.pad(x)))

    def _pool(self, pool: WavePool, x: torch.Tensor, skips: dict, name: str, level: int) -> torch.Tensor:
        skips[f"conv{level}_{2 if level < 3 else 4}"] = x
        ll, lh, hl, hh = pool(x)
        skips[name] = [lh, hl, hh]
        return ll

    def encode(self, x: torch.Tensor, skips: dict, level: int) -> torch.Tensor:
        if self.option_unpool == "sum":
            if level == 1:
                x = self._c(self.conv1_2, self._c(self.conv1_1, self.conv0(x)))
                return self._pool(self.pool1, x, skips, "pool1", 1)
            if level == 2:
                x = self._c(self.conv2_2, self._c(self.conv2_1, x))
                return self._pool(self.pool2, x, skips, "pool2", 2)
            if level == 3:
                for conv in (self.conv3_1, self.conv3_2, self.conv3_3, self.conv3_4):
                    x = self._c(conv, x)
                return self._pool(self.pool3, x, skips, "pool3", 3)
            return self._c(self.conv4_1, x)
        # cat5: each level ends right after the first conv of the next block
        if level == 1:
            return self._c(self.conv1_1, self.conv0(x))
        if level == 2:
            x = self._pool(self.pool1, self._c(self.conv1_2, x), skips, "pool1", 1)
            return self._c(self.conv2_1, x)
        if level == 3:
            x = self._pool(self.pool2, self._c(self.conv2_2, x), skips, "pool2", 2)
            return self._c(self.conv3_1, x)
        for conv in (self.conv3_2, self.conv3_3, self.conv3_4):
            x = self._c(conv, x)
        x = self._pool(self.pool3, x, skips, "pool3", 3)
        return self._c(self.conv4_1, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: dict = {}
        for level in (1, 2, 3, 4):
            x = self.encode(x, skips, level)
        return x


class WaveDecoder(nn.Module):
    """Mirror of :class:`WaveEncoder`; ``decode(x, skips, level)`` for level 4, 3, 2, 1."""

    def __init__(self, option_unpool: str = "cat5") -> None:
        super().__init__()
        if option_unpool not in UNPOOL_OPTIONS:
            raise ValueError(f"option_unpool must be one of {UNPOOL_OPTIONS}")
        self.option_unpool = option_unpool
        k = 5 if option_unpool == "cat5" else 1
        self.pad = nn.ReflectionPad2d(1)
        self.conv4_1 = _conv(512, 256)
        self.recon_block3 = WaveUnpool(256, option_unpool)
        # the released cat5 decoder names the widened convs "<name>_2"
        suffix = "_2" if option_unpool == "cat5" else ""
        self.add_module("conv3_4" + suffix, _conv(256 * k, 256))
        self.conv3_3, self.conv3_2, self.conv3_1 = _conv(256, 256), _conv(256, 256), _conv(256, 128)
        self.recon_block2 = WaveUnpool(128, option_unpool)
        self.add_module("conv2_2" + suffix, _conv(128 * k, 128))
        self.conv2_1 = _conv(128, 64)
        self.recon_block1 = WaveUnpool(64, option_unpool)
        self.add_module("conv1_2" + suffix, _conv(64 * k, 64))
        self.conv1_1 = _conv(64, 3)
        self._suffix = suffix

    def _c(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.relu(getattr(self, name)(self.pad(x)))

    def _unpool(self, block: WaveUnpool, x: torch.Tensor, skips: dict, pool: str, original: str) -> torch.Tensor:
        lh, hl, hh = skips[pool]
        return block(x, lh, hl, hh, skips.get(original))

    def decode(self, x: torch.Tensor, skips: dict, level: int) -> torch.Tensor:
        s = self._suffix
        if level == 4:
            x = self._unpool(self.recon_block3, self._c("conv4_1", x), skips, "pool3", "conv3_4")
            x = self._c("conv3_4" + s, x)
            return self._c("conv3_2", self._c("conv3_3", x))
        if level == 3:
            x = self._unpool(self.recon_block2, self._c("conv3_1", x), skips, "pool2", "conv2_2")
            return self._c("conv2_2" + s, x)
        if level == 2:
            x = self._unpool(self.recon_block1, self._c("conv2_1", x), skips, "pool1", "conv1_2")
            return self._c("conv1_2" + s, x)
        return self.conv1_1(self.pad(x))

    def forward(self, x: torch.Tensor, skips: dict) -> torch.Tensor:
        for level in (4, 3, 2, 1):
            x = self.decode(x, skips, level)
        return x


# -- whitening and colouring ------------------------------------------------------------------------
def _eig_desc(cov: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors of a symmetric matrix, keeping values >= eps."""
    values, vectors = torch.linalg.eigh(cov)
    values, vectors = values.flip(0), vectors.flip(1)
    k = int((values >= eps).sum())
    k = max(k, 1)
    return values[:k], vectors[:, :k]


def covariance(feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, N) -> mean (C, 1) and unbiased covariance (C, C) (divided by N - 1; by 1 if N == 1)."""
    mean = feat.mean(1, keepdim=True)
    centred = feat - mean
    return mean, centred @ centred.t() / max(feat.shape[1] - 1, 1)


def whiten(feat: torch.Tensor, reg: float = 1.0, eps: float = 1e-5) -> torch.Tensor:
    """(C, N) -> centred features times ``(cov + reg*I)^(-1/2)``; with ``reg=0`` the covariance
    of the result is the identity (for full-rank input)."""
    mean, cov = covariance(feat)
    cov = cov + reg * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    values, vectors = _eig_desc(cov, eps)
    return (vectors * values.rsqrt()) @ vectors.t() @ (feat - mean)


def colour(white: torch.Tensor, style: torch.Tensor, reg: float = 1.0, eps: float = 1e-5) -> torch.Tensor:
    """Whitened (C, N) features -> covariance ``cov(style) + reg*I`` and the style's mean."""
    mean, cov = covariance(style)
    cov = cov + reg * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    values, vectors = _eig_desc(cov, eps)
    return (vectors * values.sqrt()) @ vectors.t() @ white + mean


def wct(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0, reg: float = 1.0) -> torch.Tensor:
    """Whitening-colouring transform of a (1, C, H, W) content map towards a (1, C, H', W') style map.

    The result is clamped to the content map's value range and blended with the content by
    ``alpha`` (1 = full transfer). Computed in float64 for a stable eigendecomposition.
    """
    work = "cpu" if content.device.type == "mps" else content.device  # MPS has no float64
    c = content[0].reshape(content.shape[1], -1).to(work, torch.float64)
    s = style[0].reshape(style.shape[1], -1).to(work, torch.float64)
    out = colour(whiten(c, reg), s, reg).clamp(float(c.min()), float(c.max()))
    out = out.to(content.device, content.dtype).reshape(content.shape)
    return alpha * out + (1.0 - alpha) * content if alpha != 1.0 else out


def _style_features(encoder: WaveEncoder, decoder: WaveDecoder, style: torch.Tensor, at: set[str]) -> tuple[dict, dict]:
    skips: dict = {}
    feats: dict[str, dict[int, torch.Tensor]] = {"encoder": {}, "decoder": {}}
    x = style
    for level in (1, 2, 3, 4):
        x = encoder.encode(x, skips, level)
        if "encoder" in at:
            feats["encoder"][level] = x
    if "encoder" not in at:
        feats["decoder"][4] = x
    for level in (4, 3, 2):
        x = decoder.decode(x, skips, level)
        if "decoder" in at:
            feats["decoder"][level - 1] = x
    return feats, skips


def wct2_transfer(
    encoder: WaveEncoder,
    decoder: WaveDecoder,
    content: torch.Tensor,
    style: torch.Tensor,
    transfer_at: Iterable[str] = TRANSFER_POINTS,
    alpha: float = 1.0,
    reg: float = 1.0,
) -> torch.Tensor:
    """Stylise a (1, 3, H, W) content image in [0, 1] with a style image; H, W multiples of 8.

    Returns the decoder output (not clamped)."""
    at = set(transfer_at)
    if not at or at - set(TRANSFER_POINTS):
        raise ValueError(f"transfer_at must be a non-empty subset of {TRANSFER_POINTS}")
    style_feats, style_skips = _style_features(encoder, decoder, style, at)
    skips: dict = {}
    x = content
    for level in (1, 2, 3, 4):
        x = encoder.encode(x, skips, level)
        if "encoder" in at:
            x = wct(x, style_feats["encoder"][level], alpha, reg)
    if "skip" in at:
        for pool in ("pool1", "pool2", "pool3"):
            skips[pool] = [wct(band, ref, alpha, reg) for band, ref in zip(skips[pool], style_skips[pool])]
    for level in (4, 3, 2, 1):
        if "decoder" in at and level in style_feats["decoder"]:
            x = wct(x, style_feats["decoder"][level], alpha, reg)
        x = decoder.decode(x, skips, level)
    return x
