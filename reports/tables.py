"""Metric tables of a report: every method on the same pairs, with the counts, as CSV, Markdown and LaTeX.

The Splice paper (Tumanyan et al., CVPR 2022) reports its layout IoU as mean ± std (Table 2). The numbers
come from :func:`eval.tables.metric_table` and the text from :func:`eval.tables.render` (owned by ``eval``):
this module only chooses which metrics a report shows and writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from eval.metrics import KEY_APPEARANCE, KEY_COSINE, KEY_IOU, KEY_SECONDS, KEY_STRUCTURE, get_metric, scored_metrics
from eval.tables import job_states, metric_table, render
from splice.core.atomic import atomic_write_text
from splice.core.health import DONE

#: metrics a report tabulates, in this order: every number of the metric registry (`splice metrics`), then seconds
REPORT_METRICS = (*scored_metrics(), KEY_SECONDS)
#: metrics of the report's headline table (one column each; every metric is in the full tables and the overview)
HEADLINE_METRICS = (KEY_IOU, KEY_STRUCTURE, KEY_APPEARANCE, KEY_COSINE)
COST_COLUMNS = ["dataset", "method", "jobs", "seconds_median", "seconds_mean", "seconds_total", "peak_memory_mb_median",
                "peak_memory_mb_max", "devices"]  # fmt: skip
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


def cost_table(df: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Seconds and peak memory per data set and method over the finished jobs, from their records
    (:data:`COST_COLUMNS`; what the jobs really took, not an estimate)."""
    done = df[job_states(df) == DONE]
    rank = {m: i for i, m in enumerate(methods)}
    rows = []
    for (dataset, method), g in done.groupby(["dataset", "method"], sort=True):
        secs, mem = g["seconds"].astype(float).dropna(), g["peak_memory_mb"].astype(float).dropna()
        devices = sorted({str(d) for d in g["device"] if isinstance(d, str) and d}) if "device" in g else []
        rows.append({"dataset": dataset, "method": method, "jobs": len(g),
                     "seconds_median": float(secs.median()) if len(secs) else float("nan"),
                     "seconds_mean": float(secs.mean()) if len(secs) else float("nan"),
                     "seconds_total": float(secs.sum()) if len(secs) else float("nan"),
                     "peak_memory_mb_median": float(mem.median()) if len(mem) else float("nan"),
                     "peak_memory_mb_max": float(mem.max()) if len(mem) else float("nan"),
                     "devices": ", ".join(devices)})  # fmt: skip
    table = pd.DataFrame(rows, columns=COST_COLUMNS)
    if len(table):
        table = table.assign(_r=table["method"].map(lambda m: rank.get(m, len(rank))))
        table = table.sort_values(["dataset", "_r", "method"], kind="stable").drop(columns="_r").reset_index(drop=True)
    return table


def write_cost(table: pd.DataFrame, folder: Path) -> dict[str, str]:
    """``cost.csv`` and ``cost.md`` in ``folder``; returns format -> file name."""
    import io

    buf = io.StringIO()
    table.to_csv(buf, index=False, float_format="%.3f", lineterminator="\n")
    atomic_write_text(folder / "cost.csv", buf.getvalue())
    lines = ["| data set | method | jobs | seconds per job (median) | mean | total | peak memory MB (median) | max |"
             " devices |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in table.itertuples(index=False):
        lines.append(f"| {r.dataset} | {r.method} | {r.jobs} | {r.seconds_median:.2f} | {r.seconds_mean:.2f} | "
                     f"{r.seconds_total:.1f} | {r.peak_memory_mb_median:.0f} | {r.peak_memory_mb_max:.0f} | "
                     f"{r.devices} |")  # fmt: skip
    atomic_write_text(folder / "cost.md", "\n".join(lines) + "\n")
    return {"csv": "cost.csv", "md": "cost.md"}
