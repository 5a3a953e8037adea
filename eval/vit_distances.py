"""The Splice objective as metrics on full images (PROTOCOL.md, "ViT structure and
appearance distances"; SPLICE.md for the features).

- ``structure_distance`` = MSE(SelfSim(output), SelfSim(structure)), lower is better;
- ``appearance_distance`` = MSE(CLS(output), CLS(appearance)), lower is better;
- ``appearance_cosine`` = cosine similarity of the two CLS tokens, higher is better.

Features come from :meth:`splice.model.vit.ViTExtractor.image_features` (one forward pass per
image serves both the self-similarity and the CLS token).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from splice.core.imageio import to_tensor

METRIC_KEYS = ("structure_distance", "appearance_distance", "appearance_cosine")
HIGHER_IS_BETTER = {"structure_distance": False, "appearance_distance": False, "appearance_cosine": True}


def image_features(extractor, image: Image.Image) -> dict[str, torch.Tensor]:
    """ViT features of an 8-bit RGB image, computed in float32 on the extractor's device."""
    device = extractor.mean.device
    feats = extractor.image_features(to_tensor(image).to(device))
    return {"ssim": feats["ssim"], "cls": feats["cls"]}


def vit_distances(feat_s: dict, feat_t: dict, feat_o: dict) -> dict[str, float]:
    """Distances between the output's features and the structure/appearance features."""
    if feat_o["ssim"].shape != feat_s["ssim"].shape:
        raise ValueError(
            f"self-similarity shapes differ ({tuple(feat_o['ssim'].shape)} vs {tuple(feat_s['ssim'].shape)}): "
            "align the output to the structure image first"
        )
    return {
        "structure_distance": F.mse_loss(feat_o["ssim"].float(), feat_s["ssim"].float()).item(),
        "appearance_distance": F.mse_loss(feat_o["cls"].float(), feat_t["cls"].float()).item(),
        "appearance_cosine": F.cosine_similarity(feat_o["cls"].float(), feat_t["cls"].float(), dim=0).item(),
    }


def align_output_to_structure(structure: Image.Image, output: Image.Image) -> tuple[Image.Image, str]:
    """Resize the output to the structure image's size (bicubic) when they differ."""
    if output.size == structure.size:
        return output, "identity"
    return output.resize(structure.size, resample=Image.Resampling.BICUBIC), "resize"


def score_images(extractor, structure: Image.Image, appearance: Image.Image, output: Image.Image) -> dict[str, Any]:
    """All three distances for one (structure, appearance, output) triple of RGB images."""
    output, aligned = align_output_to_structure(structure, output)
    result = vit_distances(image_features(extractor, structure), image_features(extractor, appearance),
                           image_features(extractor, output))
    result["aligned"] = aligned
    return result
