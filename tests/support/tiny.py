"""Tiny Splice configurations for tests: a random ViT-Ti/16 at 96 px, images of 64-100 px."""

from __future__ import annotations

from splice.model.config import SpliceConfig
from splice.model.vit import load_vit

TINY = dict(backbone="vit_tiny_patch16_224", weights="random", vit_short_side=96, vit_max_side=160)


def tiny_config(**overrides) -> SpliceConfig:
    values = {**TINY, "steps": 4, "entire_every": 3, "checkpoint_every": 2, **overrides}
    return SpliceConfig.from_preset("paper", **values)


def tiny_extractor(cfg: SpliceConfig | None = None):
    cfg = cfg or tiny_config()
    return load_vit(cfg.backbone, cfg.weights, short_side=cfg.vit_short_side, max_side=cfg.vit_max_side)
