"""Metric keys of the tables and their meaning, shared by tables, reports and the study.

Following PROTOCOL.md (and the Splice paper, Tumanyan et al. CVPR 2022, Table 2 for the layout IoU), each
table metric declares where its numbers live in :func:`eval.aggregate.load_results` (per layout segmenter
when it has several), whether higher is better, and how to print it. Reports import the ``KEY_*``
constants instead of spelling metric names. What the metric *records* are is declared in
:mod:`eval.scorers`.

``iou`` is the layout number of Table 2: the class-agnostic Mask R-CNN IoU (``iou.json``) on data sets
scored with the ``maskrcnn`` segmenter, the layout mIoU of COCO-panoptic label maps (``panoptic.json``) on
those scored with ``panoptic``; every table says which (:func:`eval.tables.metric_table`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from splice.core.errors import ConfigError

KEY_IOU = "iou"
KEY_MATCHED_IOU = "matched_iou"
KEY_PIXEL_ACCURACY = "pixel_accuracy"
KEY_STRUCTURE = "structure"
KEY_APPEARANCE = "appearance"
KEY_COSINE = "cosine"
KEY_SECONDS = "seconds"
KEY_MEMORY = "memory"

NO_SEGMENTER = ""


@dataclass(frozen=True)
class Source:
    """Where a metric's numbers are in :func:`eval.aggregate.load_results`.

    Attributes:
        column: the value column.
        scored: the boolean column saying the job has the metric record (None: a job field, present when
            the value is).
        excluded: the boolean column saying the protocol excluded the job (None: never excluded).
        record: the metric record (``metrics/<record>.json``) it comes from; None for job fields.
    """

    column: str
    scored: str | None = None
    excluded: str | None = None
    record: str | None = None


MASKRCNN = Source("iou", "iou_scored", "iou_excluded", "iou")
PANOPTIC = Source("panoptic_iou", "panoptic_scored", "panoptic_excluded", "panoptic")


@dataclass(frozen=True)
class Metric:
    """One number per job that tables aggregate.

    Attributes:
        key: the name used on the command line (``--metric iou``).
        label: a short human header.
        higher_is_better: direction, for marking the best method.
        sources: segmenter -> :class:`Source` (``maskrcnn``/``panoptic``), or ``{"": Source}`` for a metric
            that does not depend on a segmenter.
        digits: decimals when printed.
    """

    key: str
    label: str
    higher_is_better: bool
    sources: dict[str, Source] = field(default_factory=dict)
    digits: int = 3

    @property
    def by_segmenter(self) -> bool:
        return NO_SEGMENTER not in self.sources

    @property
    def source(self) -> Source:
        """The first source (the only one of a segmenter-independent metric)."""
        return next(iter(self.sources.values()))

    @property
    def column(self) -> str:
        return self.source.column

    @property
    def record(self) -> str | None:
        return self.source.record

    @property
    def excludable(self) -> bool:
        return any(s.excluded for s in self.sources.values())

    def source_for(self, segmenter: str | None) -> Source:
        if not self.by_segmenter:
            return self.sources[NO_SEGMENTER]
        if segmenter not in self.sources:
            raise ConfigError(f"--metric {self.key} needs the {' or '.join(self.sources)} segmenter, not {segmenter}")
        return self.sources[segmenter]


def _plain(column: str, record: str | None) -> dict[str, Source]:
    return {NO_SEGMENTER: Source(column, f"{record}_scored" if record else None, None, record)}


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(KEY_IOU, "layout IoU", True, {"maskrcnn": MASKRCNN, "panoptic": PANOPTIC}),
        Metric(KEY_MATCHED_IOU, "instance-matched IoU (Mask R-CNN)", True,
               {"maskrcnn": Source("matched_iou", "iou_scored", "iou_excluded", "iou")}),
        Metric(KEY_PIXEL_ACCURACY, "pixel accuracy (COCO panoptic label maps)", True,
               {"panoptic": Source("pixel_accuracy", "panoptic_scored", "panoptic_excluded", "panoptic")}),
        Metric(KEY_STRUCTURE, "structure distance (DINO self-similarity MSE)", False,
               _plain("structure_distance", "vit"), digits=4),
        Metric(KEY_APPEARANCE, "appearance distance (DINO CLS MSE)", False, _plain("appearance_distance", "vit"),
               digits=4),
        Metric(KEY_COSINE, "appearance cosine (DINO CLS)", True, _plain("appearance_cosine", "vit")),
        Metric(KEY_SECONDS, "seconds per pair", False, _plain("seconds", None), digits=1),
        Metric(KEY_MEMORY, "peak memory (MB)", False, _plain("peak_memory_mb", None), digits=0),
    )
}  # fmt: skip

SEGMENTER_LABELS = {"maskrcnn": "COCO Mask R-CNN, class-agnostic union IoU",
                    "panoptic": "COCO panoptic label maps, mIoU over the structure image's classes"}  # fmt: skip


def get_metric(key: str) -> Metric:
    """The :class:`Metric` called ``key`` (also accepts a column name); a one-line error otherwise."""
    if key in METRICS:
        return METRICS[key]
    for m in METRICS.values():
        if any(s.column == key for s in m.sources.values()):
            return m
    raise ConfigError(f"unknown metric {key!r}; use one of {', '.join(METRICS)}")
