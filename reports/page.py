"""The report's ``index.html`` (and its Markdown twin ``report.md``): one self-contained page, results first.

Everything is inline (CSS, a few lines of script) and every link is relative to the report folder, so the
folder can be copied, zipped or served as it is. The page reads top to bottom as a reader needs it:

1. banners: randomly initialised models (red), an incomplete run (amber: what is missing, per method and
   data set), images that did not load (grey);
2. **summary** (``#summary``): run name, data sets, methods, the jobs per state (:mod:`splice.core.health`)
   and, for each state that needs something, the command that fixes it;
3. **headline tables** (``#tables``): one row per data set and method with the headline numbers of every
   metric (best in bold), the jobs behind them, and the paper's number where it has one; the full tables
   (counts, CSV / Markdown / LaTeX files) fold out below;
4. a place for a **metrics overview** (``#metrics-overview``, :data:`SLOTS`): ``render_index(extra=...)``
   puts HTML there;
5. **comparison grids** (``#grids``): thumbnails in the structure image's frame, each row opening a page
   per pair with every output at full size and its metric values (:mod:`reports.pairs`);
6. **plots** (``#plots``), 7. **cost** (``#cost``: seconds and peak memory per method and data set, from the
   records), 8. **jobs without a result** (``#health``: every job that is not done, its path, why, and
   the command that fixes it);
9. **provenance** last (``#provenance``): methods' weights (name, source, sha256), configurations and
   devices, metric models, and every ``splice bench`` invocation of ``run.json``, as tables.

PROTOCOL.md ("Reports") asks every report of the Splice benchmark (Tumanyan et al., CVPR 2022) to state
the models and weights behind every number and to say loudly when any came from randomly initialised
models. Every string that comes from a record is HTML-escaped.

The script checks, after loading, that every image of the page decoded; it records the counts on
``<body data-images=... data-broken-images=...>`` and shows a banner when some are missing (for example,
the page was copied without its folders). Browser tests read those attributes.
"""

from __future__ import annotations

import json
import math
import shlex
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from typing import Any

import pandas as pd

from eval.tables import mean_std_text
from splice.core.health import DONE, LABELS, NOT_APPLICABLE, STATES, attention, common_command, summary_text

from .grids import GridPage
from .plots import PlotFile
from .results import RunResults
from .tables import HEADLINE_METRICS, TableFiles

RANDOM_BANNER = "RANDOMLY INITIALISED MODELS"
SLOTS = ("metrics-overview",)
"""Sections other modules fill through ``render_index(extra={slot: html})``; they go after the tables."""


@dataclass
class GridFiles:
    dataset: str
    pages: list[GridPage]
    png: list[str] = field(default_factory=list)  # figure pages, relative to the report folder
    pdf: str | None = None
    thumbs: dict[tuple[str, int], str] = field(default_factory=dict)  # (pair id, column) -> thumbnail
    pair_pages: dict[str, str] = field(default_factory=dict)  # pair id -> its page


def e(value: Any) -> str:
    """HTML-escaped text of ``value`` (quotes included, so it is safe in attributes too)."""
    return escape("" if value is None else str(value), quote=True)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1b1b1b}
main{padding:0 24px 40px;max-width:1800px}
.banner{padding:8px 24px;font-weight:600;border-bottom:1px solid rgba(0,0,0,.15)}
.banner.random{background:#b71c1c;color:#fff;font-size:15px}
.banner.incomplete{background:#fff3cd;color:#5c4400;font-weight:500} .banner.incomplete b{font-weight:700}
.banner.broken{background:#37474f;color:#fff}
h1{font-size:22px;margin:14px 0 2px} h2{font-size:18px;margin:24px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 6px}
h1 small{font-size:13px;font-weight:400;color:#666;margin-left:8px}
nav{margin:4px 0 6px} nav a{margin-right:14px}
table{border-collapse:collapse;margin:6px 0 12px}
th,td{border:1px solid #d5d5d5;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best{font-weight:700}
caption{text-align:left;font-weight:600;padding:2px 0}
table.settings,table.kv{margin:0} table.settings th,table.kv th{font-weight:500}
table.kv td,table.kv th{padding:1px 6px;font-size:12px}
pre{background:#f7f7f7;padding:6px 8px;margin:0;white-space:pre-wrap;word-break:break-all;font-size:12px}
code{font-size:12px;overflow-wrap:break-word}
.muted{color:#666} .alert{color:#b71c1c;font-weight:600} .nowrap{white-space:nowrap}
p.meta{margin:2px 0}
.st{display:inline-block;padding:0 6px;border-radius:3px;margin:1px 4px 1px 0;font-size:12px;white-space:nowrap}
.st-done{background:#e3f2e1;color:#1e4620} .st-failed,.st-corrupt,.st-output-missing{background:#fae2e2;color:#7a1010}
.st-pending,.st-running,.st-stale{background:#fdf0cd;color:#5c4400} .st-not-applicable{background:#ececec;color:#444}
ul.fixes{margin:4px 0 0;padding-left:20px} ul.fixes li{margin:1px 0}
table.headline td.jobs{font-size:12px}
table.grid{border-collapse:separate;border-spacing:3px;margin:4px 0 14px}
table.grid th,table.grid td{border:0;padding:0;text-align:center;vertical-align:middle}
table.grid th{background:none}
table.grid thead th{font-size:12px;padding:2px 4px;max-width:150px}
table.grid tbody th{font-weight:500;font-size:12px;padding-right:6px;text-align:right;min-width:70px;
  max-width:110px;overflow-wrap:anywhere}
.gridwrap{overflow-x:auto}
table.grid{--side:min(136px,calc((100vw - 190px) / var(--n,10) - 4px))}
table.grid img{display:block;width:auto;height:auto;max-width:var(--side);max-height:var(--side);margin:auto}
table.grid td.cell{width:var(--side);height:var(--side)}
table.grid td.state{width:var(--side);height:var(--side);font-size:12px;white-space:normal;overflow-wrap:anywhere;
  padding:4px;background:#ececec;color:#444}
table.grid td.state small{display:block;max-height:5.6em;overflow:hidden;color:#333;font-weight:400}
table.grid td.st-failed,table.grid td.st-corrupt,table.grid td.st-output-missing{background:#fae2e2;color:#7a1010}
table.grid td.st-pending,table.grid td.st-running,table.grid td.st-stale{background:#fdf0cd;color:#5c4400}
table.grid .note{display:block;font-size:11px;color:#b71c1c}
figure{margin:8px 0 18px} figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:12px;color:#555}
.plots{display:flex;flex-wrap:wrap;gap:0 18px} .plots figure{flex:0 1 auto;max-width:calc(50% - 18px)}
img.broken{outline:3px solid #b71c1c;min-width:40px;min-height:40px}
details>summary{cursor:pointer}
"""

SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.images, broken = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) { broken++; imgs[i].classList.add("broken"); }
  }
  document.body.setAttribute("data-images", String(imgs.length));
  document.body.setAttribute("data-broken-images", String(broken));
  if (broken) {
    var b = document.getElementById("banner-broken");
    b.textContent = broken + " of " + imgs.length + " images did not load: keep the report folder together.";
    b.hidden = false;
  }
});
function openTarget() {  /* a link into folded details, or to a section that folds its content, opens them */
  var t = location.hash && document.getElementById(location.hash.slice(1));
  for (var n = t; n; n = n.parentElement) { if (n.tagName === "DETAILS") { n.open = true; } }
  if (t && t.firstElementChild && t.firstElementChild.tagName === "DETAILS") { t.firstElementChild.open = true; }
  if (t) { t.scrollIntoView(); }
}
window.addEventListener("hashchange", openTarget);
window.addEventListener("load", openTarget);
"""


# -- small pieces ------------------------------------------------------------------------------------------------
def _json_pre(obj: Any) -> str:
    return f"<pre>{e(json.dumps(obj, indent=1, sort_keys=True, default=str))}</pre>"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _flat(value: Any) -> bool:
    """A plain value, or a list of them (a table cell can show either)."""
    return _scalar(value) or (isinstance(value, list) and len(value) <= 30 and all(_scalar(v) for v in value))


def _value_html(value: Any, key: str = "", depth: int = 0) -> str:
    """A value for people: a command line as shell text, a small mapping as a key/value table, a list of
    plain values as a comma list, anything bigger folded as JSON."""
    if key == "command" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return f"<code>{e(shlex.join(value))}</code>"
    if isinstance(value, dict) and value and all(v in ({}, [], None) for v in value.values()):
        return "<span class=muted>none</span>"  # e.g. options of every method: {splice: {}, ...}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) and len(value) <= 12 \
            and depth < 3 and all(_flat(x) for v in value for x in v.values()):  # fmt: skip
        keys = list(dict.fromkeys(k for v in value for k in v))
        head = "".join(f"<th>{e(k)}</th>" for k in keys)
        body = "".join("<tr>" + "".join(f"<td>{_value_html(v.get(k), str(k), depth + 1)}</td>" for k in keys) + "</tr>"
                       for v in value)  # fmt: skip
        return f"<table class=kv><tr>{head}</tr>{body}</table>"
    if isinstance(value, dict) and value and len(value) <= 6 and all(isinstance(v, (int, float)) and not
                                                                    isinstance(v, bool) for v in value.values()):
        return e(", ".join(f"{k} {_value_text(v)}" for k, v in value.items()))  # counts: "done 2, failed 1"
    if isinstance(value, dict) and value and depth < 3 and len(value) <= 16:
        rows = "".join(f"<tr><th>{e(k)}</th><td>{_value_html(v, str(k), depth + 1)}</td></tr>"
                       for k, v in value.items())  # fmt: skip
        return f"<table class=kv>{rows}</table>"
    if isinstance(value, list) and all(_scalar(v) for v in value) and len(value) <= 30:
        return e(", ".join("null" if v is None else str(v) for v in value)) if value else "<code>[]</code>"
    if isinstance(value, (dict, list)):
        compact = json.dumps(value, sort_keys=True, default=str)
        if len(compact) <= 120:
            return f"<code>{e(compact)}</code>"
        return f"<details><summary><code>{e(compact[:100])}…</code></summary>{_json_pre(value)}</details>"
    if value is None or isinstance(value, bool):
        return f"<code>{json.dumps(value)}</code>"
    return e(_value_text(value))


def _value_text(value: Any) -> str:
    """A plain value as text; floats to six significant digits (96.64687280273438 s -> 96.6469)."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _entry_html(entry: dict[str, Any], caption: str) -> str:
    rows = []
    for k, v in entry.items():
        if k == "settings" and isinstance(v, dict):  # the settings a run was made with: one row each
            inner = "".join(f"<tr><th>{e(sk)}</th><td>{_value_html(sv, sk, 1)}</td></tr>" for sk, sv in v.items())
            rows.append(f"<tr><th>{e(k)}</th><td><table class=settings>{inner}</table></td></tr>")
        else:
            rows.append(f"<tr><th>{e(k)}</th><td>{_value_html(v, k)}</td></tr>")
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    return f"<table class=run-entry>{cap}{''.join(rows)}</table>"


def _run_entries(run_info: Any) -> list[dict[str, Any]]:
    """run.json as a list of invocation entries (a list, a dict holding one list, or one dict)."""
    if isinstance(run_info, list):
        return [x if isinstance(x, dict) else {"entry": x} for x in run_info]
    if isinstance(run_info, dict):
        lists = [v for v in run_info.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if len(lists) == 1:  # {"schema": 1, "invocations": [...]}
            return lists[0]
        return [run_info]
    return []


def state_tags(counts: dict[str, int], states: tuple[str, ...] = STATES) -> str:
    """``<span class="st st-done">7 done</span> ...``: the non-zero counts, in :data:`STATES` order."""
    return "".join(f'<span class="st st-{s}">{counts[s]} {e(LABELS[s])}</span>'
                   for s in states if counts.get(s))  # fmt: skip


def seeds_text(seeds: list[int]) -> str:
    """``seed 0`` or ``seeds 0, 1, 2``: seed values, never to be read as a count."""
    if not seeds:
        return ""
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


# -- banners -----------------------------------------------------------------------------------------------------
def random_banner_text(results: RunResults) -> str:
    sources = results.random_sources()
    return (f"{RANDOM_BANNER}: results in this report came from randomly initialised models "
            f"({'; '.join(sources)}). They test the pipeline and say nothing about the methods.")  # fmt: skip


def missing_by_group(results: RunResults) -> list[tuple[str, str, dict[str, int]]]:
    """(method, data set, jobs per state) of every (method, data set) with jobs that have no result."""
    groups: dict[tuple[str, str], Counter] = {}
    for j in results.incomplete:
        groups.setdefault((j.key.method, j.key.dataset), Counter())[j.state] += 1
    order = {m: i for i, m in enumerate(results.methods)}
    keys = sorted(groups, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))
    return [(m, d, dict(groups[(m, d)])) for m, d in keys]


def incomplete_banner_text(results: RunResults, limit: int = 6) -> str:
    """What is missing, per method and data set (plain text; the HTML banner adds emphasis)."""
    n, total = len(results.incomplete), len(results.health)
    parts = [f"{m} on {d}: " + ", ".join(f"{c[s]} {LABELS[s]}" for s in STATES if c.get(s))
             for m, d, c in missing_by_group(results)]  # fmt: skip
    more = f"; and {len(parts) - limit} more" if len(parts) > limit else ""
    return (f"Incomplete run: {n} of {total} expected jobs have no result — " + "; ".join(parts[:limit]) + more
            + ". Each is listed with its path and the command that fixes it under “Jobs without a result”.")


# -- sections ----------------------------------------------------------------------------------------------------
def summary_html(results: RunResults, generated: str) -> str:
    df = results.df
    pairs = {d: df[df["dataset"] == d]["pair_id"].nunique() for d in results.datasets}
    datasets = ", ".join(f"{d} ({n} pair{'s' if n != 1 else ''})" for d, n in pairs.items())
    counts = Counter(j.state for j in results.health)
    out = ['<section id="summary">',
           f"<h1>{e(results.run_dir.name)}<small>splice-bench report</small></h1>",
           f"<p class=meta><b>data sets</b> {e(datasets)} · <b>methods</b> {e(', '.join(results.methods))}</p>",
           f"<p class=meta><b>{len(results.health)} jobs</b> {state_tags(counts)}"
           f"<span class=muted> · generated {e(generated)} from stored records only · run folder "
           f"<code>{e(results.run_dir)}</code></span></p>"]  # fmt: skip
    groups = attention(results.health, results.fixer) if results.fixer else []
    if groups:
        base = common_command(groups)
        items = []
        for g in groups:
            what = f'<span class="st st-{g.state}">{len(g.jobs)} {e(g.label)}</span>'
            items.append(f"<li>{what} {e(g.short if base else g.advice)}</li>")
        fix = f"<p class=meta>To fix, run the bench again: <code>{e(base)}</code></p>" if base else ""
        out.append(f'{fix}<ul class=fixes>{"".join(items)}</ul><p class=meta><a href="#health">every job without a '
                   "result, with its path</a></p>")  # fmt: skip
    out.append("</section>")
    return "\n".join(out)


def headline_html(results: RunResults, tables: list[TableFiles]) -> str:
    """One row per data set and method: the jobs behind it and the headline number of every metric (the mean
    over the data set's common pairs, :func:`eval.tables.metric_table`; the best in bold), with the paper's
    Table 2 value beside the layout IoU where the paper has one."""
    from eval.metrics import get_metric
    from eval.tables import paper_text

    shown = [t for t in tables if t.metric in HEADLINE_METRICS]
    if not results.health:
        return ""
    by_metric = {t.metric: t.table.set_index(["dataset", "method"]) for t in shown}
    na = {tuple(x) for t in shown for x in t.table.attrs.get("not_applicable", [])}
    per_group: dict[tuple[str, str], Counter] = {}
    for j in results.health:
        per_group.setdefault((j.key.dataset, j.key.method), Counter())[j.state] += 1
    paper = {k: paper_text(r) for t in shown if t.table.attrs.get("paper") for k, r in by_metric[t.metric].iterrows()}
    show_paper = any(v not in ("—", "") for v in paper.values())
    head = ["<tr><th>data set</th><th>method</th><th>jobs done</th>"]
    for t in shown:
        head.append(f"<th>{e(t.label)} {'↑' if t.higher_is_better else '↓'}</th>")
        if t.metric == "iou" and show_paper:
            head.append("<th>paper (Table 2)</th>")
    head.append("</tr>")
    rows = []
    for d in results.datasets:
        for meth in results.methods:
            c = per_group.get((d, meth))
            if not c:
                continue
            expected = sum(c.values())
            if c.get(NOT_APPLICABLE) == expected:
                jobs = '<span class="st st-not-applicable">not applicable</span>'
            else:
                others = {s: n for s, n in c.items() if s not in (DONE, NOT_APPLICABLE)}
                jobs = f"{c.get(DONE, 0)}/{expected - c.get(NOT_APPLICABLE, 0)} {state_tags(others)}"
            cells = [f"<td>{e(d)}</td><td>{e(meth)}</td><td class=jobs>{jobs}</td>"]
            for t in shown:
                digits = get_metric(t.metric).digits
                text, cls, title = "–", "num", ""
                if (d, meth) in na:
                    text = "—"
                elif (d, meth) in by_metric[t.metric].index:
                    r = by_metric[t.metric].loc[(d, meth)]
                    if int(r["n_common"]):
                        text = mean_std_text(float(r["mean_common"]), float(r["std_common"]), digits)
                        cls = "num best" if bool(r["best"]) else "num"
                        title = f"{int(r['n_common'])} common pairs"
                    elif int(r["n_all"]):  # no pair every method has: its own pairs, said so
                        text = mean_std_text(float(r["mean_all"]), float(r["std_all"]), digits) + " †"
                        title = f"over its own {int(r['n_all'])} pairs: no pair has a value for every method"
                cells.append(f"<td class='{cls}' title='{e(title)}'>{e(text)}</td>")
                if t.metric == "iou" and show_paper:
                    cells.append(f"<td class=num>{e(paper.get((d, meth), ''))}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class=headline>{''.join(head)}{''.join(rows)}</table>"


def table_html(t: TableFiles, digits: int | None) -> str:
    """A metric table (:func:`eval.tables.metric_table`): common pairs first, the best of each data set marked."""
    from eval.tables import diff_text, footer, paper_text

    table = t.table
    show_unscored = bool(len(table)) and int(table["unscored"].sum()) > 0
    show_unfinished = bool(len(table)) and "unfinished" in table and int(table["unfinished"].sum()) > 0
    show_seg = bool(len(table)) and bool(table["segmenter"].astype(bool).any())
    paper = bool(table.attrs.get("paper"))
    arrow = "↑" if t.higher_is_better else "↓"
    ref = table.attrs.get("reference", "splice")
    head = ("<tr><th>data set</th><th>method</th>" + ("<th>segmenter</th>" if show_seg else "")
            + f"<th>{e(t.label)} {arrow}<br><span class=muted>common pairs, mean ± std</span></th><th>n</th>"
            "<th>all pairs</th><th>n</th>" + f"<th>vs {e(ref)}<br><span class=muted>95% CI</span></th>"
            "<th>excluded</th><th>failed</th>" + ("<th>unscored</th>" if show_unscored else "")
            + ("<th>unfinished</th>" if show_unfinished else "")
            + ("<th>paper (Table 2)</th>" if paper else "") + "</tr>")  # fmt: skip
    na = {tuple(x) for x in table.attrs.get("not_applicable", [])}  # the method does not apply to the data set
    body = []
    for _, r in table.iterrows():
        cls = "num best" if r["best"] else "num"
        common = "—" if (r["dataset"], r["method"]) in na else mean_std_text(r["mean_common"], r["std_common"], digits)
        counts = [r["excluded"], r["failed"]] + ([r["unscored"]] if show_unscored else []) + \
            ([r["unfinished"]] if show_unfinished else [])  # fmt: skip
        body.append(f"<tr><td>{e(r['dataset'])}</td><td>{e(r['method'])}</td>"
                    + (f"<td>{e(r['segmenter'])}</td>" if show_seg else "")
                    + f"<td class='{cls}'>{e(common)}</td>"
                    f"<td class=num>{int(r['n_common'])}</td>"
                    f"<td class=num>{e(mean_std_text(r['mean_all'], r['std_all'], digits))}</td>"
                    f"<td class=num>{int(r['n_all'])}</td><td class=num>{e(diff_text(r, digits))}</td>"
                    + "".join(f"<td class=num>{int(n)}</td>" for n in counts)
                    + (f"<td class=num>{e(paper_text(r))}</td>" if paper else "") + "</tr>")  # fmt: skip
    links = " · ".join(f'<a href="tables/{e(name)}">{e(fmt.upper() if fmt != "latex" else "LaTeX")}</a>'
                       for fmt, name in t.files.items())  # fmt: skip
    notes = "".join(f"<p class=muted>{e(line)}</p>" for line in footer(table)[1:])
    return (f'<h3 id="table-{e(t.metric)}">{e(t.label)}</h3><table class=metric-table data-metric="{e(t.metric)}">'
            f"{head}{''.join(body)}</table>{notes}<p>{links}</p>")  # fmt: skip


def tables_html(results: RunResults, tables: list[TableFiles], missing_tables: list[str]) -> str:
    from eval.metrics import get_metric

    out = ['<section id="tables"><h2>Results</h2>']
    out.append(headline_html(results, tables))
    if any(t.metric in HEADLINE_METRICS for t in tables):
        out.append("<p class=muted>Mean ± sample std over each data set's common pairs, those every method has a "
                   "value for (a pair's value is the mean over its seeds; bold: the best); † over the method's own "
                   "pairs where no pair has a value for every method. Jobs done / expected, with the others by "
                   "state. The full tables add all pairs, the paired difference to the reference with its 95% "
                   "bootstrap interval, and the counts.</p>")  # fmt: skip
    else:
        out.append("<p class=muted>Jobs done / expected, with the others by state. No metric values yet: run "
                   f"<code>splice score --out {e(results.run_dir)}</code>.</p>")  # fmt: skip
    if tables:
        out.append(f"<details id=full-tables><summary>Full tables ({len(tables)}): counts used, excluded, failed, "
                   "unscored, unfinished; CSV, Markdown and LaTeX files</summary>")  # fmt: skip
        out.append("<p class=muted>excluded = nothing to compare in the aligned structure image (layout metrics); "
                   "failed = the job's record says failed; unscored = no metric record yet; unfinished = no result "
                   "yet (pending, running, stale, corrupt record, output missing).</p>")  # fmt: skip
        for t in tables:
            out.append(table_html(t, get_metric(t.metric).digits))
        out.append("</details>")
    headline = [k for k in missing_tables if k in HEADLINE_METRICS]
    others = len(missing_tables) - len(headline)
    if headline:
        labels = ", ".join(get_metric(k).label for k in headline)
        out.append(f"<p class=muted>No values yet for: {e(labels)} (run <code>splice score</code>).</p>")
    if others:  # the rest of the registry: counted, not listed (`splice metrics` lists them)
        out.append(f"<p class=muted>{others} more metric{'s' if others != 1 else ''} of the registry without values "
                   "here (<code>splice metrics</code> lists them; <code>splice score --metrics NAME</code> computes "
                   "one).</p>")  # fmt: skip
    out.append("</section>")
    return "\n".join(out)


def grids_html(grids: list[GridFiles]) -> str:
    out = ['<section id="grids"><h2>Comparison grids</h2>',
           "<p class=muted>Each output in the structure image's frame (grey: parts it does not cover); a pair's "
           "name or picture opens its page with every output at full size and its metric values. One column per "
           "method configuration, the lowest seed of each pair.</p>"]  # fmt: skip
    for g in grids:
        figure = " ".join(f'<a href="{e(p)}">page {i}</a>' for i, p in enumerate(g.png, start=1))
        pdf = f' · <a href="{e(g.pdf)}">PDF</a>' if g.pdf else ""
        n_pairs = sum(len(p.row_labels) for p in g.pages)
        out.append(f'<h3 id="grid-{e(g.dataset)}">{e(g.dataset)} <span class=muted>({n_pairs} pairs; as a figure: '
                   f"{figure}{pdf})</span></h3>")  # fmt: skip
        columns = g.pages[0].columns
        head = "".join(f"<th>{e(c.title)}" + (f"<br><span class={'alert' if c.random_weights else 'muted'}>"
                                               f"{e(c.subtitle)}</span>" if c.subtitle else "") + "</th>"
                       for c in columns)  # fmt: skip
        rows = []
        for page in g.pages:
            for r, pair in enumerate(page.row_labels):
                href = g.pair_pages.get(pair)
                label = f'<a href="{e(href)}">{e(pair)}</a>' if href else e(pair)
                cells = []
                for c, cell in enumerate(page.cells[r]):
                    thumb = g.thumbs.get((pair, c))
                    if thumb and cell.image is not None:
                        w, h = cell.image.size
                        img = f'<img src="{e(thumb)}" width="{w}" height="{h}" alt="{e(pair)}: {e(columns[c].title)}">'
                        if href:
                            img = f'<a href="{e(href)}#col-{c}">{img}</a>'
                        note = f"<span class=note>{e(cell.note)}</span>" if cell.note else ""
                        cells.append(f"<td class=cell>{img}{note}</td>")
                    else:
                        state = (cell.job or {}).get("state") or "not-run"
                        detail = f"<small>{e(cell.detail)}</small>" if cell.detail else ""
                        cells.append(f'<td class="state st-{e(state)}" title="{e(cell.detail)}"><b>{e(cell.label)}</b>'
                                     f"{detail}</td>")  # fmt: skip
                rows.append(f"<tr><th>{label}</th>{''.join(cells)}</tr>")
        out.append(f'<div class=gridwrap><table class=grid data-dataset="{e(g.dataset)}" style="--n:{len(columns)}">'
                   f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")  # fmt: skip
    out.append("</section>")
    return "\n".join(out)


def plots_html(plots: list[PlotFile]) -> str:
    out = ['<section id="plots"><h2>Plots</h2>']
    if not plots:
        out.append("<p class=muted>Nothing to plot yet.</p>")
    out.append('<div class="plots">')
    for p in plots:
        pdf_link = f' · <a href="plots/{e(p.pdf)}">PDF</a>' if p.pdf else ""
        out.append(f'<figure><img src="plots/{e(p.png)}" alt="{e(p.title)}"><figcaption>{e(p.title)}{pdf_link}'
                   "</figcaption></figure>")  # fmt: skip
    out.append("</div></section>")
    return "\n".join(out)


def cost_html(cost: pd.DataFrame | None, files: dict[str, str] | None = None) -> str:
    out = ['<section id="cost"><h2>Cost</h2>']
    if cost is None or cost.empty:
        out.append("<p class=muted>No finished job recorded its seconds yet.</p></section>")
        return "\n".join(out)
    out.append("<p class=muted>What each method's finished jobs took, from their records: seconds of the attempt "
               "that produced the output, and the peak memory it measured (GPU memory on CUDA, the process's "
               "peak resident set on a CPU).</p>")  # fmt: skip
    rows = []
    for r in cost.itertuples(index=False):
        def num(x: float, fmt: str) -> str:
            return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

        rows.append(f"<tr><td>{e(r.dataset)}</td><td>{e(r.method)}</td><td class=num>{int(r.jobs)}</td>"
                    f"<td class=num>{num(r.seconds_median, '.2f')}</td><td class=num>{num(r.seconds_mean, '.2f')}</td>"
                    f"<td class=num>{num(r.seconds_total, '.1f' if r.seconds_total >= 10 else '.2f')}</td>"
                    f"<td class=num>{num(r.peak_memory_mb_median, '.0f')}</td>"
                    f"<td class=num>{num(r.peak_memory_mb_max, '.0f')}</td><td>{e(r.devices)}</td></tr>")  # fmt: skip
    links = " · ".join(f'<a href="tables/{e(n)}">{e(f.upper())}</a>' for f, n in (files or {}).items())
    out.append("<table class=cost><tr><th>data set</th><th>method</th><th>jobs</th><th>seconds per job<br>"
               "<span class=muted>median</span></th><th>mean</th><th>total</th><th>peak memory MB<br>"
               "<span class=muted>median</span></th><th>max</th><th>devices</th></tr>"
               f"{''.join(rows)}</table>" + (f"<p>{links}</p>" if links else ""))  # fmt: skip
    out.append("</section>")
    return "\n".join(out)


def health_html(results: RunResults) -> str:
    """Every job without a result, grouped by state: its path (under the run folder), why, what fixes it."""
    jobs = results.incomplete
    if not jobs:
        return ""
    fixer = results.fixer
    groups = attention(jobs, fixer) if fixer else []
    base = common_command(groups)
    rows = []
    for j in sorted(jobs, key=lambda j: (STATES.index(j.state), j.key)):
        try:
            path = j.path.relative_to(results.run_dir)
        except ValueError:
            path = j.path
        if base:
            fix = e(fixer.advice(j.state, "", 1))
        else:
            cmd = fixer.command(j) if fixer else None
            fix = f"<code>{e(cmd)}</code>" if cmd else e(fixer.advice(j) if fixer else "")
        rows.append(f'<tr><td><span class="st st-{j.state}">{e(j.label)}</span></td><td>{e(j.key.dataset)}</td>'
                    f"<td>{e(j.key.pair_id)}</td><td>{e(j.key.method)}</td><td class=nowrap>{e(j.key.variant)}</td>"
                    f"<td><code>{e(path)}</code></td><td>{e(j.why or '')}</td><td>{fix}</td></tr>")  # fmt: skip
    intro = (f"<p>To fix them, run the bench again: <code>{e(base)}</code></p>" if base else "")
    return (f'<section id="health"><h2>Jobs without a result</h2><p class=muted>Paths are under the run folder '
            f"<code>{e(results.run_dir)}</code>.</p>{intro}<table><tr><th>state</th><th>data set</th><th>pair</th>"
            "<th>method</th><th>variant</th><th>path</th><th>why</th><th>what fixes it</th></tr>"
            f"{''.join(rows)}</table></section>")  # fmt: skip


def weights_rows(weights: Any) -> list[tuple[str, str, str, str]]:
    """(name, source, sha256, other details) rows of a recorded weights identity, whatever its shape: one
    identity, several named ones (``{"encoder": {...}, "decoder": {...}}``), a plain string, or nothing."""
    if weights is None or weights == {} or weights == []:
        return []
    if not isinstance(weights, dict):
        return [(str(weights), "", "", "")]
    if weights and all(isinstance(v, dict) for v in weights.values()):
        return [(f"{k}: {n}" if n else str(k), src, sha, more)
                for k, v in weights.items() for n, src, sha, more in (weights_rows(v) or [("", "", "", "")])]
    w = dict(weights)
    name = next((str(w.pop(k)) for k in ("name", "backbone", "model", "spec") if w.get(k) not in (None, "")), "")
    source = next((str(w.pop(k)) for k in ("source", "path", "file", "url", "repository", "checkout", "spec")
                   if w.get(k) not in (None, "")), "")  # fmt: skip
    sha = next((str(w.pop(k)) for k in ("sha256", "commit") if w.get(k) not in (None, "")), "")
    for k in ("sha256", "commit", "source", "path", "file", "url", "spec", "random"):  # random: its own column
        w.pop(k, None)
    more = ", ".join(f"{k}={json.dumps(v, default=str) if not isinstance(v, str) else v}" for k, v in sorted(w.items()))
    return [(name, source, sha, more)]


def _weights_html(weights: list[Any]) -> str:
    rows = [r for w in weights for r in weights_rows(w)]
    if not rows:
        return '<span class="muted">none recorded</span>'
    body = "".join(f"<tr><td>{e(n)}</td><td><code>{e(src)}</code></td>"
                   f"<td><code title=\"{e(sha)}\">{e(sha[:16] + '…' if len(sha) > 16 else sha)}</code></td>"
                   f"<td>{e(more)}</td></tr>" for n, src, sha, more in rows)  # fmt: skip
    return f"<table class=kv><tr><th>name</th><th>source</th><th>sha256</th><th>other</th></tr>{body}</table>"


def provenance_html(results: RunResults) -> str:
    parts = ['<section id="provenance"><h2>Provenance: models, weights and settings</h2>', "<h3>Methods</h3>",
             "<table><tr><th>method</th><th>jobs with a record</th><th>failed</th><th>seed values</th>"
             "<th>random weights</th><th>weights</th><th>configurations (hash: resolved settings)</th>"
             "<th>devices</th></tr>"]  # fmt: skip
    for mm in results.method_models:
        configs = "".join(f"<details><summary><code>{e(h)}</code></summary>{_value_html(c, '', 1)}</details>"
                          for h, c in mm.configs.items())  # fmt: skip
        random = '<span class="alert">yes</span>' if mm.random_weights else "no"
        parts.append(f"<tr><td>{e(mm.method)}</td><td class=num>{mm.n_jobs}</td><td class=num>{mm.n_failed}</td>"
                     f"<td>{e(seeds_text(mm.seeds))}</td><td>{random}</td><td>{_weights_html(mm.weights)}</td>"
                     f"<td>{configs or '<span class=muted>not recorded</span>'}</td>"
                     f"<td>{e(', '.join(mm.devices))}</td></tr>")  # fmt: skip
    parts.append("</table><h3>Metric models</h3>")
    if results.metric_models:
        parts.append("<table><tr><th>metric</th><th>records</th><th>random weights</th>"
                     "<th>model, weights, protocol and thresholds (jobs)</th></tr>")  # fmt: skip
        for mm in results.metric_models:
            random = '<span class="alert">yes</span>' if mm.random_weights else "no"
            idents = "".join(_entry_html(json.loads(k), f"{n} jobs") for k, n in mm.identities.items())
            parts.append(f"<tr><td>{e(mm.metric)}</td><td class=num>{mm.n_records}</td><td>{random}</td>"
                         f"<td>{idents}</td></tr>")  # fmt: skip
        parts.append("</table>")
    else:
        parts.append('<p class="muted">No metric records: run <code>splice score --out RUN</code>.</p>')
    parts.append("<h3>Run settings (run.json)</h3>")
    entries = _run_entries(results.run_info)
    if results.run_info_text is None:
        parts.append('<p class="muted">The run has no run.json.</p>')
    elif not entries:
        parts.append('<p class="muted">run.json is unreadable; see <a href="run.json">run.json</a>.</p>')
    else:
        parts.append('<p><a href="run.json">run.json</a> (every <code>splice bench</code> invocation of the run)</p>')
        for i, entry in enumerate(entries, start=1):
            when = f" · {entry['started']}" if isinstance(entry.get("started"), str) else ""
            parts.append(f"<details{' open' if i == len(entries) else ''}><summary>invocation {i} of {len(entries)}"
                         f"{e(when)}</summary>{_entry_html(entry, '')}</details>")
    parts.append("</section>")
    return "\n".join(parts)


# -- the page ----------------------------------------------------------------------------------------------------
def render_index(results: RunResults, tables: list[TableFiles], missing_tables: list[str], plots: list[PlotFile],
                 grids: list[GridFiles], generated: str, cost: pd.DataFrame | None = None,
                 cost_files: dict[str, str] | None = None, extra: dict[str, str] | None = None) -> str:  # fmt: skip
    """The HTML text of ``index.html`` (sections in the order of the module docstring; ``extra`` fills
    :data:`SLOTS`)."""
    random = results.random_weights
    n_failed = len(results.failed)
    incomplete = results.incomplete
    title = ("[RANDOM WEIGHTS] " if random else "") + f"splice-bench report: {results.run_dir.name}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(title)}</title><style>{CSS}</style></head>",
           f'<body data-random-weights="{str(random).lower()}" data-failed-jobs="{n_failed}" '
           f'data-incomplete-jobs="{len(incomplete)}">']  # fmt: skip
    # banners first: nothing may come before them
    if random:
        out.append(f'<div class="banner random" id="banner-random">{e(random_banner_text(results))}</div>')
    if incomplete:
        text = e(incomplete_banner_text(results)).replace("Incomplete run:", "<b>Incomplete run:</b>", 1)
        text = text.replace("“Jobs without a result”", '<a href="#health">Jobs without a result</a>')
        out.append(f'<div class="banner incomplete" id="banner-incomplete">{text}</div>')
    out.append('<div class="banner broken" id="banner-broken" hidden></div>')
    out.append("<main>")
    out.append(summary_html(results, generated))
    nav = [("tables", "Results")] + [(slot, slot.replace("-", " ").capitalize()) for slot in SLOTS
                                     if (extra or {}).get(slot)]  # fmt: skip
    nav += [("grids", "Grids"), ("plots", "Plots"), ("cost", "Cost")]
    if incomplete:
        nav.append(("health", f"Jobs without a result ({len(incomplete)})"))
    nav.append(("provenance", "Provenance"))
    out.append("<nav>" + "".join(f'<a href="#{a}">{e(t)}</a>' for a, t in nav) + "</nav>")
    out.append(tables_html(results, tables, missing_tables))
    for slot in SLOTS:  # e.g. a metrics overview, filled by whoever builds it
        if extra and extra.get(slot):
            out.append(f'<section id="{slot}">{extra[slot]}</section>')
    out.append(grids_html(grids))
    out.append(plots_html(plots))
    out.append(cost_html(cost, cost_files))
    out.append(health_html(results))
    out.append(provenance_html(results))
    out.append("</main>")
    out.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(x for x in out if x) + "\n"


def render_markdown(results: RunResults, tables: list[TableFiles], plots: list[PlotFile], grids: list[GridFiles],
                    generated: str, cost: pd.DataFrame | None = None,
                    overview: list[str] | None = None) -> str:  # fmt: skip
    """``report.md``: the same report as text, in the same order; its first line names random weights when
    any were used; ``overview``: the lines of the metrics overview (after the tables)."""
    from eval.tables import render

    lines: list[str] = []
    if results.random_weights:
        lines += [f"> **{random_banner_text(results)}**", ""]
    lines += [f"# splice-bench report: {results.run_dir.name}", ""]
    if results.incomplete:
        lines += [f"**{incomplete_banner_text(results).replace('“Jobs without a result”', 'Jobs without a result')}**",
                  ""]  # fmt: skip
    lines += [f"Run folder `{results.run_dir}`; data sets {', '.join(results.datasets)}; methods "
              f"{', '.join(results.methods)}; {len(results.health)} jobs: {summary_text(results.health)}; "
              f"generated {generated}.", ""]  # fmt: skip
    lines += ["## Tables", ""]
    for t in tables:
        body = render(t.table, "md").splitlines()
        while body and (body[0].startswith("> ") or not body[0].strip()):  # the warning is on line 1 already
            body.pop(0)
        lines += [f"### {t.label}", "", *body, ""]
    if overview:
        lines += ["## Metrics overview", "", "Mean over the common pairs, best in bold; ↑ higher / ↓ lower is "
                  "better.", "", *overview]  # fmt: skip
    lines += ["## Comparison grids", ""]
    for g in grids:
        pdf_link = f"[PDF]({g.pdf}), " if g.pdf else ""
        lines.append(f"- {g.dataset}: {pdf_link}" + ", ".join(f"[page {i}]({p})" for i, p in enumerate(g.png, 1)))
    lines += ["", "## Plots", ""] + [f"- [{p.title}](plots/{p.png})" for p in plots] + [""]
    if cost is not None and not cost.empty:
        lines += ["## Cost", "", "| data set | method | jobs | median s | total s | median peak MB | max peak MB |",
                  "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        lines += [f"| {r.dataset} | {r.method} | {int(r.jobs)} | {r.seconds_median:.2f} | {r.seconds_total:.1f} | "
                  f"{r.peak_memory_mb_median:.0f} | {r.peak_memory_mb_max:.0f} |" for r in cost.itertuples(index=False)]
        lines.append("")
    if results.incomplete:
        lines += ["## Jobs without a result", ""]
        for j in results.incomplete:
            fix = results.fixer.command(j) if results.fixer else None
            lines.append(f"- {j.label}: `{j.path}`" + (f" ({j.why})" if j.why else "")
                         + (f"; fix: `{fix}`" if fix else ""))  # fmt: skip
        lines.append("")
    lines += ["## Provenance", ""]
    for mm in results.method_models:
        weights = "; ".join(" ".join(x for x in (n, src, f"sha256 {sha}" if sha else "") if x)
                            for w in mm.weights for n, src, sha, _ in weights_rows(w)) or "none recorded"
        lines.append(f"- method **{mm.method}**: {mm.n_jobs} jobs with a record ({mm.n_failed} failed), "
                     f"{seeds_text(mm.seeds)}, random weights: {'YES' if mm.random_weights else 'no'}, "
                     f"weights: {weights}")  # fmt: skip
    for mm in results.metric_models:
        idents = "; ".join(f"{k} ({n} jobs)" for k, n in mm.identities.items())
        lines.append(f"- metric **{mm.metric}**: {mm.n_records} records, random weights: "
                     f"{'YES' if mm.random_weights else 'no'}: {idents}")  # fmt: skip
    lines += ["", "Run settings: `run.json`." if results.run_info_text is not None else "The run has no run.json."]
    return "\n".join(lines).rstrip() + "\n"
