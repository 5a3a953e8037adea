"""Layout IoU on boolean masks: the numbers behind the Splice paper's Table 2.

Tumanyan et al. (CVPR 2022) measure how well a method keeps the structure image's
semantic layout by comparing Mask R-CNN masks of the structure image and of the output.
PROTOCOL.md fixes the definitions implemented here; every function is pure (numpy in,
numbers out) so each can be checked by hand.

Definitions (masks are boolean ``H x W`` arrays of the *aligned* structure image and of
the output, which must have the same shape):

- ``mask_iou(a, b) = |a ∩ b| / |a ∪ b|``; ``NaN`` when both are empty (undefined).
- **union IoU** (primary, class-agnostic): ``mask_iou(∪ structure masks, ∪ output masks)``.
  Class-agnostic because a cat -> dog transfer legitimately changes the class.
- **per-class IoU**: for every class name detected in either image, ``mask_iou`` of the
  union of that class's masks in each image (0 when only one image has the class).
- **instance-matched IoU**: a one-to-one, class-agnostic matching of structure instances
  to output instances that maximises the total mask IoU (Hungarian algorithm,
  ``scipy.optimize.linear_sum_assignment``); the score is
  ``sum(IoU of matched pairs) / max(n_structure, n_output)``, so every unmatched
  instance on either side counts as a zero. It is 1 only when both images have the same
  number of instances and each pair overlaps perfectly.
- **exclusions**: no instance (or only empty masks) in the structure image -> the pair is excluded (no
  number, counted by the tables); instances in the structure image but none in the
  output -> union IoU = matched IoU = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

NO_STRUCTURE_DETECTION = "no detection in the structure image"


@dataclass(frozen=True)
class Instance:
    """One detected object: COCO class, detector score and a boolean mask (H x W)."""

    label: int
    name: str
    score: float
    mask: np.ndarray

    def __post_init__(self):
        if self.mask.dtype != bool or self.mask.ndim != 2:
            raise ValueError(f"an instance mask must be a 2-D boolean array, got {self.mask.dtype} {self.mask.shape}")


@dataclass
class LayoutScores:
    """The IoU numbers of one (aligned structure, output) pair (module docstring)."""

    excluded: bool
    exclusion_reason: str | None
    iou: float | None
    matched_iou: float | None
    per_class: dict[str, float] = field(default_factory=dict)
    n_structure: int = 0
    n_output: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "excluded": self.excluded,
            "exclusion_reason": self.exclusion_reason,
            "iou": self.iou,
            "matched_iou": self.matched_iou,
            "per_class": dict(self.per_class),
            "n_structure": self.n_structure,
            "n_output": self.n_output,
        }


def _check_shapes(*masks: np.ndarray) -> None:
    shapes = {m.shape for m in masks}
    if len(shapes) > 1:
        raise ValueError(f"masks are not aligned: shapes {sorted(shapes)}; apply the output geometry first")


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks; NaN when both are empty."""
    _check_shapes(a, b)
    union = int(np.count_nonzero(a | b))
    if union == 0:
        return float("nan")
    return int(np.count_nonzero(a & b)) / union


def union_mask(masks: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Logical OR of ``masks`` (an all-False mask of ``shape`` when there are none)."""
    out = np.zeros(shape, dtype=bool)
    for m in masks:
        _check_shapes(out, m)
        out |= m
    return out


def union_iou(structure: Sequence[np.ndarray], output: Sequence[np.ndarray], shape: tuple[int, int]) -> float:
    """Class-agnostic IoU of the union of all structure masks and the union of all output masks."""
    return mask_iou(union_mask(structure, shape), union_mask(output, shape))


def pairwise_iou(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """``len(a) x len(b)`` matrix of mask IoUs (0 where both masks are empty)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    _check_shapes(*a, *b)
    fa = np.stack([m.reshape(-1) for m in a]).astype(np.float32)
    fb = np.stack([m.reshape(-1) for m in b]).astype(np.float32)
    inter = fa @ fb.T  # exact for counts below 2**24 pixels per mask
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return iou.astype(np.float64)


def matched_iou(structure: Sequence[np.ndarray], output: Sequence[np.ndarray]) -> float:
    """Hungarian-matched IoU: ``sum(matched IoUs) / max(n_structure, n_output)``.

    NaN when neither image has an instance; 0 when exactly one has none.
    """
    n_s, n_o = len(structure), len(output)
    if n_s == 0 and n_o == 0:
        return float("nan")
    if n_s == 0 or n_o == 0:
        return 0.0
    iou = pairwise_iou(structure, output)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return float(iou[rows, cols].sum()) / max(n_s, n_o)


def per_class_iou(structure: Sequence[Instance], output: Sequence[Instance],
                  shape: tuple[int, int]) -> dict[str, float]:  # fmt: skip
    """IoU of each class's union mask, for every class name present in either image (sorted)."""
    names = sorted({i.name for i in structure} | {i.name for i in output})
    out: dict[str, float] = {}
    for name in names:
        s = union_mask([i.mask for i in structure if i.name == name], shape)
        o = union_mask([i.mask for i in output if i.name == name], shape)
        value = mask_iou(s, o)
        out[name] = 0.0 if np.isnan(value) else value  # a class found only as empty masks
    return out


def layout_scores(structure: Sequence[Instance], output: Sequence[Instance], shape: tuple[int, int]) -> LayoutScores:
    """All IoU numbers of one pair, with the protocol's exclusion rules (module docstring)."""
    s_masks = [i.mask for i in structure]
    o_masks = [i.mask for i in output]
    _check_shapes(np.zeros(shape, bool), *s_masks, *o_masks)
    n_s, n_o = len(structure), len(output)
    if n_s == 0 or not any(m.any() for m in s_masks):
        return LayoutScores(True, NO_STRUCTURE_DETECTION, None, None, per_class_iou(structure, output, shape), n_s, n_o)
    return LayoutScores(
        excluded=False,
        exclusion_reason=None,
        iou=union_iou(s_masks, o_masks, shape),
        matched_iou=matched_iou(s_masks, o_masks),
        per_class=per_class_iou(structure, output, shape),
        n_structure=n_s,
        n_output=n_o,
    )
