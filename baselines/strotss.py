"""``strotss``: Style Transfer by Relaxed Optimal Transport and Self-Similarity
(Kolkin, Salavon, Shakhnarovich, CVPR 2019), one of the Splice paper's baselines.

The output image is optimised directly, coarse to fine, at the settings the Splice authors
used: the structure ("content") image resized to 512 px on its long side, four scales
(1/8, 1/4, 1/2, 1 of that size; a coarse scale is dropped while any side would be below
32 px), 200 RMSprop steps per scale on a 5-band Laplacian pyramid of the image (learning rate
2e-3, 1e-3 at the last scale), ImageNet VGG16 hypercolumns, 1024 output locations per step,
5 x 1000 style locations per scale, content weight 16 (the public code's ``1.0 x 16``) halved
at every finer scale. Initialisation: the content's finest Laplacian band plus the style's mean
colour; at each finer scale the previous result is upsampled and the content's finest band is
added back (not at the last scale). The result is clamped to [-1.7, 1.7] in normalised space
and min-max stretched to [0, 1], as the public code writes its outputs (the authors' STROTSS
outputs kept in the Splice repository span the full 0..255 range).

Output geometry: the structure image resized to long side 512 (``int`` truncation of the short
side, bicubic), recorded in every result. ``max_side`` (OOM ladder) caps the short side.

The losses and the sampler live in :mod:`baselines.strotss_losses`, the VGG16 extractor and
its weights in :mod:`baselines.strotss_vgg`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from splice.core.devices import resolve_device
from splice.core.geometry import Geometry
from splice.core.imageio import load_rgb, to_image, to_tensor
from splice.core.method import Method, MethodResult, Pair, Requirement, RunSettings

from .strotss_losses import (
    StyleTarget,
    fold_laplacian_pyramid,
    grid_locations,
    laplacian,
    make_laplacian_pyramid,
    random_pixels,
    sample_hypercolumns,
    strotss_loss,
    strotss_resample,
)
from .strotss_vgg import DEFAULT_TAG, IMAGENET_MEAN, IMAGENET_STD, load_strotss_vgg, resolve_vgg_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StrotssConfig:
    """Everything that changes a STROTSS output except the seed and the weights."""

    long_side: int = 512
    scales: int = 4  # coarsest scale = 1 / 2**(scales - 1) of long_side
    min_scale_side: int = 32  # drop coarse scales whose image side would be smaller
    iters_per_scale: int = 200
    lr: float = 2e-3
    lr_last: float = 1e-3
    content_weight: float = 1.0  # the user's weight; the objective uses 16x this
    pyramid_levels: int = 5
    n_locations: int = 1024
    style_samples: int = 1000
    style_draws: int = 5
    grid_cells: int = 128**2
    moment_weight: float = 1.0
    clamp: float = 1.7
    output_norm: Literal["minmax", "imagenet"] = "minmax"  # "minmax" (public code) or "imagenet" (undo the normalisation)

    def __post_init__(self) -> None:
        if self.long_side < 16 or self.scales < 1 or self.iters_per_scale < 0:
            raise ValueError("long_side >= 16, scales >= 1 and iters_per_scale >= 0 are needed")


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # seconds on a CPU: a 64 px canvas, 2 scales of 8 steps, few locations
    "smoke": {"long_side": 64, "scales": 2, "min_scale_side": 16, "iters_per_scale": 8, "n_locations": 128,
              "style_samples": 128, "style_draws": 2},
}


def strotss_config(settings: RunSettings) -> StrotssConfig:
    """The options of ``settings`` (preset, then ``--method-args``), typed and checked."""
    return Strotss().options(settings)


def long_side_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(W, H) after the public code's long-edge resize: scale = long_side / long edge, sides truncated."""
    w, h = size
    ratio = long_side / (h if w < h else w)
    return max(1, int(w * ratio)), max(1, int(h * ratio))


def _normalise(image: Image.Image, device: str) -> torch.Tensor:
    x = to_tensor(image).unsqueeze(0).to(device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def _to_unit(x: torch.Tensor, cfg: StrotssConfig) -> torch.Tensor:
    """Normalised result -> [0, 1] image tensor (3, H, W)."""
    x = x.detach().clamp(-cfg.clamp, cfg.clamp)[0]
    if cfg.output_norm == "minmax":
        x = x - x.min()
        return x / x.max().clamp_min(1e-12)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    return (x * std + mean).clamp(0, 1)


def scale_factors(content_hw: tuple[int, int], style_hw: tuple[int, int], cfg: StrotssConfig) -> list[int]:
    """Downsampling factors, coarsest first (8, 4, 2, 1 for the paper), dropping too-small ones."""
    factors = [2**k for k in reversed(range(cfg.scales))]
    smallest = min(*content_hw, *style_hw)
    while len(factors) > 1 and smallest // factors[0] < cfg.min_scale_side:
        factors.pop(0)
    return factors


def stylise(
    content_full: torch.Tensor,
    style_full: torch.Tensor,
    extractor: torch.nn.Module,
    cfg: StrotssConfig,
    rng: np.random.Generator,
    progress: bool = False,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Run STROTSS on ImageNet-normalised (1, 3, H, W) tensors; returns the normalised result."""
    factors = scale_factors(tuple(content_full.shape[-2:]), tuple(style_full.shape[-2:]), cfg)
    weight = cfg.content_weight * 16.0
    lr = cfg.lr
    result: torch.Tensor | None = None
    history: list[dict[str, Any]] = []
    for k, factor in enumerate(factors):
        ch, cw = content_full.shape[-2:]
        sh, sw = style_full.shape[-2:]
        content = strotss_resample(content_full, (ch // factor, cw // factor))
        style = strotss_resample(style_full, (sh // factor, sw // factor))
        if k == 0:
            result = laplacian(content) + style.mean(dim=(2, 3), keepdim=True)
        elif k == len(factors) - 1:
            result = strotss_resample(result, content.shape[-2:])
            lr = cfg.lr_last
        else:
            result = strotss_resample(result, content.shape[-2:]) + laplacian(content)
        began = time.perf_counter()
        result, parts = _optimise_scale(result, content, style, extractor, cfg, weight, lr, rng, progress, factor)
        size = list(content.shape[-2:])
        seconds = round(time.perf_counter() - began, 3)
        history.append({"factor": factor, "size": size, "content_weight": weight, "lr": lr, "seconds": seconds, **parts})
        weight /= 2.0
    assert result is not None
    return result, {"scales": history}


def _optimise_scale(
    init: torch.Tensor,
    content: torch.Tensor,
    style: torch.Tensor,
    extractor: torch.nn.Module,
    cfg: StrotssConfig,
    content_weight: float,
    lr: float,
    rng: np.random.Generator,
    progress: bool,
    factor: int,
) -> tuple[torch.Tensor, dict[str, Any]]:
    pyramid = [band.detach().clone().requires_grad_(True) for band in make_laplacian_pyramid(init, cfg.pyramid_levels)]
    optimizer = torch.optim.RMSprop(pyramid, lr=lr)
    with torch.no_grad():
        content_feats = extractor(content)
        style_feats = extractor(style)
        sh, sw = style.shape[-2:]
        draws = [
            sample_hypercolumns(style_feats, *random_pixels(sh, sw, cfg.style_samples, rng), bilinear=False)
            for _ in range(cfg.style_draws)
        ]
        style_cols = StyleTarget.from_cols(torch.cat(draws, 0))
        del style_feats
    rows, cols = grid_locations(content.shape[-2], content.shape[-1], rng, cfg.grid_cells)
    parts: dict[str, Any] = {"loss": None}
    first_loss: float | None = None
    steps = range(cfg.iters_per_scale)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"strotss 1/{factor}", leave=False)
    for it in steps:
        optimizer.zero_grad(set_to_none=True)
        if it > 0:  # a new random subset of locations every step
            rng.shuffle(rows)
            rng.shuffle(cols)
        image = fold_laplacian_pyramid(pyramid)
        feats = extractor(image)
        n = cfg.n_locations
        out_cols = sample_hypercolumns(feats, rows[:n], cols[:n])
        content_cols = sample_hypercolumns(content_feats, rows[:n], cols[:n])
        loss, terms = strotss_loss(out_cols, content_cols, style_cols, content_weight, cfg.moment_weight)
        loss.backward()
        optimizer.step()
        parts = {"loss": float(loss.detach()), **terms}
        if first_loss is None:
            first_loss = parts["loss"]
    parts["first_loss"] = first_loss
    with torch.no_grad():
        return fold_laplacian_pyramid(pyramid).detach(), parts


class Strotss(Method):
    name = "strotss"
    paper = "Kolkin, Salavon, Shakhnarovich. Style Transfer by Relaxed Optimal Transport and Self-Similarity. CVPR 2019"
    summary = "Optimises the image (Laplacian pyramid, RMSprop): relaxed-EMD style + self-similarity content, VGG16."
    devices = ("cpu", "cuda", "mps")
    supports_max_side = True
    in_smoke = True
    Options = StrotssConfig
    presets = PRESETS

    def _weights_spec(self, settings: RunSettings) -> str:
        return str(settings.weights or DEFAULT_TAG)

    def requirements(self, settings: RunSettings) -> list[Requirement]:
        where = resolve_vgg_weights(self._weights_spec(settings))
        return [
            Requirement(
                name=f"VGG16 ImageNet weights ({where.spec})",
                how=where.how(),
                ready=where.present,
                path=str(where.path) if where.path else None,
            )
        ]

    def config(self, settings: RunSettings) -> dict[str, Any]:
        cfg = strotss_config(settings)
        return {
            "method": self.name,
            "preset": self.resolved_preset(settings),
            "weights": resolve_vgg_weights(self._weights_spec(settings)).spec,
            "max_side": settings.max_side,
            **dataclasses.asdict(cfg),
        }

    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:
        cfg = strotss_config(settings)
        device = resolve_device(settings.device)
        s = load_rgb(pair.structure, role="structure image")
        a = load_rgb(pair.appearance, role="appearance image")
        long_side = cfg.long_side
        if settings.max_side:  # the OOM ladder caps the short side
            w, h = s.size
            long_side = min(long_side, int(settings.max_side * max(w, h) / min(w, h)))
        out_size = long_side_size(s.size, long_side)
        geometry = Geometry.resize(s.size, out_size)
        content = s.image.resize(out_size, Image.Resampling.BICUBIC) if out_size != s.size else s.image
        style_size = long_side_size(a.size, long_side)
        style = a.image.resize(style_size, Image.Resampling.BICUBIC) if style_size != a.size else a.image

        extractor, weights = load_strotss_vgg(self._weights_spec(settings), device, settings.allow_random_weights)
        if weights["random"]:
            log.warning("strotss: RANDOM VGG16 weights (smoke/test only): the output means nothing")
        rng = np.random.default_rng(settings.seed)
        start = time.perf_counter()
        content_t, style_t = _normalise(content, device), _normalise(style, device)
        result, trace = stylise(content_t, style_t, extractor, cfg, rng, settings.progress)
        image = to_image(_to_unit(strotss_resample(result, (out_size[1], out_size[0])), cfg))
        info = {
            "seed": settings.seed,
            "device": device,
            "weights": weights,
            "random_weights": bool(weights["random"]),
            "inputs": {"structure": s.record(), "appearance": a.record()},
            "long_side": long_side,
            "style_size": list(style_size),
            "optimise_seconds": round(time.perf_counter() - start, 3),
            **trace,
        }
        return MethodResult(image=image, geometry=geometry, info=info)
