"""Numbers from the authors' own code, and the deterministic inputs and weights they were made with.

``tests/data/official/<method>.json`` hold, per re-implemented method, the values the official
repository computed (``values`` / ``runs``) and the recipe that produced them (``recipe``: repository,
commit, inputs, weights, seeds, how it was run). The scripts that ran the official code are not part
of splice-bench; the formulas below re-create the same inputs and weights from the recipes' text:

- :func:`unit`, :func:`fill`, :func:`image`: the WCT2 / SinCUT / Structural-analogy recipe (an integer
  quadratic hash, no RNG);
- :func:`lowbias32`, :func:`vgg16_formula_state`, :func:`strotss_content`, :func:`strotss_style`: the
  STROTSS recipe (VGG16 weights from an integer hash; integer-only test images);
- :func:`summary`: the statistics the values were recorded as.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from typing import Any

import numpy as np

from tests.support import PROJECT as REPO

DATA = REPO / "tests" / "data" / "official"


@lru_cache(maxsize=None)
def load(name: str) -> dict[str, Any]:
    """``tests/data/official/<name>.json``."""
    return json.loads((DATA / f"{name}.json").read_text())


def sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


# -- WCT2 / SinCUT / Structural-analogy recipe -----------------------------------------------------------
P = 2**31 - 1


def unit(n: int, k: int) -> np.ndarray:
    """n values in [-1, 1): j = i + (k+1)*1000003, h = ((j*j mod P)*1103515245 + j*1013904223) mod P, 2h/P - 1."""
    j = np.arange(n, dtype=np.int64) + (k + 1) * 1000003
    h = ((j * j) % P * 1103515245 + j * 1013904223) % P
    return 2.0 * (h.astype(np.float64) / P) - 1.0


def fill(shape, k: int, mean: float, std: float) -> np.ndarray:
    """float32(mean + std*sqrt(3)*unit(numel, k)), row-major in ``shape``."""
    n = int(np.prod(shape)) if len(shape) else 1
    return (mean + (std * math.sqrt(3.0)) * unit(n, k)).astype(np.float32).reshape(shape)


def image(c: int, h: int, w: int, k: int) -> np.ndarray:
    """(c, h, w) float32 in about [0.05, 0.95]: a smooth pattern plus 0.05 x :func:`unit` noise."""
    ch = np.arange(c, dtype=np.float64)[:, None, None]
    y = np.arange(h, dtype=np.float64)[None, :, None]
    x = np.arange(w, dtype=np.float64)[None, None, :]
    base = 0.5 + 0.4 * np.sin(0.31 * (k + 1) + 0.173 * (ch + 1) * y + 0.097 * x) * np.cos(
        0.053 * (ch + 2) * x - 0.071 * y + 0.5 * k)
    return (base + 0.05 * unit(c * h * w, 1000 + k).reshape(c, h, w)).astype(np.float32)


def load_filled(net, rows: list[dict[str, Any]]) -> None:
    """Fill ``net``'s tensors named by a recipe's weights table (``project_key``, official ``shape``, k, mean, std)."""
    import torch

    state = net.state_dict()
    with torch.no_grad():
        for r in rows:
            target = state[r["project_key"]]
            target.copy_(torch.from_numpy(fill(r["shape"], r["k"], r["mean"], r["std"])).reshape(target.shape))


def summary(t) -> dict[str, Any]:
    """The recorded statistics of a tensor, in float64 over its row-major elements."""
    a = np.asarray(t.detach().cpu().double().numpy() if hasattr(t, "detach") else t, dtype=np.float64)
    flat = a.reshape(-1)
    return {"shape": list(a.shape), "mean": float(flat.mean()), "std": float(flat.std()), "sum": float(flat.sum()),
            "abs_sum": float(np.abs(flat).sum()), "min": float(flat.min()), "max": float(flat.max()),
            "first": [float(v) for v in flat[:8]], "last": [float(v) for v in flat[-4:]]}  # fmt: skip


def assert_summary(mine, official: dict[str, Any], atol: float = 1e-5, rtol: float = 1e-5, what: str = "") -> None:
    """Element values (min, max, first, last, mean, std) within ``atol + rtol*|x|``; sums within ``atol*n``."""
    got = summary(mine) if not isinstance(mine, dict) else mine
    assert got["shape"] == official["shape"], f"{what}: shape {got['shape']} != official {official['shape']}"
    n = int(np.prod(official["shape"]))
    for key in ("min", "max", "first", "last", "mean", "std", "sum", "abs_sum"):
        tol = atol * n if key in ("sum", "abs_sum") else atol
        np.testing.assert_allclose(got[key], official[key], atol=tol, rtol=rtol, err_msg=f"{what}.{key}")


# -- STROTSS recipe ---------------------------------------------------------------------------------------
M32 = np.uint64(0xFFFFFFFF)

#: (features index K, out channels, in channels) of torchvision's vgg16().features convolutions
VGG16_CONVS = ((0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256), (14, 256, 256),
               (17, 512, 256), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512))


def lowbias32(x) -> np.ndarray:
    """Chris Wellons' lowbias32 integer hash on uint32 values."""
    x = np.asarray(x, dtype=np.uint64) & M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & M32
    x ^= x >> np.uint64(16)
    return x


def hash_uniform(count: int, salt: int) -> np.ndarray:
    """2 * lowbias32((n + lowbias32(salt)) mod 2**32) / 2**32 - 1 for n = 0..count-1 (float64)."""
    n = np.arange(count, dtype=np.uint64)
    return lowbias32((n + lowbias32(np.uint64(salt))) & M32).astype(np.float64) / 4294967296.0 * 2.0 - 1.0


@lru_cache(maxsize=1)
def vgg16_formula_state() -> dict[str, Any]:
    """torchvision-layout ``features.K.weight/bias``: weight sqrt(6/(9 I)) u(n; 2K+1), bias 0.05 u(o; 2K+2)."""
    import torch

    state = {}
    for k, o, i in VGG16_CONVS:
        w = np.sqrt(6.0 / (9 * i)) * hash_uniform(o * i * 9, 2 * k + 1)
        state[f"features.{k}.weight"] = torch.from_numpy(w.reshape(o, i, 3, 3).astype(np.float32))
        state[f"features.{k}.bias"] = torch.from_numpy((0.05 * hash_uniform(o, 2 * k + 2)).astype(np.float32))
    return state


def strotss_content(h: int = 96, w: int = 128) -> np.ndarray:
    """The recipe's content image: (h, w, 3) uint8 from integer formulas (gradients, a disc, a textured box)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    r = 40 + (150 * y) // (h - 1)
    g = 60 + (100 * x) // (w - 1)
    b = 180 - (120 * y) // (h - 1)
    disc = (x - w // 2) ** 2 + (y - h // 2) ** 2 < (h * 7 // 24) ** 2
    r = np.where(disc, 220, r)
    g = np.where(disc, 80 + (x * y) % 40, g)
    b = np.where(disc, 40, b)
    rect = (x >= w // 12) & (x < w // 3) & (y >= h * 5 // 8) & (y < h * 15 // 16)
    v = 200 - 3 * ((x + y) % 16)
    r, g, b = (np.where(rect, v, c) for c in (r, g, b))
    return np.stack([r, g, b], 2).astype(np.uint8)


def strotss_style(h: int = 100, w: int = 150) -> np.ndarray:
    """The recipe's style image: (h, w, 3) uint8 stripes and texture from integer formulas."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    t = (3 * x + 2 * y) % 60
    noise = ((x * 7919 + y * 104729) % 251) // 8
    r = 30 + 3 * t + noise
    g = 200 - 2 * t + noise // 2
    b = 60 + (x * y) % 97 + ((x // 15 + y // 15) % 2) * 60
    return np.stack([r, g, b], 2).astype(np.uint8)
