"""Metric keys and their meaning, shared by tables, reports and the study.

Following PROTOCOL.md (and the Splice paper, Tumanyan et al. CVPR 2022, Table 2 for the
layout IoU), each metric declares the column of :func:`eval.aggregate.load_results` it
reads, whether higher is better, and how to print it. Reports import the ``KEY_*``
constants instead of spelling metric names.
"""

from __future__ import annotations

from dataclasses import dataclass

from splice.core.errors import ConfigError

KEY_IOU = "iou"
KEY_MATCHED_IOU = "matched_iou"
KEY_STRUCTURE = "structure"
KEY_APPEARANCE = "appearance"
KEY_COSINE = "cosine"
KEY_SECONDS = "seconds"
KEY_MEMORY = "memory"


@dataclass(frozen=True)
class Metric:
    """One number per job that tables aggregate.

    Attributes:
        key: the name used on the command line (``--metric iou``).
        column: the column of :func:`eval.aggregate.load_results` holding it.
        label: a short human header.
        higher_is_better: direction, for marking the best method.
        record: the metric record (``metrics/<record>.json``) it comes from; None for job fields.
        excludable: pairs can be excluded (IoU: no detection in the structure image).
        digits: decimals when printed.
    """

    key: str
    column: str
    label: str
    higher_is_better: bool
    record: str | None
    excludable: bool = False
    digits: int = 3


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(KEY_IOU, "iou", "layout IoU (Mask R-CNN, class-agnostic)", True, "iou", excludable=True),
        Metric(KEY_MATCHED_IOU, "matched_iou", "instance-matched IoU (Mask R-CNN)", True, "iou", excludable=True),
        Metric(KEY_STRUCTURE, "structure_distance", "structure distance (DINO self-similarity MSE)", False, "vit",
               digits=4),
        Metric(KEY_APPEARANCE, "appearance_distance", "appearance distance (DINO CLS MSE)", False, "vit", digits=4),
        Metric(KEY_COSINE, "appearance_cosine", "appearance cosine (DINO CLS)", True, "vit"),
        Metric(KEY_SECONDS, "seconds", "seconds per pair", False, None, digits=1),
        Metric(KEY_MEMORY, "peak_memory_mb", "peak memory (MB)", False, None, digits=0),
    )
}


def get_metric(key: str) -> Metric:
    """The :class:`Metric` called ``key`` (also accepts its column name); a one-line error otherwise."""
    if key in METRICS:
        return METRICS[key]
    for m in METRICS.values():
        if m.column == key:
            return m
    raise ConfigError(f"unknown metric {key!r}; use one of {', '.join(METRICS)}")
