"""Test helpers for ViTs: the reference-values weight recipe and tiny random models."""

from __future__ import annotations

from pathlib import Path

import torch


def recipe_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """Deterministic stand-in weights (reference_values.json "weights_recipe")."""
    import timm

    model = timm.create_model(arch, pretrained=False, num_classes=0)
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, v in model.state_dict().items():
        noise = 0.02 * torch.randn(v.shape, generator=g)
        out[k] = 1 + noise if (v.dim() == 1 and k.endswith(".weight")) else noise
    return out


def save_recipe_weights(arch: str, path: Path, dino_layout: bool = True) -> Path:
    sd = recipe_state_dict(arch)
    if dino_layout:  # DINO release files have the same keys as timm's with num_classes=0
        sd = {k: v for k, v in sd.items()}
    torch.save(sd, path)
    return path
