"""Splice registered as a benchmark method (the same interface as every baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from splice.core.method import Method, MethodResult, Pair, Requirement, RunSettings
from splice.core.paths import weights_dir
from splice.core.weightfiles import WEIGHT_SUFFIXES
from splice.model.config import PRESETS, SpliceConfig
from splice.model.weights import DINO_FILES, _timm_cached_file, canonical_backbone


def splice_config(settings: RunSettings) -> SpliceConfig:
    """The configuration of ``settings``: its preset, ``--method-args`` and ``--weights`` (typed, checked)."""
    overrides = dict(settings.options)
    if settings.weights is not None:
        overrides["weights"] = settings.weights
    return SpliceConfig.from_preset(settings.preset, **overrides)


class SpliceMethod(Method):
    name = "splice"
    paper = "Tumanyan, Bar-Tal, Bagon, Dekel. Splicing ViT Features for Semantic Appearance Transfer. CVPR 2022"
    summary = "DIP U-Net trained on the pair: DINO key self-similarity (structure) + CLS token (appearance)."
    supports_max_side = True
    in_smoke = True
    Options = SpliceConfig
    presets = PRESETS

    def options(self, settings: RunSettings) -> SpliceConfig:
        return splice_config(settings)

    def config(self, settings: RunSettings) -> dict[str, Any]:
        cfg = splice_config(settings)
        return {**cfg.hashed(), "preset": cfg.preset, "max_side": settings.max_side}

    def requirements(self, settings: RunSettings) -> list[Requirement]:
        cfg = splice_config(settings)
        arch = canonical_backbone(cfg.backbone)
        if cfg.weights == "random":
            return [Requirement("ViT weights", "random (explicit)", True)]
        if Path(cfg.weights).suffix in WEIGHT_SUFFIXES:
            return [Requirement("ViT weights", f"local file {cfg.weights}", Path(cfg.weights).exists(), cfg.weights)]
        local = weights_dir() / DINO_FILES.get(arch, "-")
        tag = cfg.weights.partition(".")[2]
        cached = local if local.exists() else _timm_cached_file(arch, tag)
        how = f"{cfg.weights} via timm's cache, or {DINO_FILES.get(arch, 'a state dict')} in {weights_dir()}"
        return [Requirement("ViT weights", how, cached is not None or settings.allow_random_weights,
                            str(cached) if cached else None)]

    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:
        from splice.model.pipeline import run_pair

        cfg = splice_config(settings)
        image, geometry, info, _ = run_pair(
            pair.structure, pair.appearance, cfg, seed=settings.seed, device=settings.device,
            workdir=settings.workdir, resume=True, allow_random=settings.allow_random_weights,
            max_side=settings.max_side, progress=settings.progress,
        )
        info["config"] = cfg.to_dict()
        return MethodResult(image=image, geometry=geometry, info=info)
