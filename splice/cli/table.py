"""``splice table``: metric tables (mean ± std, counts) from a run's stored records only.

Nothing is recomputed: rows come from :func:`eval.aggregate.load_results` (job records
and the ``metrics/*.json`` that ``splice score`` wrote), numbers from
:func:`eval.tables.metric_table`, text from :func:`eval.tables.render`.
"""

from __future__ import annotations

import click

from splice.cli import options as opt
from splice.core.errors import ConfigError

METRIC_CHOICES = ["iou", "matched_iou", "structure", "appearance", "cosine", "seconds", "memory"]


@click.command("table")
@opt.out("The run store (runs/NAME).")
@click.option("--metric", "-m", "metrics", multiple=True, type=click.Choice(METRIC_CHOICES), default=["iou"],
              show_default=True, help="Metric to tabulate; repeat for several tables.")
@click.option("--format", "-f", "fmt", type=click.Choice(["md", "csv", "latex"]), default="md", show_default=True)
@opt.methods("Comma list of methods, in the order to show (default: all, sorted).")
@opt.datasets("Comma list of data sets (default: all).")
def command(out: str, metrics: tuple[str, ...], fmt: str, methods: str | None, datasets: str | None) -> None:
    """Print mean ± std per data set and method, with pairs used / excluded / failed.

    The std is the sample standard deviation (n-1), blank for a single value. IoU
    excludes pairs whose structure image has no detection (counted in 'excluded');
    'unscored' appears when finished jobs lack a metric record (run `splice score`).
    The best mean per data set is in bold (md, latex). Tables built with randomly
    initialised models say so on their first line.

    \b
    Examples:
      splice table --out runs/demo
      splice table --out runs/paper --metric iou --metric structure --format latex
      splice table --out runs/paper --metric appearance --methods splice,strotss,wct2 --format csv > app.csv
    """
    from eval.aggregate import load_results
    from eval.tables import metric_table, render
    from splice.core.store import RunStore

    df = load_results(RunStore.open(out).root)
    if datasets:
        wanted = [d.strip() for d in datasets.split(",") if d.strip()]
        df = df[df["dataset"].isin(wanted)]
    order = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    if df.empty:
        raise ConfigError(f"no job records in {out} for this selection; run `splice bench --out {out}` first")
    for i, metric in enumerate(metrics):
        if i:
            click.echo("")
        click.echo(render(metric_table(df, metric, methods=order), fmt), nl=False)
