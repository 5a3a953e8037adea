"""Instant colour baselines: ``reinhard`` and ``histogram``.

Both keep every pixel of the structure image where it is and change only its colours, so their
output has the structure image's native size and the identity geometry. They are the floor any
semantic appearance-transfer method (Splice, Tumanyan et al., CVPR 2022) must beat on appearance,
and a ceiling on layout preservation.

``reinhard``: E. Reinhard, M. Ashikhmin, B. Gooch, P. Shirley, "Color Transfer between Images",
IEEE Computer Graphics and Applications 21(5), 2001. Pixels go RGB -> LMS (the paper's matrix) ->
log10 -> Ruderman's decorrelated l-alpha-beta space; in that space each channel of the structure
image is shifted and scaled so that its mean and standard deviation equal the appearance image's;
then the inverse chain maps back to RGB. The inverse LMS->RGB matrix is the exact inverse of the
forward one (the paper prints it to 4 digits). ``log10(0)`` is avoided by clamping LMS at one grey
level (1/255), so a black pixel behaves like the darkest non-black one.

``histogram``: per-channel histogram specification in RGB (Gonzalez & Woods, "Digital Image
Processing", histogram matching). For each channel, a structure value ``v`` becomes the smallest
appearance value ``t`` whose cumulative share is at least the structure's cumulative share at
``v``: ``T(v) = min{t : CDF_app(t) >= CDF_str(v)}``. The map is monotone, uses only values present
in the appearance image, and makes the output's CDF equal the appearance's wherever the
structure's ties allow (exactly when the two CDFs share their steps).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image

from splice.core.geometry import Geometry
from splice.core.imageio import LoadedImage, load_rgb
from splice.core.method import Method, MethodResult, Pair, RunSettings

log = logging.getLogger(__name__)

PAPER_REINHARD = "Reinhard et al., Color Transfer between Images, IEEE CG&A 2001"
PAPER_HISTOGRAM = "Gonzalez & Woods, Digital Image Processing (histogram specification)"

# -- Reinhard et al. 2001, equations (4) and (6): RGB -> LMS and log-LMS -> l-alpha-beta ----------------------
RGB_TO_LMS = np.array(
    [
        [0.3811, 0.5783, 0.0402],
        [0.1967, 0.7244, 0.0782],
        [0.0241, 0.1288, 0.8444],
    ],
    dtype=np.float64,
)
LMS_TO_RGB = np.linalg.inv(RGB_TO_LMS)
LOGLMS_TO_LAB = np.diag([1 / np.sqrt(3), 1 / np.sqrt(6), 1 / np.sqrt(2)]) @ np.array(
    [[1.0, 1.0, 1.0], [1.0, 1.0, -2.0], [1.0, -1.0, 0.0]]
)
LAB_TO_LOGLMS = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, -1.0], [1.0, -2.0, 0.0]]) @ np.diag(
    [np.sqrt(3) / 3, np.sqrt(6) / 6, np.sqrt(2) / 2]
)
LMS_FLOOR = 1.0 / 255.0
"""Smallest LMS value before the logarithm (one grey level on the [0, 1] scale)."""
MIN_STD = 1e-6
"""A structure channel with a smaller spread is only shifted, never scaled (flat images)."""


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """float RGB in [0, 1], shape (..., 3) -> Ruderman l-alpha-beta, shape (..., 3)."""
    lms = np.maximum(rgb @ RGB_TO_LMS.T, LMS_FLOOR)
    return np.log10(lms) @ LOGLMS_TO_LAB.T


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_lab` (before clamping); values are not clipped."""
    lms = np.power(10.0, lab @ LAB_TO_LOGLMS.T)
    return lms @ LMS_TO_RGB.T


@dataclass(frozen=True)
class ChannelStats:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, values: np.ndarray) -> "ChannelStats":
        flat = values.reshape(-1, 3)
        return cls(mean=tuple(float(x) for x in flat.mean(0)), std=tuple(float(x) for x in flat.std(0)))

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}


def reinhard_transfer(structure: np.ndarray, appearance: np.ndarray) -> tuple[np.ndarray, dict]:
    """Reinhard colour transfer on uint8 RGB arrays (H, W, 3); returns a uint8 array and statistics."""
    src = rgb_to_lab(structure.astype(np.float64) / 255.0)
    tgt = rgb_to_lab(appearance.astype(np.float64) / 255.0)
    s, t = ChannelStats.of(src), ChannelStats.of(tgt)
    mean_s, std_s = np.array(s.mean), np.array(s.std)
    mean_t, std_t = np.array(t.mean), np.array(t.std)
    scale = np.where(std_s > MIN_STD, std_t / np.maximum(std_s, MIN_STD), 1.0)
    out_lab = (src - mean_s) * scale + mean_t
    rgb = lab_to_rgb(out_lab)
    clipped = float(np.mean((rgb < 0.0) | (rgb > 1.0)))
    out = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    stats = {"structure_lab": s.to_dict(), "appearance_lab": t.to_dict(), "scale": scale.tolist(),
             "clipped_share": clipped}  # fmt: skip
    return out, stats


def histogram_map(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Lookup table (256,) uint8 mapping one uint8 channel's values onto another's histogram.

    ``T(v) = min{t : CDF_target(t) >= CDF_source(v)}`` (histogram specification).
    """
    # Integer arithmetic: CDF_t(t) >= CDF_s(v)  <=>  cum_t(t) * n_s >= cum_s(v) * n_t, exactly.
    cum_s = np.cumsum(np.bincount(source.ravel(), minlength=256)).astype(np.int64)
    cum_t = np.cumsum(np.bincount(target.ravel(), minlength=256)).astype(np.int64)
    lut = np.searchsorted(cum_t * source.size, cum_s * target.size, side="left")
    return np.clip(lut, 0, 255).astype(np.uint8)


def histogram_transfer(structure: np.ndarray, appearance: np.ndarray) -> tuple[np.ndarray, dict]:
    """Per-channel histogram specification of uint8 RGB arrays; returns the output and the lookup tables."""
    out = np.empty_like(structure)
    luts = []
    for c in range(3):
        lut = histogram_map(structure[..., c], appearance[..., c])
        out[..., c] = lut[structure[..., c]]
        luts.append(lut)
    return out, {"luts_sha": [_short_hash(lut) for lut in luts]}


def _short_hash(arr: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(arr.tobytes()).hexdigest()[:12]


def _load_pair(pair: Pair) -> tuple[LoadedImage, LoadedImage]:
    s = load_rgb(pair.structure, role="structure image")
    a = load_rgb(pair.appearance, role="appearance image")
    return s, a


class _ColourMethod(Method):
    """Shared plumbing: load both images, transform colours, identity geometry."""

    devices = ("cpu",)
    in_benchmark = True
    in_smoke = True
    version = "1"

    def config(self, settings: RunSettings) -> dict:
        # Nothing but the algorithm changes the output: presets, seeds and devices do not.
        return {"method": self.name, "version": self.version}

    def _transfer(self, structure: np.ndarray, appearance: np.ndarray) -> tuple[np.ndarray, dict]:
        raise NotImplementedError

    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:
        s, a = _load_pair(pair)
        out, stats = self._transfer(np.asarray(s.image), np.asarray(a.image))
        info = {
            "weights": {},
            "random_weights": False,
            "inputs": {"structure": s.record(), "appearance": a.record()},
            "stats": stats,
            "seed_used": False,  # deterministic: the seed cannot change the output
        }
        return MethodResult(image=Image.fromarray(out, mode="RGB"), geometry=Geometry.identity(s.size), info=info)


class Reinhard(_ColourMethod):
    name = "reinhard"
    paper = PAPER_REINHARD
    summary = "Mean/std colour transfer in Ruderman's l-alpha-beta space; native size, identity geometry."

    def _transfer(self, structure, appearance):
        return reinhard_transfer(structure, appearance)


class Histogram(_ColourMethod):
    name = "histogram"
    paper = PAPER_HISTOGRAM
    summary = "Per-channel RGB histogram specification (CDF matching); native size, identity geometry."

    def _transfer(self, structure, appearance):
        return histogram_transfer(structure, appearance)
