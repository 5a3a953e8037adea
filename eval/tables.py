"""Metric tables: mean ± std per data set and method, with the counts behind them.

The Splice paper (Tumanyan et al., CVPR 2022, Table 2) reports the layout IoU as
mean ± std per data set; PROTOCOL.md adds the number of pairs used, the number
excluded (no detection in the structure image) and, here, the number of failed jobs,
so that an exclusion-heavy data set (Mountains) cannot hide behind a clean mean.

Definitions, per (data set, method), over the rows of :func:`eval.aggregate.load_results`:

- ``n_failed``: jobs whose status is ``failed``, or ``ok`` with the output image missing;
- jobs recorded ``not-applicable`` (the method does not apply to the data set) count nowhere; a
  (data set, method) with only such jobs is listed in ``attrs["not_applicable"]`` and shown as "—";
- ``n_excluded``: scored jobs the protocol excludes (IoU metrics only: no detection in
  the structure image);
- ``n_unscored``: finished jobs without a record for this metric (run ``splice score``);
- ``n_used``: the rest, the jobs whose value enters the mean;
- ``mean``: arithmetic mean over the used jobs (every seed counts as one sample);
- ``std``: the *sample* standard deviation (``ddof=1``), ``NaN`` when ``n_used < 2``
  because one value says nothing about spread.
"""

from __future__ import annotations

import io
import logging
import math

import pandas as pd

from splice.core.errors import ConfigError
from splice.core.record import NOT_APPLICABLE

from .metrics import METRICS, Metric, get_metric

log = logging.getLogger(__name__)

TABLE_COLUMNS = ["dataset", "method", "mean", "std", "n_used", "n_excluded", "n_failed", "n_unscored"]
FORMATS = ("md", "csv", "latex")
RANDOM_WARNING = "RANDOM WEIGHTS: metric models were randomly initialised; these numbers mean nothing."


def _scored_column(metric: Metric) -> str | None:
    return {"iou": "iou_scored", "vit": "vit_scored"}.get(metric.record or "")


def metric_table(df: pd.DataFrame, metric: str, methods: list[str] | None = None) -> pd.DataFrame:
    """Aggregate ``metric`` (a key of :data:`eval.metrics.METRICS`) per data set and method.

    Args:
        df: rows of :func:`eval.aggregate.load_results`.
        metric: ``iou``, ``matched_iou``, ``structure``, ``appearance``, ``cosine``, ``seconds``, ``memory``.
        methods: keep only these methods, in this order (default: all, sorted).

    Returns:
        A frame with :data:`TABLE_COLUMNS` (definitions in the module docstring), sorted by
        data set then method. ``attrs`` holds ``metric``, ``higher_is_better`` and
        ``random_weights`` (any method or metric model in the table was random).
    """
    m = get_metric(metric)
    if methods is not None:
        df = df[df["method"].isin(methods)]
    order = list(methods) if methods is not None else sorted(df["method"].unique())
    rows = []
    random = False
    not_applicable = []
    for (dataset, method), g in df.groupby(["dataset", "method"], sort=True):
        if (g["status"] == NOT_APPLICABLE).all():
            not_applicable.append((dataset, method))
        g = g[g["status"] != NOT_APPLICABLE]
        failed = (g["status"] != "ok") | g["output"].isna()
        done = g[~failed]
        if m.excludable:
            excluded = done["iou_scored"] & done["iou_excluded"]
        else:
            excluded = pd.Series(False, index=done.index)
        scored_col = _scored_column(m)
        scored = done[scored_col] if scored_col else done[m.column].notna()
        unscored = ~scored
        values = done.loc[scored & ~excluded, m.column].astype(float)
        unscored = unscored | (scored & ~excluded & values.reindex(done.index).isna())
        values = values.dropna()
        n = len(values)
        if done["config_hash"].nunique() > 1:
            log.warning("%s/%s mixes %d configurations in one mean", dataset, method, done["config_hash"].nunique())
        random = random or bool(done["random_weights"].any()) or (m.record is not None and bool(
            done.loc[scored, "metrics_random_weights"].any()))
        rows.append({
            "dataset": dataset,
            "method": method,
            "mean": float(values.mean()) if n else math.nan,
            "std": float(values.std(ddof=1)) if n >= 2 else math.nan,
            "n_used": n,
            "n_excluded": int(excluded.sum()),
            "n_failed": int(failed.sum()),
            "n_unscored": int(unscored.sum()),
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    if len(table):
        rank = {name: i for i, name in enumerate(order)}
        table = table.assign(_r=table["method"].map(rank)).sort_values(["dataset", "_r"], kind="stable")
        table = table.drop(columns="_r").reset_index(drop=True)
    for col in ("n_used", "n_excluded", "n_failed", "n_unscored"):
        table[col] = table[col].astype("int64")
    table.attrs.update(metric=m.key, higher_is_better=m.higher_is_better, random_weights=random,
                       not_applicable=not_applicable)
    return table


def _fmt(x: float, digits: int) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def mean_std_text(mean: float, std: float, digits: int, pm: str = "±") -> str:
    """``0.512 ± 0.103``; ``0.512 ± –`` with one value; ``–`` with none."""
    if math.isnan(mean):
        return "–"
    return f"{_fmt(mean, digits)} {pm} {_fmt(std, digits)}"


def _best(table: pd.DataFrame, metric: Metric) -> set[int]:
    """Row indices of the best mean per data set (only where two or more methods have one)."""
    best: set[int] = set()
    for _, g in table.groupby("dataset"):
        g = g[g["mean"].notna()]
        if len(g) < 2:
            continue
        target = g["mean"].max() if metric.higher_is_better else g["mean"].min()
        best.update(g.index[g["mean"] == target])
    return best


def _latex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):  # fmt: skip
        s = s.replace(a, b)
    return s


def render(table: pd.DataFrame, fmt: str = "md") -> str:
    """Render a :func:`metric_table` as Markdown, CSV or LaTeX.

    Markdown and LaTeX show ``mean ± std`` with the best mean per data set in bold (by the
    metric's ``higher_is_better``) and the counts; CSV keeps plain numbers (mean, std and
    counts as columns) for machines. A table built with random weights says so on its
    first line (a Markdown quote, a LaTeX comment, a CSV comment line starting with ``#``).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    metric = METRICS.get(table.attrs.get("metric", ""), None) or get_metric("iou")
    digits = metric.digits
    random = bool(table.attrs.get("random_weights", False))
    show_unscored = bool(len(table)) and int(table["n_unscored"].sum()) > 0
    best = _best(table, metric)
    na = {tuple(x) for x in table.attrs.get("not_applicable", [])}
    arrow = "↑" if metric.higher_is_better else "↓"
    if fmt == "csv":
        buf = io.StringIO()
        if random:
            buf.write(f"# {RANDOM_WARNING}\n")
        out = table.copy()
        out.insert(2, "metric", metric.key)
        out.to_csv(buf, index=False, float_format=f"%.{max(digits, 6)}g", lineterminator="\n")
        return buf.getvalue()
    counts = ["used", "excluded", "failed"] + (["unscored"] if show_unscored else [])
    lines: list[str] = []
    if fmt == "md":
        if random:
            lines += [f"> **{RANDOM_WARNING}**", ""]
        lines.append(f"| dataset | method | {metric.label} {arrow} | " + " | ".join(counts) + " |")
        lines.append("|---|---|---:|" + "---:|" * len(counts))
        for i, r in table.iterrows():
            cell = "—" if (r["dataset"], r["method"]) in na else mean_std_text(r["mean"], r["std"], digits)
            if i in best:
                cell = f"**{cell}**"
            nums = [r["n_used"], r["n_excluded"], r["n_failed"]] + ([r["n_unscored"]] if show_unscored else [])
            lines.append(f"| {r['dataset']} | {r['method']} | {cell} | " + " | ".join(str(int(n)) for n in nums) + " |")
        return "\n".join(lines) + "\n"
    # latex (booktabs)
    if random:
        lines.append(f"% {RANDOM_WARNING}")
    lines.append(r"\begin{tabular}{ll" + "r" * (1 + len(counts)) + "}")
    lines.append(r"\toprule")
    arrow_tex = r"$\uparrow$" if metric.higher_is_better else r"$\downarrow$"
    head = " & ".join(["dataset", "method", f"{_latex_escape(metric.label)} {arrow_tex}"] + counts)
    lines.append(head + r" \\")
    lines.append(r"\midrule")
    for i, r in table.iterrows():
        if (r["dataset"], r["method"]) in na:
            cell = "---"
        elif math.isnan(r["mean"]):
            cell = "--"
        else:
            cell = f"{_fmt(r['mean'], digits)} $\\pm$ {_fmt(r['std'], digits).replace('–', '--')}"
        if i in best:
            cell = r"\textbf{" + cell + "}"
        nums = [r["n_used"], r["n_excluded"], r["n_failed"]] + ([r["n_unscored"]] if show_unscored else [])
        cells = [_latex_escape(str(r["dataset"])), _latex_escape(str(r["method"])), cell] + [str(int(n)) for n in nums]
        lines.append(" & ".join(cells) + r" \\")
    lines.append(r"\bottomrule")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"
