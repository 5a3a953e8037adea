"""Label maps of objects and stuff, and the layout numbers computed on them (PROTOCOL.md, ``panoptic``).

The Splice paper (Tumanyan et al., CVPR 2022) reports layout IoU on Mountains too, where COCO Mask R-CNN
finds nothing: mountains, sky, grass and water are "stuff". A COCO-panoptic model labels them. Its 133
classes (80 things, 53 stuff, :data:`COCO_PANOPTIC`, from the COCO panoptic category list
``panoptic_coco_categories.json`` of cocodataset/panopticapi, the order used by Mask2Former and detectron2)
become one label map per image in which **all thing classes are merged into a single "object" class**
(class-agnostic for the same reason as the Mask R-CNN IoU: cat -> dog legitimately changes the class).

Merged label space (:data:`LABELS`): ``0`` = object, ``1..53`` = the stuff classes in COCO panoptic order
(``sky-other-merged`` = 40, ``mountain-merged`` = 45), :data:`VOID` = 255 for pixels without a label.

Numbers of one (aligned structure, output) pair of label maps (pure functions, checkable by hand):

- ``iou`` (primary, *layout mIoU*): the mean, over the classes present in the aligned structure image, of
  the per-class IoU ``|S=c & O=c| / |S=c | O=c|``. A class only the output has does not enter the mean
  (it lowers the IoU of the class it took pixels from).
- ``pixel_accuracy``: the share of the structure image's labelled pixels whose output label is the same.
- ``per_class``: the IoU of every class of the mean, by name; ``output_only``: classes only the output has.
- excluded: the structure image has no labelled pixel (no number; counted by the tables).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

CLASSES_FILE = Path(__file__).with_name("coco_panoptic_classes.json")
VOID = 255
OBJECT = 0
NO_STRUCTURE_LABEL = "no labelled pixel in the structure image"


@dataclass(frozen=True)
class PanopticClass:
    id: int  # contiguous id 0..132 (Mask2Former's label id)
    coco_id: int  # the COCO panoptic category id
    name: str
    isthing: bool


@lru_cache(maxsize=1)
def coco_panoptic() -> tuple[PanopticClass, ...]:
    """The 133 COCO panoptic classes in contiguous order (things 0..79, stuff 80..132)."""
    rows = json.loads(CLASSES_FILE.read_text(encoding="utf-8"))
    classes = tuple(PanopticClass(int(r["id"]), int(r["coco_id"]), str(r["name"]), bool(r["isthing"])) for r in rows)
    assert [c.id for c in classes] == list(range(133)) and sum(c.isthing for c in classes) == 80
    return classes


@lru_cache(maxsize=1)
def labels() -> tuple[str, ...]:
    """Names of the merged label space: ``("object", "banner", ..., "rug-merged")`` (54 names)."""
    return ("object",) + tuple(c.name for c in coco_panoptic() if not c.isthing)


@lru_cache(maxsize=1)
def merge_index() -> np.ndarray:
    """``merge_index()[k]`` = the merged label of COCO panoptic class ``k`` (0..132)."""
    out = np.zeros(133, dtype=np.int64)
    stuff = 0
    for c in coco_panoptic():
        if c.isthing:
            out[c.id] = OBJECT
        else:
            stuff += 1
            out[c.id] = stuff
    return out


def merge_matrix() -> np.ndarray:
    """``(133, 54)`` 0/1 matrix summing the 80 thing classes' scores into "object" and keeping each stuff class."""
    m = np.zeros((133, len(labels())), dtype=np.float32)
    m[np.arange(133), merge_index()] = 1.0
    return m


def label_name(label: int) -> str:
    return "void" if label == VOID else labels()[label]


@dataclass
class LabelScores:
    """The layout numbers of one pair of label maps (module docstring)."""

    excluded: bool
    exclusion_reason: str | None
    iou: float | None
    pixel_accuracy: float | None
    per_class: dict[str, float] = field(default_factory=dict)
    output_only: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"excluded": self.excluded, "exclusion_reason": self.exclusion_reason, "iou": self.iou,
                "pixel_accuracy": self.pixel_accuracy, "per_class": dict(self.per_class),
                "output_only": list(self.output_only)}  # fmt: skip


def label_scores(structure: np.ndarray, output: np.ndarray) -> LabelScores:
    """Layout mIoU, pixel accuracy and per-class IoU of two aligned label maps (module docstring)."""
    if structure.shape != output.shape or structure.ndim != 2:
        raise ValueError(f"label maps are not aligned: {structure.shape} vs {output.shape}; "
                         "apply the output geometry first")  # fmt: skip
    s = structure.astype(np.int64)
    o = output.astype(np.int64)
    valid = s != VOID
    present = sorted(int(c) for c in np.unique(s[valid]))
    found = {int(c) for c in np.unique(o[o != VOID])}
    output_only = [label_name(c) for c in sorted(found - set(present))]
    if not present:
        return LabelScores(True, NO_STRUCTURE_LABEL, None, None, {}, output_only)
    per_class: dict[str, float] = {}
    for c in present:
        sc, oc = s == c, o == c
        per_class[label_name(c)] = int(np.count_nonzero(sc & oc)) / int(np.count_nonzero(sc | oc))
    accuracy = int(np.count_nonzero(s[valid] == o[valid])) / int(np.count_nonzero(valid))
    return LabelScores(False, None, float(np.mean(list(per_class.values()))), accuracy, per_class, output_only)
