"""Metric tables of a report: every method on the same pairs, with the counts, as CSV, Markdown and LaTeX.

The Splice paper (Tumanyan et al., CVPR 2022) reports its layout IoU as mean ± std (Table 2). The numbers
come from :func:`eval.tables.metric_table` and the text from :func:`eval.tables.render` (owned by ``eval``):
this module only chooses which metrics a report shows and writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from eval.metrics import (
    KEY_APPEARANCE,
    KEY_COSINE,
    KEY_IOU,
    KEY_MATCHED_IOU,
    KEY_PIXEL_ACCURACY,
    KEY_SECONDS,
    KEY_STRUCTURE,
    get_metric,
)
from eval.tables import metric_table, render
from splice.core.atomic import atomic_write_text

#: metrics a report tabulates, in this order
REPORT_METRICS = (KEY_IOU, KEY_MATCHED_IOU, KEY_PIXEL_ACCURACY, KEY_STRUCTURE, KEY_APPEARANCE, KEY_COSINE, KEY_SECONDS)
SUFFIXES = {"csv": "csv", "md": "md", "latex": "tex"}


@dataclass
class TableFiles:
    metric: str
    label: str
    higher_is_better: bool
    table: pd.DataFrame
    files: dict[str, str] = field(default_factory=dict)  # format -> file name in the tables folder


def has_values(df: pd.DataFrame, metric: str) -> bool:
    """Whether any job of ``df`` holds a record for ``metric`` (so its table says something)."""
    m = get_metric(metric)
    return any(bool(df[s.scored].any()) if s.scored in df else bool(df[s.column].notna().any())
               for s in m.sources.values())  # fmt: skip


def build_tables(df: pd.DataFrame, methods: list[str]) -> tuple[list[TableFiles], list[str]]:
    """The tables of every metric in :data:`REPORT_METRICS` that has values, and the keys of those without."""
    tables, missing = [], []
    for key in REPORT_METRICS:
        if not has_values(df, key):
            missing.append(key)
            continue
        m = get_metric(key)
        table = metric_table(df, key, methods=methods, paper=key == KEY_IOU)  # the paper's Table 2 beside ours
        tables.append(TableFiles(key, m.label, m.higher_is_better, table))
    return tables, missing


def write_tables(tables: list[TableFiles], folder: Path) -> None:
    """Write ``<metric>.csv``, ``.md`` and ``.tex`` for each table into ``folder`` (names stored in ``files``)."""
    for t in tables:
        for fmt, suffix in SUFFIXES.items():
            name = f"{t.metric}.{suffix}"
            atomic_write_text(folder / name, render(t.table, fmt))
            t.files[fmt] = name
