"""Deterministic synthetic images for the tests (no files from outside the test)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def make_image(w: int, h: int, seed: int = 0, kind: str = "blobs") -> Image.Image:
    """A deterministic RGB test image with some structure (gradient + a few discs)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), 0.5 * np.ones_like(xx)], -1)
    for _ in range(3):
        cx, cy, r = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h, rng.uniform(0.1, 0.25) * min(w, h)
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
        img[mask] = rng.uniform(0, 1, 3)
    return Image.fromarray((img * 255).astype(np.uint8), "RGB")
