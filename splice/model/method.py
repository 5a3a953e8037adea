"""Splice registered as a benchmark method (the same interface as every baseline)."""

from __future__ import annotations

from typing import Any

from splice.model.config import SpliceConfig
from splice.core.method import Method, MethodResult, Pair, Requirement, RunSettings
from splice.model.weights import DINO_FILES, _timm_cached_file, canonical_backbone, weights_dir


def splice_config(settings: RunSettings) -> SpliceConfig:
    options = dict(settings.options)
    if settings.weights is not None:
        options["weights"] = settings.weights
    return SpliceConfig.from_preset(settings.preset if settings.preset in _presets() else "paper", **options)


def _presets():
    from splice.model.config import PRESETS

    return PRESETS


class SpliceMethod(Method):
    name = "splice"
    paper = "Tumanyan, Bar-Tal, Bagon, Dekel. Splicing ViT Features for Semantic Appearance Transfer. CVPR 2022"
    summary = "DIP U-Net trained on the pair: DINO key self-similarity (structure) + CLS token (appearance)."
    supports_max_side = True
    in_smoke = True

    def config(self, settings: RunSettings) -> dict[str, Any]:
        cfg = splice_config(settings)
        return {**cfg.hashed(), "preset": cfg.preset, "max_side": settings.max_side}

    def requirements(self, settings: RunSettings) -> list[Requirement]:
        cfg = splice_config(settings)
        arch = canonical_backbone(cfg.backbone)
        if cfg.weights == "random":
            return [Requirement("ViT weights", "random (explicit)", True)]
        from pathlib import Path

        if Path(cfg.weights).suffix in (".pth", ".pt", ".bin", ".safetensors"):
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
