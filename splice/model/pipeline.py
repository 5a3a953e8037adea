"""Splice on one pair of image files: load, resize, train, and describe what was done.

Shared by ``splice run`` (one pair, one output folder) and the ``splice`` method of the
benchmark (:mod:`splice.splice_method`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from splice.core.geometry import Geometry
from splice.core.imageio import LoadedImage, load_rgb, sha256_file, to_image, to_tensor
from splice.model.config import SpliceConfig
from splice.model.train import TrainResult, train_splice
from splice.model.vit import ViTExtractor, load_vit

log = logging.getLogger(__name__)

_EXTRACTORS: dict[tuple, ViTExtractor] = {}


def get_extractor(cfg: SpliceConfig, device: str, allow_random: bool = False) -> ViTExtractor:
    """The frozen ViT for ``cfg``, kept for the life of the process (benchmark workers reuse it)."""
    key = (cfg.backbone, cfg.weights, str(device), allow_random, cfg.vit_short_side, cfg.vit_max_side)
    if key not in _EXTRACTORS:
        _EXTRACTORS.clear()  # one model at a time: ViT-B/8 is 350 MB
        _EXTRACTORS[key] = load_vit(cfg.backbone, cfg.weights, device=device, allow_random=allow_random,
                                    short_side=cfg.vit_short_side, max_side=cfg.vit_max_side)
    return _EXTRACTORS[key]


def _fit_short_side(img: Image.Image, short: int | None, cap: int | None) -> tuple[Image.Image, Geometry, int | None]:
    """Resize ``img`` to shorter side ``short``, never above ``cap``; also the side used (None = untouched)."""
    if cap is not None and min(img.size) > cap:
        short = min(short or cap, cap)
    if short is None or short == min(img.size):
        return img, Geometry.identity(img.size), None
    geom = Geometry.resize_short_side(img.size, short)
    return geom.apply(img), geom, short


@dataclass
class PreparedPair:
    structure: LoadedImage
    appearance: LoadedImage
    structure_image: Image.Image  # after resizing
    appearance_image: Image.Image
    geometry: Geometry  # structure image (as loaded) -> generator input = output
    notes: list[str] = field(default_factory=list)


def prepare_pair(structure: Path, appearance: Path, cfg: SpliceConfig, max_side: int | None = None) -> PreparedPair:
    """Read both images and apply ``cfg.resize`` (structure) and the ``max_side`` cap (both)."""
    s = load_rgb(structure, role="structure image")
    t = load_rgb(appearance, role="appearance image")
    s_img, geometry, s_short = _fit_short_side(s.image, cfg.resize, max_side)
    t_img, _, t_short = _fit_short_side(t.image, cfg.resize_appearance, max_side)
    notes = [f"{role} resized to shorter side {short}"
             for role, short in (("structure", s_short), ("appearance", t_short)) if short is not None]
    return PreparedPair(s, t, s_img, t_img, geometry, notes)


def run_pair(
    structure: Path,
    appearance: Path,
    cfg: SpliceConfig,
    *,
    seed: int,
    device: str,
    workdir: Path | None,
    resume: bool = True,
    allow_random: bool = False,
    max_side: int | None = None,
    progress: bool = False,
    snapshot_dir: Path | None = None,
    stop_after: int | None = None,
) -> tuple[Image.Image, Geometry, dict[str, Any], TrainResult]:
    """Train on the pair and return (output image, geometry, info for the record, raw result)."""
    pair = prepare_pair(Path(structure), Path(appearance), cfg, max_side=max_side)
    t0 = time.perf_counter()
    extractor = get_extractor(cfg, device, allow_random=allow_random)
    load_seconds = time.perf_counter() - t0
    S = to_tensor(pair.structure_image)[None]
    T = to_tensor(pair.appearance_image)[None]
    fingerprint = {
        "structure_sha256": sha256_file(structure),
        "appearance_sha256": sha256_file(appearance),
        "size": list(pair.structure_image.size),
        "weights": extractor.identity.to_dict(),
    }

    snap = None
    if snapshot_dir is not None:
        from splice.core.atomic import atomic_save_image

        def snap(step: int, out: torch.Tensor) -> str:
            p = Path(snapshot_dir) / f"step_{step:06d}.png"
            atomic_save_image(p, to_image(out))
            return str(p)

    result = train_splice(S, T, cfg, extractor, seed=seed, device=device, workdir=workdir, resume=resume,
                          fingerprint=fingerprint, progress=progress, snapshot=snap, stop_after=stop_after)
    image = to_image(result.output)
    info = {
        "inputs": {"structure": {**pair.structure.record(), "sha256": fingerprint["structure_sha256"]},
                   "appearance": {**pair.appearance.record(), "sha256": fingerprint["appearance_sha256"]}},
        "input_notes": pair.notes,
        "weights": extractor.identity.to_dict(),
        "random_weights": extractor.identity.random,
        "faithful": cfg.faithful,
        "steps": result.steps,
        "resumed_from_step": result.resumed_from,
        "seconds_total": round(result.seconds_total, 3),
        "seconds_this_run": round(result.seconds_this_run, 3),
        "seconds_per_step": round(result.seconds_per_step, 5),
        "model_load_seconds": round(load_seconds, 3),
        "peak_memory_mb": round(result.peak_memory_mb, 1),
        "final_loss_terms": result.final_terms,
        "last_full_image_terms": result.last_entire_terms,
        "loss_history_every_10": [h for h in result.history if h[0] % 10 == 0 or h[0] == result.steps - 1],
        "snapshots": result.snapshots,
    }
    return image, pair.geometry, info, result
