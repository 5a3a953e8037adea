"""``splice report``: grids, tables, plots and ``index.html`` of a run, from stored results only.

Builds, into a report folder (default ``runs/NAME/report/``), the comparison grids, metric tables and
plots that reproduce the Splice paper's figures and Table 2 (Tumanyan et al., CVPR 2022) for a run of the
benchmark, and one self-contained ``index.html`` tying them together (PROTOCOL.md, "Reports")::

    report/
      index.html  report.md  report.json  run.json
      grids/<dataset>-p01.png ...  grids/<dataset>.pdf      the grids as figures (pages of PNG, one PDF)
      thumbs/<dataset>/<pair>/<column>.jpg                  the grid's cells on the page
      pairs/<dataset>/<pair>.html  pairs/<dataset>/<pair>/  a page per pair, every image at full size
      tables/<metric>.csv .md .tex  tables/cost.csv .md  tables/overview.csv
      plots/<metric>.png .pdf   plots/seconds.png .pdf

After the headline tables, a metrics overview (:mod:`reports.overview`, in the page's ``metrics-overview``
slot): one table per data set with every metric of the registry as a column; each pair page shows each
output's value of every metric.

The page puts results first (:mod:`reports.page`: summary, headline tables, grids, plots, cost, the jobs
without a result, provenance last); a run with jobs that have no result (pending, failed, corrupt, ...:
:mod:`splice.core.health`) gets a banner saying what is missing.

Every file is written atomically. ``report.json`` lists the files written; files a previous build listed
and this one does not write (a data set left out by ``--datasets``) are removed, so the folder never shows
stale results. Nothing is written outside the report folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from splice.core.atomic import atomic_write_json, atomic_write_text, read_json
from splice.core.errors import UserError
from splice.core.health import counts, summary_text

from .grids import GridStyle, build_grid, write_grid
from .overview import overview, overview_csv, overview_html, overview_markdown
from .page import GridFiles, random_banner_text, render_index, render_markdown
from .pairs import safe_stem, write_pair_pages, write_thumbnails
from .plots import write_plots
from .results import RunResults, load_run
from .tables import build_tables, cost_table, write_cost, write_tables

log = logging.getLogger(__name__)

MANIFEST = "report.json"


@dataclass
class ReportSummary:
    """What :func:`build_report` made (also written as ``report.json``)."""

    dest: Path
    index: Path
    run: Path
    datasets: list[str]
    methods: list[str]
    n_jobs: int
    n_failed: int
    random_weights: bool
    random_sources: list[str]
    jobs: dict[str, int] = field(default_factory=dict)  # expected jobs per state (splice.core.health)
    files: list[str] = field(default_factory=list)  # relative to dest
    tables: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    grid_pages: dict[str, int] = field(default_factory=dict)
    generated: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "random_weights": self.random_weights,
            "random_sources": self.random_sources,
            "run": str(self.run),
            "dest": str(self.dest),
            "index": str(self.index),
            "generated": self.generated,
            "datasets": self.datasets,
            "methods": self.methods,
            "n_jobs": self.n_jobs,
            "n_failed": self.n_failed,
            "jobs": self.jobs,
            "tables": self.tables,
            "plots": self.plots,
            "grid_pages": self.grid_pages,
            "files": self.files,
        }


def _remove_stale(dest: Path, written: set[str]) -> None:
    """Remove files an earlier build listed in ``report.json`` that this build did not write (inside dest only)."""
    try:
        previous = read_json(dest / MANIFEST).get("files", [])
    except (OSError, ValueError, AttributeError):
        return
    root = dest.resolve()
    for rel in previous:
        if not isinstance(rel, str) or rel in written:
            continue
        path = (dest / rel).resolve()
        if root in path.parents and path.is_file():
            path.unlink()


def build_report(run_dir: str | Path, dest: str | Path | None = None, datasets: list[str] | None = None,
                 methods: list[str] | None = None, style: GridStyle | None = None,
                 progress: Callable[[str], None] | None = None, pdf: bool = True,
                 extra: dict[str, str] | None = None) -> ReportSummary:  # fmt: skip
    """Build the report of the run at ``run_dir`` into ``dest`` (default ``run_dir/report``).

    Args:
        run_dir: a run store (``splice bench --out``).
        dest: the report folder; created when absent.
        datasets, methods: keep only these (comma-separated strings allowed); default all in the run.
        style: grid sizes and rows per page.
        progress: called with one line per step (the CLI prints them on stderr).
        pdf: also write the PDFs of grids and plots (False: PNG only, faster).
        extra: HTML for the page's open slots (:data:`reports.page.SLOTS`, e.g. ``{"metrics-overview": ...}``),
            placed after the headline tables.
    """
    say = progress or (lambda msg: log.info(msg))
    style = style or GridStyle()
    results: RunResults = load_run(run_dir, datasets, methods)
    dest = Path(dest) if dest is not None else results.run_dir / "report"
    if dest.exists() and not dest.is_dir():
        raise UserError(f"report destination {dest} is a file; pass a folder with --dest")
    dest.mkdir(parents=True, exist_ok=True)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    written: list[str] = []
    df = results.df
    random = results.random_weights
    say(f"report of {results.run_dir}: {len(df)} jobs, data sets {', '.join(results.datasets)}, "
        f"methods {', '.join(results.methods)}" + (" [RANDOM WEIGHTS]" if random else ""))  # fmt: skip

    if results.run_info_text is not None:
        atomic_write_text(dest / "run.json", results.run_info_text)
        written.append("run.json")

    tables, missing = build_tables(df, results.methods)
    write_tables(tables, dest / "tables")
    written += [f"tables/{name}" for t in tables for name in t.files.values()]
    no_values = f" (no values: {', '.join(missing)})" if missing else ""
    say(f"tables: {', '.join(t.metric for t in tables) or 'none'}{no_values}")

    plots = write_plots(df, results.datasets, results.methods, dest / "plots", random_weights=random, pdf=pdf)
    written += [f"plots/{name}" for p in plots for name in (p.png, p.pdf) if name]
    say(f"plots: {', '.join(p.key for p in plots) or 'none'}")

    cost = cost_table(df, results.methods)
    cost_files = write_cost(cost, dest / "tables")
    written += [f"tables/{name}" for name in cost_files.values()]

    grids: list[GridFiles] = []
    taken: set[str] = set()
    health = {j.key: j for j in results.health}
    for dataset in results.datasets:
        pages = build_grid(df, dataset, results.methods, style)
        stem = safe_stem(dataset, taken)
        files = write_grid(pages, dest / "grids", stem, style, pdf=pdf)
        g = GridFiles(dataset, pages, png=[f"grids/{n}" for n in files["png"]],
                      pdf=f"grids/{files['pdf']}" if files["pdf"] else None)  # fmt: skip
        grids.append(g)
        written += g.png + ([g.pdf] if g.pdf else [])
        pair_taken: set[str] = set()
        pair_stems = {p: safe_stem(p, pair_taken) for page in pages for p in page.row_labels}
        written += write_thumbnails(g, dest, stem, pair_stems)
        written += write_pair_pages(df, g, dest, stem, pair_stems, health, results.fixer, results.run_dir.name,
                                    random_banner_text(results) if random else None)  # fmt: skip
        n_pairs = sum(len(p.row_labels) for p in pages)
        say(f"grid {dataset}: {n_pairs} pairs x {len(pages[0].columns)} columns, {len(pages)} page(s), "
            f"{n_pairs} pair pages")  # fmt: skip

    summaries = overview(tables, results.methods)
    if summaries:
        atomic_write_text(dest / "tables" / "overview.csv", overview_csv(summaries))
        written.append("tables/overview.csv")
        say(f"metrics overview: {len(summaries[0].values.columns)} metrics, {len(summaries)} data set(s)")
        extra = {"metrics-overview": overview_html(summaries), **(extra or {})}
    atomic_write_text(dest / "report.md", render_markdown(results, tables, plots, grids, generated, cost,
                                                          overview_markdown(summaries)))  # fmt: skip
    atomic_write_text(dest / "index.html", render_index(results, tables, missing, plots, grids, generated, cost,
                                                        cost_files, extra))  # fmt: skip
    written += ["report.md", "index.html"]
    jobs = {s: n for s, n in counts(results.health).items() if n}
    if results.incomplete:
        say(f"incomplete run: {len(results.incomplete)} of {len(results.health)} jobs have no result "
            f"({summary_text(results.incomplete)})")
    summary = ReportSummary(
        dest=dest, index=dest / "index.html", run=results.run_dir, datasets=results.datasets, methods=results.methods,
        n_jobs=len(df), n_failed=len(results.failed), jobs=jobs, random_weights=random,
        random_sources=results.random_sources(),
        files=written + [MANIFEST], tables=[t.metric for t in tables], plots=[p.key for p in plots],
        grid_pages={g.dataset: len(g.png) for g in grids}, generated=generated,
    )  # fmt: skip
    _remove_stale(dest, set(summary.files))
    atomic_write_json(dest / MANIFEST, summary.to_dict())
    return summary
