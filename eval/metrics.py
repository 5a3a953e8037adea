"""Metric keys of the tables and their meaning, shared by tables, reports and the study.

Following PROTOCOL.md (and the Splice paper, Tumanyan et al. CVPR 2022, Table 2 for the layout IoU), each
table metric says where its numbers live in :func:`eval.aggregate.load_results` (per layout segmenter
when it has several), whether higher is better, what the output is compared with, and how to print it.
They are made from the metric registry (:mod:`eval.scorers`: every number of every record, one table
metric per :attr:`eval.scorers.Number.table` name), plus two job fields (seconds, memory); nothing here
names a metric of the registry except the ``KEY_*`` constants older callers use.

``iou`` is the layout number of Table 2: the class-agnostic Mask R-CNN IoU (``iou.json``) on data sets
scored with the ``maskrcnn`` segmenter, the layout mIoU of COCO-panoptic label maps (``panoptic.json``) on
those scored with ``panoptic``; every table says which (:func:`eval.tables.metric_table`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from splice.core.errors import ConfigError

from .scorers import SPECS

KEY_IOU = "iou"
KEY_MATCHED_IOU = "matched_iou"
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


@dataclass(frozen=True)
class Metric:
    """One number per job that tables aggregate.

    Attributes:
        key: the name used on the command line (``--metric iou``).
        label: a short human header.
        higher_is_better: direction, for marking the best method.
        sources: segmenter -> :class:`Source` (``maskrcnn``/``panoptic``), or ``{"": Source}`` for a metric
            that does not depend on a segmenter.
        digits: decimals when printed (None: 3 significant digits).
        compares: what the output is compared with (``structure``, ``appearance``), or "" for job fields.
    """

    key: str
    label: str
    higher_is_better: bool
    sources: dict[str, Source] = field(default_factory=dict)
    digits: int | None = 3
    compares: str = ""

    @property
    def scored(self) -> bool:
        """A number of a metric record (not a job field such as seconds)."""
        return any(s.record for s in self.sources.values())

    @property
    def by_segmenter(self) -> bool:
        return NO_SEGMENTER not in self.sources

    @property
    def source(self) -> Source:
        """The first source (the only one of a segmenter-independent metric)."""
        return next(iter(self.sources.values()))

    @property
    def record(self) -> str | None:
        return self.source.record

    def source_for(self, segmenter: str | None) -> Source:
        if not self.by_segmenter:
            return self.sources[NO_SEGMENTER]
        if segmenter not in self.sources:
            raise ConfigError(f"--metric {self.key} needs the {' or '.join(self.sources)} segmenter, not {segmenter}")
        return self.sources[segmenter]


def _plain(column: str) -> dict[str, Source]:
    """A job field (seconds, memory): no metric record."""
    return {NO_SEGMENTER: Source(column)}


def source_of(record: str, column: str) -> Source:
    """Where a number of ``record`` lives in :func:`eval.aggregate.load_results`."""
    spec = SPECS[record]
    return Source(column, f"{record}_scored", f"{record}_excluded" if spec.excludable else None, record)


def _registry_metrics() -> list[Metric]:
    """One table metric per ``Number.table`` name of the registry, its sources by segmenter."""
    found: dict[str, Metric] = {}
    for spec in SPECS.values():
        for n in spec.numbers:
            seg = spec.segmenter or NO_SEGMENTER
            m = found.get(n.table)
            if m is None:
                found[n.table] = Metric(n.table, n.label, n.higher_is_better, {seg: source_of(spec.name, n.column)},
                                        n.digits, n.compares)  # fmt: skip
            elif m.higher_is_better != n.higher_is_better or seg in m.sources or NO_SEGMENTER in (seg, *m.sources):
                raise ValueError(f"table metric {n.table!r}: records {spec.name} and {m.record} disagree")
            else:
                m.sources[seg] = source_of(spec.name, n.column)
    return list(found.values())


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        *_registry_metrics(),
        Metric(KEY_SECONDS, "seconds per pair", False, _plain("seconds"), digits=1),
        Metric(KEY_MEMORY, "peak memory (MB)", False, _plain("peak_memory_mb"), digits=0),
    )
}  # fmt: skip
"""Every table metric: the registry's numbers (layout IoU first), then the job fields seconds and memory."""


def scored_metrics() -> list[str]:
    """The keys of :data:`METRICS` that come from metric records (every registered number, no job fields)."""
    return [k for k, m in METRICS.items() if m.scored]


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
