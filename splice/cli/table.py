"""``splice table``: metric tables (every method on the same pairs, paired differences, counts) from a run's
stored records only.

Nothing is recomputed: rows come from :func:`eval.aggregate.load_results` (job records
and the ``metrics/*.json`` that ``splice score`` wrote), numbers from
:func:`eval.tables.metric_table`, text from :func:`eval.tables.render`.
"""

from __future__ import annotations

import click

from eval.metrics import METRICS
from splice.cli import options as opt
from splice.core.errors import ConfigError

METRIC_CHOICES = list(METRICS)  # every number of the metric registry (`splice metrics`), seconds and memory


@click.command("table")
@opt.out("The run store (runs/NAME).")
@click.option("--metric", "-m", "metrics", multiple=True, type=click.Choice(METRIC_CHOICES), default=["iou"],
              show_default=True, help="Metric to tabulate (every number of `splice metrics`, seconds, memory); "
                                      "repeat for several tables.")
@click.option("--format", "-f", "fmt", type=click.Choice(["md", "csv", "latex"]), default="md", show_default=True)
@opt.methods("Comma list of methods, in the order to show (default: all, sorted). Common pairs are those "
             "every listed method has a value for.")
@opt.datasets("Comma list of data sets (default: all).")
@click.option("--reference", default=None, metavar="METHOD",
              help="Method the paired differences are taken to (default: splice, when in the run).")
@opt.segmenter("Layout segmenter whose records to tabulate on every data set (default: each data set's "
               "default when it has those records, else the one it has).")
@click.option("--paper", is_flag=True,
              help="Show the Splice paper's Table 2 values beside ours (layout IoU only), marked as the paper's.")
def command(out: str, metrics: tuple[str, ...], fmt: str, methods: str | None, datasets: str | None,
            reference: str | None, segmenter: str | None, paper: bool) -> None:  # fmt: skip
    """Print each metric per data set and method, every method on the same pairs.

    Per data set, the headline mean ± std is over the pairs that every method of the table has a value
    for (n_common, equal for all methods; the best in bold); the mean over all of a method's own pairs
    follows; then the paired difference to the reference method with a paired bootstrap 95% interval,
    and the jobs excluded (nothing to compare in the structure image), failed and unscored. A pair's
    value is the mean over its seeds. Layout tables (iou) say which segmenter made them (maskrcnn or
    panoptic). Tables built with randomly initialised models say so on their first line.
    'unfinished' counts expected jobs without a result yet (pending, running, stale, a corrupt
    record, an output gone); each is named on stderr with the command that fixes it. A --methods
    or --datasets name the run does not hold is an error.

    \b
    Examples:
      splice table --out runs/demo
      splice table --out runs/paper --metric iou --paper --format md
      splice table --out runs/paper --metric iou --metric structure --format latex
      splice table --out runs/paper --metric iou --format csv --reference paper-ours > iou.csv
      splice table --out runs/paper --metric appearance --methods splice,strotss,wct2 --format csv > app.csv
      splice table --out runs/smoke --metric lpips_vgg --metric clip --metric lab_emd
    """
    from eval.aggregate import load_results
    from eval.tables import metric_table, render, render_csv
    from splice.core.health import Fixer, attention, attention_lines, check_selection, select, survey
    from splice.core.store import RunStore

    store = RunStore.open(out)
    everything = survey(store)  # once: the tables and the jobs named below come from it
    df = load_results(store.root, expected=True, jobs=everything)
    wanted_ds, order = opt.split(datasets), opt.split(methods)
    check_selection("--datasets", wanted_ds, df["dataset"], f"run {out}")
    check_selection("--methods", order, df["method"], f"run {out}")
    if wanted_ds:
        df = df[df["dataset"].isin(wanted_ds)]
    if df.empty:
        raise ConfigError(f"no job records in {out} for this selection; run `splice bench --out {out}` first")
    tables = [metric_table(df, metric, methods=order, reference=reference, segmenter=segmenter, paper=paper)
              for metric in metrics]  # fmt: skip
    if fmt == "csv":  # one CSV for several metrics: its `metric` column tells them apart
        click.echo(render_csv(tables), nl=False)
    else:
        click.echo("\n".join(render(t, fmt) for t in tables), nl=False)
    # every job of the selection without a result, named on stderr with what fixes it
    lines = attention_lines(attention(select(everything, order, wanted_ds), Fixer(store)), out)
    for line in lines:
        click.echo(line, err=True)
