"""Shared fixtures: tiny synthetic pairs made in the test, no network, no real weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Two cores on the reference machine: keep every test single-threaded and deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
PAPER_DATA = SHARED / "data" / "paper"


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


@pytest.fixture
def tiny_pair(tmp_path) -> tuple[Path, Path]:
    """A 96x80 structure image and a 72x72 appearance image as PNG files."""
    s = tmp_path / "inputs" / "structure.png"
    a = tmp_path / "inputs" / "appearance.png"
    s.parent.mkdir(parents=True)
    make_image(96, 80, seed=1).save(s)
    make_image(72, 72, seed=2).save(a)
    return s, a


@pytest.fixture
def paper_data() -> Path:
    if not PAPER_DATA.exists():
        pytest.skip("../shared/data/paper is absent")
    return PAPER_DATA
