"""The report's ``index.html`` (and its Markdown twin ``report.md``): one self-contained page.

Everything is inline (CSS, a few lines of script) and every link is relative to the report folder, so the
folder can be copied, zipped or served as it is. The page states the run's settings and the models and
weights behind every number, as PROTOCOL.md ("Reports") asks of every report of the Splice benchmark
(Tumanyan et al., CVPR 2022); when any result came from randomly initialised models, or any job failed,
a banner at the very top says so before anything else. Every string that comes from a record is
HTML-escaped.

The script only checks, after loading, that every image of the page decoded; it records the counts on
``<body data-images=... data-broken-images=...>`` and shows a banner when some are missing (for example,
the page was copied without its folders). Browser tests read those attributes.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from html import escape
from typing import Any

import pandas as pd

from eval.tables import mean_std_text

from .grids import GridPage
from .plots import PlotFile
from .results import RunResults
from .tables import TableFiles

RANDOM_BANNER = "RANDOMLY INITIALISED MODELS"


@dataclass
class GridFiles:
    dataset: str
    pages: list[GridPage]
    png: list[str] = field(default_factory=list)  # paths relative to the report folder
    pdf: str | None = None


def e(value: Any) -> str:
    """HTML-escaped text of ``value`` (quotes included, so it is safe in attributes too)."""
    return escape("" if value is None else str(value), quote=True)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1b1b1b}
main{padding:0 24px 40px;max-width:1800px}
.banner{padding:12px 24px;font-weight:600;border-bottom:1px solid rgba(0,0,0,.15)}
.banner.random{background:#b71c1c;color:#fff;font-size:16px}
.banner.failed{background:#fff3cd;color:#5c4400}
.banner.broken{background:#37474f;color:#fff}
h1{font-size:22px;margin:18px 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
nav a{margin-right:14px}
table{border-collapse:collapse;margin:6px 0 12px}
th,td{border:1px solid #d5d5d5;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums} td.best{font-weight:700}
caption{text-align:left;font-weight:600;padding:2px 0}
table.settings{margin:0} table.settings th{font-weight:500}
pre{background:#f7f7f7;padding:6px 8px;margin:0;white-space:pre-wrap;word-break:break-all;font-size:12px}
.muted{color:#666} .alert{color:#b71c1c;font-weight:600}
figure{margin:8px 0 18px} figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:12px;color:#555}
.plots{display:flex;flex-wrap:wrap;gap:0 18px}
img.broken{outline:3px solid #b71c1c;min-width:40px;min-height:40px}
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
"""


def _json_pre(obj: Any) -> str:
    return f"<pre>{e(json.dumps(obj, indent=1, sort_keys=True, default=str))}</pre>"


def _value_html(value: Any, key: str = "") -> str:
    """A run.json value: a command line as shell text, small structures as one line, big ones folded."""
    if key == "command" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return f"<code>{e(shlex.join(value))}</code>"
    if isinstance(value, (dict, list)):
        compact = json.dumps(value, sort_keys=True, default=str)
        if len(compact) <= 120:
            return f"<code>{e(compact)}</code>"
        return f"<details><summary><code>{e(compact[:100])}…</code></summary>{_json_pre(value)}</details>"
    if value is None or isinstance(value, bool):
        return f"<code>{json.dumps(value)}</code>"
    return e(value)


def _entry_html(entry: dict[str, Any], caption: str) -> str:
    rows = []
    for k, v in entry.items():
        if k == "settings" and isinstance(v, dict):  # the settings a run was made with: one row each
            inner = "".join(f"<tr><th>{e(sk)}</th><td>{_value_html(sv, sk)}</td></tr>" for sk, sv in v.items())
            rows.append(f"<tr><th>{e(k)}</th><td><table class=settings>{inner}</table></td></tr>")
        else:
            rows.append(f"<tr><th>{e(k)}</th><td>{_value_html(v, k)}</td></tr>")
    return f"<table class=run-entry><caption>{e(caption)}</caption>{''.join(rows)}</table>"


def random_banner_text(results: RunResults) -> str:
    sources = results.random_sources()
    return (f"{RANDOM_BANNER}: results in this report came from randomly initialised models "
            f"({'; '.join(sources)}). They test the pipeline and say nothing about the methods.")  # fmt: skip


def failed_banner_text(results: RunResults) -> str:
    n, total = len(results.failed), len(results.df)
    return f"{n} of {total} jobs failed; they are listed under “Failed jobs” and shown as blank cells in the grids."


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


def settings_html(results: RunResults) -> str:
    parts = ['<section id="settings"><h2>Models, weights and settings</h2>', "<h3>Methods</h3>",
             "<table><tr><th>method</th><th>jobs</th><th>failed</th><th>seeds</th><th>random weights</th>"
             "<th>weights</th><th>configurations (hash: resolved settings)</th><th>devices</th></tr>"]  # fmt: skip
    for mm in results.method_models:
        weights = "".join(f"<pre>{e(w)}</pre>" for w in mm.weights) or '<span class="muted">not recorded</span>'
        configs = "".join(f"<details><summary>{e(h)}</summary>{_json_pre(c)}</details>" for h, c in mm.configs.items())
        random = '<span class="alert">yes</span>' if mm.random_weights else "no"
        parts.append(f"<tr><td>{e(mm.method)}</td><td class=num>{mm.n_jobs}</td><td class=num>{mm.n_failed}</td>"
                     f"<td>{e(', '.join(map(str, mm.seeds)))}</td><td>{random}</td><td>{weights}</td>"
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
        parts.append(f'<p><a href="run.json">run.json</a> (every <code>splice bench</code> invocation of the run)</p>')
        for i, entry in enumerate(entries, start=1):
            parts.append(_entry_html(entry, f"invocation {i} of {len(entries)}"))
    parts.append("</section>")
    return "\n".join(parts)


def failures_html(results: RunResults) -> str:
    failed = results.failed
    if failed.empty:
        return ""
    rows = "".join(
        f"<tr><td>{e(r.dataset)}</td><td>{e(r.pair_id)}</td><td>{e(r.method)}</td><td class=num>{int(r.seed)}</td>"
        f"<td>{e(r.config_hash)}</td><td>{e(r.status)}</td><td>{e(r.error)}</td></tr>"
        for r in failed.itertuples(index=False)
    )
    return ('<section id="failures"><h2>Failed jobs</h2><table><tr><th>data set</th><th>pair</th><th>method</th>'
            f"<th>seed</th><th>config</th><th>status</th><th>error</th></tr>{rows}</table></section>")  # fmt: skip


def table_html(t: TableFiles, digits: int) -> str:
    """A metric table (:func:`eval.tables.metric_table`): common pairs first, the best of each data set marked."""
    from eval.tables import diff_text, footer, paper_text

    table = t.table
    show_unscored = bool(len(table)) and int(table["unscored"].sum()) > 0
    show_seg = bool(len(table)) and bool(table["segmenter"].astype(bool).any())
    paper = bool(table.attrs.get("paper"))
    arrow = "↑" if t.higher_is_better else "↓"
    ref = table.attrs.get("reference", "splice")
    head = ("<tr><th>data set</th><th>method</th>" + ("<th>segmenter</th>" if show_seg else "")
            + f"<th>{e(t.label)} {arrow}<br><span class=muted>common pairs, mean ± std</span></th><th>n</th>"
            "<th>all pairs</th><th>n</th>" + f"<th>vs {e(ref)}<br><span class=muted>95% CI</span></th>"
            "<th>excluded</th><th>failed</th>" + ("<th>unscored</th>" if show_unscored else "")
            + ("<th>paper (Table 2)</th>" if paper else "") + "</tr>")  # fmt: skip
    na = {tuple(x) for x in table.attrs.get("not_applicable", [])}  # the method does not apply to the data set
    body = []
    for _, r in table.iterrows():
        cls = "num best" if r["best"] else "num"
        common = "—" if (r["dataset"], r["method"]) in na else mean_std_text(r["mean_common"], r["std_common"], digits)
        counts = [r["excluded"], r["failed"]] + ([r["unscored"]] if show_unscored else [])
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


def render_index(results: RunResults, tables: list[TableFiles], missing_tables: list[str], plots: list[PlotFile],
                 grids: list[GridFiles], generated: str) -> str:  # fmt: skip
    """The HTML text of ``index.html``."""
    from eval.metrics import get_metric

    random = results.random_weights
    n_failed = len(results.failed)
    name = results.run_dir.name
    title = ("[RANDOM WEIGHTS] " if random else "") + f"splice-bench report: {name}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(title)}</title><style>{CSS}</style></head>",
           f'<body data-random-weights="{str(random).lower()}" data-failed-jobs="{n_failed}">']  # fmt: skip
    # banners first: nothing may come before them
    if random:
        out.append(f'<div class="banner random" id="banner-random">{e(random_banner_text(results))}</div>')
    if n_failed:
        out.append(f'<div class="banner failed" id="banner-failed">{e(failed_banner_text(results))}</div>')
    out.append('<div class="banner broken" id="banner-broken" hidden></div>')
    out.append("<main>")
    out.append(f"<h1>{e(title)}</h1>")
    out.append(f"<p class=muted>Run folder <code>{e(results.run_dir)}</code> · {len(results.df)} jobs · data sets: "
               f"{e(', '.join(results.datasets))} · methods: {e(', '.join(results.methods))} · "
               f"generated {e(generated)} "
               "from stored outputs and metric records only.</p>")  # fmt: skip
    nav = [("settings", "Models, weights and settings")]
    if n_failed:
        nav.append(("failures", f"Failed jobs ({n_failed})"))
    nav += [("tables", "Tables"), ("plots", "Plots"), ("grids", "Comparison grids")]
    out.append("<nav>" + "".join(f'<a href="#{a}">{e(t)}</a>' for a, t in nav) + "</nav>")
    out.append(settings_html(results))
    out.append(failures_html(results))

    out.append('<section id="tables"><h2>Tables</h2>')
    out.append("<p class=muted>Mean ± sample std over the common pairs (those every method of the data set has "
               "a value for; a pair's value is the mean over its seeds), then over all of a method's pairs, then "
               "the paired difference to the reference method with a 95% paired bootstrap interval; excluded = "
               "nothing to compare in the aligned structure image (layout metrics); failed = the job did not "
               "finish; unscored = no metric record yet. The best mean on common pairs per data set is in "
               "bold.</p>")  # fmt: skip
    for t in tables:
        out.append(table_html(t, get_metric(t.metric).digits))
    if missing_tables:
        labels = ", ".join(get_metric(k).label for k in missing_tables)
        out.append(f"<p class=muted>No values yet for: {e(labels)} (run <code>splice score</code>).</p>")
    out.append("</section>")

    out.append('<section id="plots"><h2>Plots</h2>')
    if not plots:
        out.append("<p class=muted>Nothing to plot yet.</p>")
    out.append('<div class="plots">')
    for p in plots:
        pdf_link = f' · <a href="plots/{e(p.pdf)}">PDF</a>' if p.pdf else ""
        out.append(f'<figure><img src="plots/{e(p.png)}" alt="{e(p.title)}"><figcaption>{e(p.title)}{pdf_link}'
                   "</figcaption></figure>")  # fmt: skip
    out.append("</div></section>")

    out.append('<section id="grids"><h2>Comparison grids</h2>')
    out.append("<p class=muted>Rows are pairs; columns the structure image, the appearance image, then each method's "
               "output shown in the structure image's frame (the recorded geometry places it; grey marks parts of "
               "the structure image the output does not cover). One column per method configuration; the lowest "
               "stored seed of each pair is shown.</p>")  # fmt: skip
    for g in grids:
        pdf_link = f'<a href="{e(g.pdf)}">PDF</a> ' if g.pdf else ""
        out.append(f'<h3 id="grid-{e(g.dataset)}">{e(g.dataset)}</h3><p>{pdf_link}'
                   f"({len(g.png)} page{'s' if len(g.png) != 1 else ''})</p>")  # fmt: skip
        for page, png in zip(g.pages, g.png):
            w, h = page.image.size
            out.append(f'<figure><a href="{e(png)}"><img src="{e(png)}" width="{w}" height="{h}" '
                       f'alt="{e(g.dataset)} comparison grid, page {page.page}"></a>'
                       f"<figcaption>{e(g.dataset)} · page {page.page}/{page.n_pages}"
                       "</figcaption></figure>")  # fmt: skip
    out.append("</section></main>")
    out.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(x for x in out if x) + "\n"


def render_markdown(results: RunResults, tables: list[TableFiles], plots: list[PlotFile], grids: list[GridFiles],
                    generated: str) -> str:  # fmt: skip
    """``report.md``: the same report as text; its first line names random weights when any were used."""
    from eval.tables import render

    lines: list[str] = []
    if results.random_weights:
        lines += [f"> **{random_banner_text(results)}**", ""]
    lines += [f"# splice-bench report: {results.run_dir.name}", ""]
    if len(results.failed):
        lines += [f"**{failed_banner_text(results)}**", ""]
    lines += [f"Run folder `{results.run_dir}`, {len(results.df)} jobs, generated {generated}.", "",
              "## Models and weights", ""]  # fmt: skip
    for mm in results.method_models:
        lines.append(f"- method **{mm.method}**: {mm.n_jobs} jobs ({mm.n_failed} failed), seeds "
                     f"{', '.join(map(str, mm.seeds))}, random weights: {'YES' if mm.random_weights else 'no'}, "
                     f"weights: {'; '.join(mm.weights) or 'not recorded'}")  # fmt: skip
    for mm in results.metric_models:
        idents = "; ".join(f"{k} ({n} jobs)" for k, n in mm.identities.items())
        lines.append(f"- metric **{mm.metric}**: {mm.n_records} records, random weights: "
                     f"{'YES' if mm.random_weights else 'no'}: {idents}")  # fmt: skip
    lines += ["", "Run settings: `run.json`." if results.run_info_text is not None else "The run has no run.json.", ""]
    lines += ["## Tables", ""]
    for t in tables:
        text = render(t.table, "md")
        body = text.splitlines()
        while body and (body[0].startswith("> ") or not body[0].strip()):  # the warning is on line 1 already
            body.pop(0)
        lines += [f"### {t.label}", "", *body, ""]
    lines += ["## Plots", ""] + [f"- [{p.title}](plots/{p.png})" for p in plots] + [""]
    lines += ["## Comparison grids", ""]
    for g in grids:
        pdf_link = f"[PDF]({g.pdf}), " if g.pdf else ""
        lines.append(f"- {g.dataset}: {pdf_link}" + ", ".join(f"[page {i}]({p})" for i, p in enumerate(g.png, 1)))
    return "\n".join(lines).rstrip() + "\n"
