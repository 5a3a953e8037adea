"""The report's metrics overview: every metric of the registry, one table per data set.

- **Overview** (:func:`overview`): one table per data set, methods as rows and every metric of the registry
  (:func:`eval.metrics.scored_metrics`, those with values) as a column, with an arrow for the better
  direction. A cell is the metric's headline number: the mean over the pairs every method of the data set
  has a value for (``mean_common`` of :func:`eval.tables.metric_table`, taken from the report's tables, so
  both agree); the best of each column is bold; each header says how many pairs it is over. ``—`` marks a
  method that does not apply to the data set, ``–`` one without a value on the common pairs.
- Each output's values are on the pair pages of :mod:`reports.pairs` (the grid opens them); each data set's
  overview links to its grid.

Nothing here names a metric: a metric added to the registry appears in the overview.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import pandas as pd

from eval.metrics import METRICS, scored_metrics
from eval.tables import number_text

from .tables import TableFiles

DASH_NA = "—"
DASH_NONE = "–"


@dataclass
class OverviewTable:
    """One data set's overview: ``values`` (methods x metric keys, the headline numbers), ``best`` (same shape,
    bool), ``n`` (metric key -> common pairs), ``not_applicable`` (methods)."""

    dataset: str
    values: pd.DataFrame
    best: pd.DataFrame
    n: dict[str, int]
    not_applicable: list[str]


def arrow(metric: str) -> str:
    return "↑" if METRICS[metric].higher_is_better else "↓"


def overview(tables: list[TableFiles], methods: list[str]) -> list[OverviewTable]:
    """The overview of the report's registry tables (``seconds`` and ``memory`` are not metrics)."""
    keys = set(scored_metrics())
    used = [t for t in tables if t.metric in keys]
    datasets = sorted({str(d) for t in used for d in t.table["dataset"]})
    out = []
    for ds in datasets:
        values = pd.DataFrame(math.nan, index=methods, columns=[t.metric for t in used], dtype=float)
        best = pd.DataFrame(False, index=methods, columns=values.columns)
        n: dict[str, int] = {}
        na: set[str] = set()
        for t in used:
            rows = t.table[t.table["dataset"] == ds]
            na |= {m for d, m in t.table.attrs.get("not_applicable", []) if d == ds}
            for r in rows.itertuples():
                if r.method in values.index:
                    values.loc[r.method, t.metric] = r.mean_common
                    best.loc[r.method, t.metric] = bool(r.best)
            n[t.metric] = int(rows["n_common"].max()) if len(rows) else 0
        seen = set().union(*(set(t.table.loc[t.table["dataset"] == ds, "method"]) for t in used))
        present = [m for m in methods if m in seen]
        out.append(OverviewTable(ds, values.loc[present], best.loc[present], n, sorted(na)))
    return out


def _cell(o: OverviewTable, method: str, metric: str) -> str:
    if method in o.not_applicable:
        return DASH_NA
    v = o.values.loc[method, metric]
    return DASH_NONE if math.isnan(v) else number_text(v, METRICS[metric].digits)


def overview_markdown(tables: list[OverviewTable]) -> list[str]:
    lines = []
    for o in tables:
        cols = list(o.values.columns)
        lines += [f"### {o.dataset}", "", "| method | " + " | ".join(f"{c} {arrow(c)} (n={o.n[c]})" for c in cols)
                  + " |", "|---|" + "---:|" * len(cols)]  # fmt: skip
        for m in o.values.index:
            cells = [(f"**{_cell(o, m, c)}**" if o.best.loc[m, c] else _cell(o, m, c)) for c in cols]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def overview_csv(tables: list[OverviewTable]) -> str:
    """``dataset, method, <metric>...`` (the headline numbers) for machines."""
    frames = [o.values.rename_axis("method").reset_index().assign(dataset=o.dataset) for o in tables]
    if not frames:
        return ""
    df = pd.concat(frames, ignore_index=True)
    df = df[["dataset", "method", *[c for c in df.columns if c not in ("dataset", "method")]]]
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.6g", lineterminator="\n")
    return buf.getvalue()


def overview_html(tables: list[OverviewTable]) -> str:
    """The overview section's content: a headline table per data set, each linking to its grid (whose pairs
    open the pages with each output's values), folded so that the page's first screen keeps the headline
    table and the start of the grid (a link to the section opens it)."""
    from .page import e

    n_metrics = len(tables[0].values.columns) if tables else 0
    out = [f"<details class=overview><summary><b>Metrics overview</b>: {n_metrics} metrics × {len(tables)} data "
           f"set{'s' if len(tables) != 1 else ''}, every metric with values, one table per data set</summary>",
           "<p class=muted>Every metric of the registry (<code>splice metrics</code>) per data set: the mean over "
           "the pairs every method has a value for (n per column), best in bold; ↑ higher / ↓ lower is better. "
           "Structure metrics compare the output with the aligned structure image, appearance metrics with the "
           "appearance image.</p>"]  # fmt: skip
    for o in tables:
        cols = list(o.values.columns)
        head = "".join(f'<th title="{e(METRICS[c].label)}">{e(c)} {arrow(c)}<br><span class=muted>n={o.n[c]}'
                       f"</span></th>" for c in cols)  # fmt: skip
        body = []
        for m in o.values.index:
            cells = "".join(f"<td class='num{' best' if o.best.loc[m, c] else ''}'>{e(_cell(o, m, c))}</td>"
                            for c in cols)  # fmt: skip
            body.append(f"<tr><td>{e(m)}</td>{cells}</tr>")
        link = f' · <a href="#grid-{e(o.dataset)}">each output\'s values: open a pair in the grid</a>'
        out.append(f'<h3 id="overview-{e(o.dataset)}">{e(o.dataset)}{link}</h3>'
                   f'<table class=overview data-dataset="{e(o.dataset)}"><tr><th>method</th>{head}</tr>'
                   f"{''.join(body)}</table>")  # fmt: skip
    out.append("</details>")
    return "\n".join(out)
