"""``strotss``: Style Transfer by Relaxed Optimal Transport and Self-Similarity
(Kolkin, Salavon, Shakhnarovich, CVPR 2019), one of the Splice paper's baselines.

This computes what the authors' code computes (nkolkin13/STROTSS at 9a1543a, ``styleTransfer.py``
``run_st`` and ``st_helper.py`` ``style_transfer``, run as its README says: content weight 1.0,
``MAX_SCALES`` 5). The Splice paper states no STROTSS settings, so ``paper`` runs the authors'
defaults:

- four scales whose long sides are 64, 128, 256 and 512 px (``long_side`` is the last, halved
  ``scales - 1`` times). At every scale content and style are resized **from the original images**
  (long side to that scale, the short side truncated: ``int(H * L / max(H, W))``), bilinear with
  ``align_corners=False`` and no antialiasing (``utils.load_path_for_pytorch``); no scale is skipped;
- the image lives in raw RGB ([0, 1], not clamped while optimising); ImageNet normalisation is
  applied inside the VGG16 (``vgg_pt.py``), and the hypercolumns' colour channels are raw RGB;
- initialisation: at the first scale, the style's mean colour plus the content's finest Laplacian
  band; at middle scales, the previous result upsampled plus that band; at the last scale the
  previous result upsampled;
- per scale 250 RMSprop steps (torch defaults: alpha 0.99, eps 1e-8) on the 5 bands + residual
  of a Laplacian pyramid of the image; learning rate 2e-3, 1e-3 at the last scale; a fresh
  optimiser, style sample and location grid at every scale;
- content weight 16 (``16 x`` the README's 1.0) halved after every scale; moment weight 1;
- 1024 output/content locations per step from one grid per scale (shuffled rows and columns,
  see :class:`~baselines.strotss_losses.StrotssSampler`), 5 x 1000 style locations per scale;
- what a scale passes on (and what is finally written) is the image at the start of its last
  step, without that step's update (``st_helper.py`` returns ``stylized_im`` before ``step()``);
- output: ``clamp(0, 1)``, rounded to 8 bits (``imageio.imwrite`` of a float image); its size is
  the content's at the last scale (long side 512).

Random numbers come from ``numpy.random.RandomState(seed)`` in the official order, so
``seed=s`` samples exactly the locations the official code samples after ``np.random.seed(s)``
(``tests/baselines/test_strotss_parity.py`` checks this and the loss values against numbers
from the official code, ``tests/data/official/strotss.json``).

Deviations (all in ``docs/methods.md``): images are read by :func:`splice.core.imageio.load_rgb`
(EXIF orientation applied, alpha composited over white; the official ``imread`` drops alpha);
norms are clamped at 1e-8 (the official code gives NaN on an all-zero sample); ``max_side``
(the OOM ladder) lowers the last scale's long side; the official code needs CUDA, this runs
anywhere.

The losses and the sampler live in :mod:`baselines.strotss_losses`, the VGG16 extractor and
its weights in :mod:`baselines.strotss_vgg`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from splice.core.devices import resolve_device
from splice.core.geometry import Geometry
from splice.core.imageio import load_rgb
from splice.core.method import Method, MethodResult, Pair, Requirement, RunSettings

from .strotss_losses import (
    StrotssSampler,
    StyleTarget,
    fold_laplacian_pyramid,
    laplacian,
    make_laplacian_pyramid,
    sample_hypercolumns,
    strotss_loss,
    strotss_resample,
)
from .strotss_vgg import DEFAULT_TAG, load_strotss_vgg, resolve_vgg_weights

log = logging.getLogger(__name__)

#: nkolkin13/STROTSS commit this implementation was checked against
OFFICIAL_COMMIT = "9a1543a36901cf744d3afbba6d8576a64de73f17"


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class StrotssConfig:
    """Everything that changes a STROTSS output except the seed and the weights (defaults: the official code)."""

    long_side: int = _opt(512, "long side of the last scale (the output); official: 64 * 2**(MAX_SCALES - 2)")
    scales: int = _opt(4, "number of scales, each half the long side of the next (official MAX_SCALES - 1)")
    iters_per_scale: int = _opt(250, "RMSprop steps per scale (st_helper.py MAX_ITER)")
    lr: float = _opt(2e-3, "learning rate at every scale but the last")
    lr_last: float = _opt(1e-3, "learning rate at the last scale")
    content_weight: float = _opt(1.0, "the README's content weight; the objective uses 16x it, halved per scale")
    pyramid_levels: int = _opt(5, "Laplacian pyramid bands the image is optimised as")
    n_locations: int = _opt(1024, "output/content locations per step (32**2)")
    style_samples: int = _opt(1000, "style locations per draw")
    style_draws: int = _opt(5, "style draws per scale")
    grid_cells: int = _opt(128**2, "about this many grid points per scale")
    moment_weight: float = _opt(1.0, "weight of the moment and palette terms")

    def __post_init__(self) -> None:
        if self.long_side < 8 or self.scales < 1 or self.iters_per_scale < 0:
            raise ValueError("long_side >= 8, scales >= 1 and iters_per_scale >= 0 are needed")
        if self.long_side >> (self.scales - 1) < 2:
            raise ValueError(f"long_side {self.long_side} cannot be halved {self.scales - 1} times (coarsest < 2 px)")
        if min(self.n_locations, self.style_samples, self.style_draws, self.grid_cells) < 1:
            raise ValueError("n_locations, style_samples, style_draws and grid_cells must be >= 1")


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # seconds on a CPU: 2 scales (32, 64 px) of 8 steps, few locations
    "smoke": {"long_side": 64, "scales": 2, "iters_per_scale": 8, "n_locations": 128, "style_samples": 128,
              "style_draws": 2},
}


def strotss_config(settings: RunSettings) -> StrotssConfig:
    """The options of ``settings`` (preset, then ``--method-args``), typed and checked."""
    return Strotss().options(settings)


def long_side_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(W, H) after the official resize to ``long_side``: ``fac = L / max(H, W)``, sides ``int(side * fac)``."""
    w, h = size
    fac = float(long_side) / max(h, w)
    return max(1, int(w * fac)), max(1, int(h * fac))


def scale_long_sides(cfg: StrotssConfig, long_side: int | None = None) -> list[int]:
    """Long side of every scale, coarsest first (64, 128, 256, 512 for ``paper``)."""
    last = cfg.long_side if long_side is None else long_side
    return [last >> k for k in reversed(range(cfg.scales))]


def image_tensor(rgb: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1], divided in float64 as ``imread(...) / 255.`` is."""
    x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.uint8) / 255.0).float()
    return x.permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


def resize_to_long_side(x: torch.Tensor, long_side: int) -> torch.Tensor:
    """The official per-scale resize of an original image (1, 3, H, W): bilinear, align_corners False."""
    h, w = x.shape[-2:]
    fac = float(long_side) / max(h, w)
    return strotss_resample(x, (max(1, int(h * fac)), max(1, int(w * fac))))


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) result -> (H, W, 3) uint8: ``clamp(0, 1)``, then ``floor(255 x + 0.499999999)`` (imageio)."""
    arr = x.detach()[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy().astype(np.float64)
    return np.floor(arr * 255 + 0.499999999).astype(np.uint8)


#: called at every step: (scale index, iteration, image before the step, loss terms, rows, columns)
StepHook = Callable[[int, int, torch.Tensor, dict[str, float], np.ndarray, np.ndarray], None]


def stylise(
    content_full: torch.Tensor,
    style_full: torch.Tensor,
    extractor: torch.nn.Module,
    cfg: StrotssConfig,
    sampler: StrotssSampler,
    progress: bool = False,
    long_side: int | None = None,
    on_step: StepHook | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Run STROTSS on raw-RGB (1, 3, H, W) originals in [0, 1]; returns the last scale's result (raw RGB,
    not clamped) and a per-scale trace."""
    weight = cfg.content_weight * 16.0
    sides = scale_long_sides(cfg, long_side)
    result: torch.Tensor | None = None
    history: list[dict[str, Any]] = []
    for k, side in enumerate(sides):
        content = resize_to_long_side(content_full, side)
        style = resize_to_long_side(style_full, side)
        last = k == len(sides) - 1
        lr = cfg.lr_last if last else cfg.lr
        band = laplacian(content)
        if k == 0:
            result = style.mean(dim=(2, 3), keepdim=True) + band
        else:
            result = strotss_resample(result, content.shape[-2:])
            if not last:
                result = result + band
        began = time.perf_counter()
        result, parts = _optimise_scale(result, content, style, extractor, cfg, weight, lr, sampler, progress, k,
                                        side, on_step)  # fmt: skip
        seconds = round(time.perf_counter() - began, 3)
        history.append({"long_side": side, "size": list(content.shape[-2:]), "style_size": list(style.shape[-2:]),
                        "content_weight": weight, "lr": lr, "seconds": seconds, **parts})  # fmt: skip
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
    sampler: StrotssSampler,
    progress: bool,
    index: int,
    side: int,
    on_step: StepHook | None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    pyramid = [b.detach().clone().requires_grad_(True) for b in make_laplacian_pyramid(init, cfg.pyramid_levels)]
    optimizer = torch.optim.RMSprop(pyramid, lr=lr)
    with torch.no_grad():
        content_feats = extractor(content)
        style_feats = extractor(style)
        sh, sw = style.shape[-2:]
        rows, cols = sampler.style_pixels(sh, sw, cfg.style_samples, cfg.style_draws)
        style_cols = StyleTarget.from_cols(sample_hypercolumns(style_feats, rows, cols, bilinear=False))
        del style_feats
    sampler.start_scale(content.shape[-2], content.shape[-1], cfg.grid_cells)
    parts: dict[str, Any] = {"loss": None, "first_loss": None}
    image = init.detach()
    steps = range(cfg.iters_per_scale)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"strotss {side}px", leave=False)
    for it in steps:
        optimizer.zero_grad(set_to_none=True)
        image = fold_laplacian_pyramid(pyramid)
        r, c = sampler.step(it, cfg.n_locations)
        feats = extractor(image)
        out_cols = sample_hypercolumns(feats, r, c)
        content_cols = sample_hypercolumns(content_feats, r, c)
        loss, terms = strotss_loss(out_cols, content_cols, style_cols, content_weight, cfg.moment_weight)
        if on_step is not None:
            on_step(index, it, image.detach(), {"total": float(loss.detach()), **terms}, r, c)
        loss.backward()
        optimizer.step()
        parts = {"loss": float(loss.detach()), **terms, "first_loss": parts["first_loss"]}
        if parts["first_loss"] is None:
            parts["first_loss"] = parts["loss"]
    # the official code passes on the image of the last evaluated step, not the one after its update
    return image.detach(), parts


class Strotss(Method):
    name = "strotss"
    paper = "Kolkin, Salavon, Shakhnarovich. Style Transfer by Relaxed Optimal Transport and Self-Similarity. CVPR 2019"
    summary = "The authors' STROTSS: Laplacian-pyramid RMSprop, relaxed-EMD style + self-similarity content, VGG16."
    devices = ("cpu", "cuda", "mps")
    supports_max_side = True
    in_smoke = True
    version = "2"  # 2: the official code's computation (1 followed a third-party fork)
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
            "version": self.version,
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
        if settings.max_side:  # the OOM ladder caps the short side of the output
            w, h = s.size
            long_side = max(8, min(long_side, int(settings.max_side * max(w, h) / min(w, h))))
        out_size = long_side_size(s.size, long_side)
        geometry = Geometry.resize(s.size, out_size)

        extractor, weights = load_strotss_vgg(self._weights_spec(settings), device, settings.allow_random_weights)
        if weights["random"]:
            log.warning("strotss: RANDOM VGG16 weights (smoke/test only): the output means nothing")
        start = time.perf_counter()
        content = image_tensor(np.asarray(s.image), device)
        style = image_tensor(np.asarray(a.image), device)
        result, trace = stylise(content, style, extractor, cfg, StrotssSampler(settings.seed), settings.progress,
                                long_side=long_side)  # fmt: skip
        pixels = to_uint8(result)
        if (pixels.shape[1], pixels.shape[0]) != out_size:  # cannot happen: the same arithmetic
            raise AssertionError(f"strotss output {pixels.shape[1]}x{pixels.shape[0]} != predicted {out_size}")
        info = {
            "seed": settings.seed,
            "device": device,
            "weights": weights,
            "random_weights": bool(weights["random"]),
            "inputs": {"structure": s.record(), "appearance": a.record()},
            "long_side": long_side,
            "official_commit": OFFICIAL_COMMIT,
            "optimise_seconds": round(time.perf_counter() - start, 3),
            **trace,
        }
        return MethodResult(image=Image.fromarray(pixels, mode="RGB"), geometry=geometry, info=info)
