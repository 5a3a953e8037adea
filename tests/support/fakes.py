"""Deterministic stand-ins for Mask R-CNN and the DINO ViT, for the eval tests.

``ColourDetector`` "detects" pure-ish red regions as a cat and green regions as a dog
(one instance per colour), so masks and IoUs can be computed by hand. ``ColourSegmenter`` labels every
pixel by its dominant channel: red -> object, green -> grass, blue -> sky (the merged label space of
:mod:`eval.labelmaps`). ``TinyExtractor`` returns patch-mean "keys" on a 4x4 grid and the image mean as
CLS token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from eval.detector import DetectorSettings
from eval.iou import Instance
from eval.segmenter import SegmenterSettings

OBJECT, GRASS, SKY = 0, 46, 40  # merged labels (eval.labelmaps.labels())


def _colour_identity() -> dict:
    return {"backend": "test", "arch": "colour", "spec": "v1", "random": False}


class _ColourModel:
    """What the scorers ask a model besides its output: identity, randomness, a call counter."""

    identity: dict
    calls: int

    @property
    def random(self) -> bool:
        return False

    @property
    def spec(self) -> str:
        return "v1"

    def cache_identity(self) -> dict:
        return dict(self.identity)


@dataclass
class ColourDetector(_ColourModel):
    name: str = "colour-test"
    settings: DetectorSettings = field(default_factory=DetectorSettings)
    identity: dict = field(default_factory=_colour_identity)
    calls: int = 0

    def detect(self, images):
        self.calls += len(images)
        out = []
        for im in images:
            a = np.asarray(im.convert("RGB")).astype(int)
            r, g, b = a[..., 0], a[..., 1], a[..., 2]
            found = []
            red = (r > g) & (r > b) & (r >= 128)
            green = (g > r) & (g > b) & (g >= 128)
            if red.any():
                found.append(Instance(17, "cat", 0.9, red))
            if green.any():
                found.append(Instance(18, "dog", 0.8, green))
            out.append(found)
        return out


@dataclass
class ColourSegmenter(_ColourModel):
    name: str = "colour-panoptic"
    settings: SegmenterSettings = field(default_factory=SegmenterSettings)
    identity: dict = field(default_factory=_colour_identity)
    calls: int = 0

    def label_maps(self, images):
        self.calls += len(images)
        labels = np.array([OBJECT, GRASS, SKY], dtype=np.uint8)
        return [labels[np.asarray(im.convert("RGB")).argmax(axis=-1)] for im in images]


class TinyExtractor:
    """``image_features`` like splice.model.vit.ViTExtractor, on a 4x4 grid of patch means."""

    def __init__(self):
        self.identity = {"backbone": "tiny", "spec": "random", "source": "random", "sha256": None, "random": True}
        self.short_side, self.max_side = 64, 64
        self.calls = 0

    def image_features(self, image: torch.Tensor) -> dict:
        self.calls += 1
        x = torch.nn.functional.adaptive_avg_pool2d(image[None], (4, 4))[0]  # 3 x 4 x 4
        keys = x.flatten(1).T.contiguous() + 0.1  # 16 x 3
        n = keys.norm(dim=-1, keepdim=True)
        ssim = (keys @ keys.T) / torch.clamp(n @ n.T, min=1e-8)
        return {"ssim": ssim, "cls": image.mean(dim=(1, 2)), "keys": keys}


def shapes_image(size, red=None, green=None, background=(0, 0, 255)) -> Image.Image:
    """A ``size`` (W, H) image with axis-aligned red/green boxes (left, top, right, bottom)."""
    w, h = size
    a = np.zeros((h, w, 3), np.uint8)
    a[:] = background
    if red:
        a[red[1] : red[3], red[0] : red[2]] = (255, 0, 0)
    if green:
        a[green[1] : green[3], green[0] : green[2]] = (0, 255, 0)
    return Image.fromarray(a, "RGB")
