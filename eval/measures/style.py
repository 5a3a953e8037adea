"""Gram-matrix style distance to the appearance image (Gatys, Ecker, Bethge, CVPR 2016).

The style representation of Gatys et al.: Gram matrices of ImageNet VGG19 activations at
``relu1_1, relu2_1, relu3_1, relu4_1, relu5_1`` (torchvision ``vgg19().features`` indices 1, 6,
11, 20, 29) on ImageNet-normalised [0, 1] input. Per layer ``G = F F^T / (H W)`` (F: C x HW; the
normalisation by the number of positions that Gatys' own PyTorch code uses), and

    gram = 1/5 * sum_l mean_ij (G_out^l - G_ref^l)^2

which is 4/5 of the paper's ``sum_l E_l`` (eq. 4-5: ``E_l = 1/(4 N_l^2 M_l^2) sum (G - A)^2`` with
unnormalised Grams, ``w_l = 1/5``). Dividing by H W makes images of different sizes comparable
(output and appearance image usually differ). Per-layer values are reported too: they differ
by orders of magnitude.

No library computes this definition: ``piq.StyleLoss`` uses unnormalised Grams (a value that grows
with the image size, so not a distance between images of different sizes). The test checks the
relation ``piq = sum_l ours_l * (H_l W_l)^2`` on same-size images, and the value against
torchvision's VGG19 and the formula computed directly. Grams are kept on disk (float64, ~4.9 MB
per image); images are shrunk to ``max_side`` first (512 by default, as in Gatys et al.).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from PIL import Image

from splice.core.imageio import to_tensor

from .base import APPEARANCE, Measure, limit_side
from .weights import TORCHVISION_TAG, WeightsSource, load_torchvision_features, torchvision_source

GRAM_LAYERS: dict[str, int] = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GATYS_PAPER = "Gatys, Ecker, Bethge. Image Style Transfer Using Convolutional Neural Networks. CVPR 2016"


@dataclasses.dataclass(frozen=True)
class GramOptions:
    weights: str = dataclasses.field(default=TORCHVISION_TAG, metadata={
        "help": "VGG19 weights: torchvision tag IMAGENET1K_V1, a state-dict file, or random"})
    max_side: int | None = dataclasses.field(default=512, metadata={
        "help": "shrink each image so the longer side is at most this (bicubic); none = native size"})


def gram(feature) -> np.ndarray:
    """``F F^T / (H W)`` of a (1, C, H, W) activation, in float64."""
    _, c, h, w = feature.shape
    f = feature[0].reshape(c, h * w).double()
    return (f @ f.T / (h * w)).cpu().numpy()


class GramDistance(Measure):
    name = "gram"
    label = "Gram-matrix style distance (VGG19) to the appearance image"
    default_model = "VGG19 ImageNet (torchvision IMAGENET1K_V1), relu1_1 to relu5_1"
    digits = None  # values span orders of magnitude with the weights and the image size
    compares = APPEARANCE
    higher_is_better = False
    reference = GATYS_PAPER
    packages = {"torchvision": "torchvision"}
    persist = True
    Options = GramOptions
    presets = {"paper": {}, "smoke": {"max_side": 128}}

    def weight_sources(self) -> dict[str, WeightsSource]:
        return {"vgg19": torchvision_source("vgg19", self.opts.weights)}

    def _load(self) -> None:
        import torch

        source = self.resolved_sources()["vgg19"]
        features = load_torchvision_features("vgg19", source)
        self.model = features[: max(GRAM_LAYERS.values()) + 1].to(self.device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def _extract(self, image: Image.Image) -> dict[str, np.ndarray]:
        import torch

        x = to_tensor(limit_side(image, self.opts.max_side))[None].to(self.device)
        at = {i: name for name, i in GRAM_LAYERS.items()}
        out: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            x = (x - self.mean) / self.std
            for i, layer in enumerate(self.model):
                x = layer(x)
                if i in at:
                    out[at[i]] = gram(x)
        return out

    def _compare(self, out: dict[str, Any], ref: dict[str, Any]) -> dict[str, float]:
        parts = {name: float(np.mean((out[name] - ref[name]) ** 2)) for name in GRAM_LAYERS}
        return {"value": float(np.mean(list(parts.values()))), **parts}
