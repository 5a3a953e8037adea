"""``splice report``: grids, tables, plots and index.html of a run (see :mod:`reports.build`)."""

from __future__ import annotations

import json
import sys

import click

from splice.cli import options as opt


@click.command("report")
@opt.out("The run store (the --out of `splice bench`).", dest="run_dir")
@opt.datasets("Only these data sets (comma list).")
@opt.methods("Only these methods, in this column order (comma list).")
@opt.dest("Report folder [default: OUT/report].")
@click.option("--rows-per-page", type=click.IntRange(1, 200), default=8, show_default=True,
              help="Pairs per grid page (each page is one PNG; the PDF holds all pages).")
@click.option("--cell-size", type=click.IntRange(64, 1024), default=224, show_default=True,
              help="Side of a grid cell in pixels.")
@click.option("--no-pdf", is_flag=True, help="Write PNG grids and plots only (faster); PDFs are made by default.")
@opt.as_json("Print a JSON summary (files, counts, random weights) on stdout.")
def command(run_dir: str, datasets: str | None, methods: str | None, dest: str | None, rows_per_page: int,
            cell_size: int, no_pdf: bool, as_json: bool) -> None:  # fmt: skip
    """Build index.html (results first), grids, a page per pair, tables, plots and cost from a run's records.

    Reads only outputs, job records and metric records (never re-runs a method). The page opens on
    a summary (data sets, methods, jobs per state), the headline table and the comparison grid
    (each pair opens a page with every output at full size and its metric values); plots, cost,
    the jobs without a result and the provenance (models, weights, settings) follow. A report made
    with randomly initialised models, or of a run with jobs that have no result (pending, failed,
    a corrupt record, an output gone), says so at the top. The folder is self-contained.

    \b
    Examples:
      splice report --out runs/demo
      splice report --out runs/paper --datasets afhq,wild-pairs --methods splice,strotss,wct2 --dest figs/
      splice report --out runs/paper --rows-per-page 10 --json > report.json
    """
    from pathlib import Path

    from reports.build import build_report
    from reports.grids import GridStyle
    from splice.core.errors import UserError
    from splice.core.paths import ensure_writable_dir
    from splice.core.store import RunStore

    run_dir = RunStore.open(run_dir).root
    if dest:
        inside = Path(dest).expanduser().resolve()
        outputs = (Path(run_dir) / "outputs").resolve()
        if inside == outputs or outputs in inside.parents:  # job folders: a report there would mix with results
            raise UserError(f"--dest {dest} is inside the run's outputs/ (its job folders); leave --dest out for "
                            f"{Path(run_dir) / 'report'} or choose a folder outside outputs/")  # fmt: skip
    # without --dest the report goes into the run store; if that cannot be written, the error says to pass --dest
    dest = ensure_writable_dir(dest if dest else Path(run_dir) / "report",
                               "--dest" if dest else "--dest (default: OUT/report)")  # fmt: skip
    style = GridStyle(cell=cell_size, rows_per_page=rows_per_page)
    summary = build_report(run_dir, dest=dest, datasets=opt.split(datasets) or [], methods=opt.split(methods) or [],
                           style=style,
                           progress=lambda msg: click.echo(msg, err=True), pdf=not no_pdf)  # fmt: skip
    if summary.random_weights:
        click.echo("WARNING: this report contains results of RANDOMLY INITIALISED models: "
                   + "; ".join(summary.random_sources), err=True)  # fmt: skip
    missing = {s: n for s, n in summary.jobs.items() if s not in ("done", "not-applicable")}
    if missing:
        from splice.core.health import LABELS

        click.echo(f"WARNING: incomplete run: {sum(missing.values())} of {sum(summary.jobs.values())} jobs have no "
                   "result (" + ", ".join(f"{n} {LABELS[s]}" for s, n in missing.items())
                   + "); the report's banner lists them, `splice bench status` names each with its fix", err=True)
    click.echo(f"report: {summary.index}", err=True)
    if as_json:
        sys.stdout.write(json.dumps(summary.to_dict(), indent=1) + "\n")
