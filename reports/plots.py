"""Plots of a report (matplotlib, Agg canvas, no pyplot state): per-metric distributions per method and
data set, and seconds per pair per method.

PROTOCOL.md ("Reports") asks for per-method distributions (box or violin) of each metric, per data set, to
go with the mean ± std tables of the Splice paper (Tumanyan et al., CVPR 2022, Table 2). Each panel is one
data set; each box one method, with every job drawn as a dot over it (small sets make boxes misleading).
Only finished jobs with a value count; excluded IoU pairs have none.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eval.metrics import KEY_SECONDS, get_metric
from splice.core.atomic import atomic_write_bytes

from .tables import REPORT_METRICS, has_values

DPI = 110


@dataclass
class PlotFile:
    key: str
    title: str
    png: str
    pdf: str | None


def metric_values(df: pd.DataFrame, column: str, dataset: str, method: str) -> np.ndarray:
    """Values of ``column`` for finished jobs of ``method`` on ``dataset`` (NaN dropped)."""
    sel = (df["dataset"] == dataset) & (df["method"] == method) & (df["status"] == "ok") & df["output"].notna()
    return df.loc[sel, column].astype(float).dropna().to_numpy()


def distribution_figure(df: pd.DataFrame, key: str, datasets: list[str], methods: list[str],
                        random_weights: bool = False) -> Figure | None:  # fmt: skip
    """Box plots of metric ``key`` per method, one panel per data set; None when no job has a value."""
    from eval.tables import metric_values as job_values

    m = get_metric(key)
    df = df.assign(_value=job_values(df, m.key))  # layout metrics: each data set's segmenter
    panels = [(d, [(meth, metric_values(df, "_value", d, meth)) for meth in methods]) for d in datasets]
    panels = [(d, [(meth, v) for meth, v in series if len(v)]) for d, series in panels]
    panels = [(d, s) for d, s in panels if s]
    if not panels:
        return None
    width = max(6.0, sum(1.2 + 0.75 * len(s) for _, s in panels))
    fig = Figure(figsize=(min(width, 18), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    rng = np.random.default_rng(0)  # fixed jitter: the same data gives the same picture
    for ax, (dataset, series) in zip(axes, panels):
        values = [v for _, v in series]
        ax.boxplot(values, widths=0.55, showfliers=False, medianprops={"color": "#c0392b"})
        for i, v in enumerate(values, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(v)), v, s=12, alpha=0.7, color="#2c3e50", zorder=3)
        ax.set_xticks(range(1, len(series) + 1), [f"{meth}\n(n={len(v)})" for meth, v in series], fontsize=8)
        ax.set_title(dataset, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if key == KEY_SECONDS and max(v.max() for v in values) > 50 * max(min(v.min() for v in values), 1e-9):
            ax.set_yscale("log")
    axes[0].set_ylabel(f"{m.label} {'↑' if m.higher_is_better else '↓'}", fontsize=9)
    title = m.label + ("\nRANDOMLY INITIALISED MODELS: not the methods' real results" if random_weights else "")
    fig.suptitle(title, fontsize=10, color="#b71c1c" if random_weights else "black")
    return fig


def _save(fig: Figure, path: Path, fmt: str) -> None:
    buf = io.BytesIO()
    # no timestamps in the files, so the same results give the same bytes
    metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
    fig.savefig(buf, format=fmt, dpi=DPI, metadata=metadata)
    atomic_write_bytes(path, buf.getvalue())


def write_plots(df: pd.DataFrame, datasets: list[str], methods: list[str], folder: Path,
                random_weights: bool = False, pdf: bool = True) -> list[PlotFile]:  # fmt: skip
    """One PNG (and one PDF unless ``pdf`` is False) per metric with values, plus ``seconds``."""
    out = []
    keys = [k for k in REPORT_METRICS if k != KEY_SECONDS] + [KEY_SECONDS]
    for key in keys:
        if not has_values(df, key):
            continue
        fig = distribution_figure(df, key, datasets, methods, random_weights=random_weights)
        if fig is None:
            continue
        png, pdf_name = f"{key}.png", (f"{key}.pdf" if pdf else None)
        _save(fig, folder / png, "png")
        if pdf_name:
            _save(fig, folder / pdf_name, "pdf")
        title = "seconds per pair per method" if key == KEY_SECONDS else get_metric(key).label
        out.append(PlotFile(key, title, png, pdf_name))
    return out
