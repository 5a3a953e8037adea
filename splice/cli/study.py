"""``splice study``: export, serve and analyse the 2AFC user study (Splice paper, Table 1).

The library lives in :mod:`eval.study` (PROTOCOL.md, "2AFC user study"); this module only
parses options, calls it, and prints a summary (stderr) or JSON (stdout, ``--json``).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from splice.cli import options as opt
from splice.core.errors import UserError

log = logging.getLogger(__name__)


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


@click.group("study", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """The 2AFC user study: Mechanical Turk sheets, a local lab page, and the statistics.

    \b
    Examples:
      splice study export --out runs/paper --ours splice --baselines strotss,wct2,swapping-autoencoder \\
          --judgments 5 --vigilance 0.1 --seed 1 --base-url https://example.org/s1/images --dest study/
      splice study serve --study study/ --port 8765
      splice study analyze --results Batch_123_results.csv --results study/lab/results.csv \\
          --key study/private/answer_key.csv --dest study/analysis
    """


@command.command("export")
@opt.out("The run store (runs/NAME).", dest="run_dir")
@click.option("--ours", default="splice", show_default=True, help="Our method (the one every trial includes).")
@click.option("--baselines", required=True, help="Comma-separated baseline methods to compare against.")
@opt.datasets("Comma-separated data sets (default: all in the run).")
@click.option("--judgments", default=5, show_default=True, type=click.IntRange(1, 50), help="Judgments per comparison.")
@click.option("--vigilance", default=0.1, show_default=True, type=float,
              help="Share of catch trials per HIT (0 = none; at least 1 per HIT otherwise).")
@opt.seed("Seed of every random choice (ids, sides, order).")
@click.option("--base-url", required=True, help="URL under which the exported images/ folder will be published.")
@opt.dest("Folder to write the study into.", required=True)
@click.option("--trials-per-hit", default=10, show_default=True, type=click.IntRange(2, 100), help="Trials per HIT.")
@click.option("--size", "long_side", default=512, show_default=True, type=click.IntRange(64, 2048),
              help="Longer side of every shown image, in pixels.")
@click.option("--variant", "variants", multiple=True, metavar="METHOD=s<seed>-<hash>",
              help="Which job variant of METHOD to use when the run holds several.")
@opt.root("Folder that relative input paths of the records are resolved against.")
@opt.force("Overwrite an existing export in --dest (new ids!).")
@opt.as_json("Print the export summary as JSON on stdout.")
def export_cmd(run_dir, ours, baselines, datasets, judgments, vigilance, seed, base_url, dest, trials_per_hit,
               long_side, variants, root, force, as_json):
    """Write Mechanical Turk sheets (batch CSV, HIT template, images, answer key) from a run.

    \b
    Example:
      splice study export --out runs/paper --ours splice --baselines strotss,wct2 --datasets afhq,wild-pairs \\
          --judgments 5 --vigilance 0.1 --seed 1 --base-url https://example.org/s1/images --dest study/
    Upload images/ to --base-url, batch.csv and template.html to Mechanical Turk; keep private/.
    """
    from eval.study.export import ExportSettings, export_study, parse_variants
    from splice.core.paths import ensure_writable_dir
    from splice.core.store import RunStore

    run_dir, dest = RunStore.open(run_dir).root, ensure_writable_dir(dest, "--dest")
    res = export_study(ExportSettings(
        run_dir=run_dir, dest=dest, base_url=base_url, baselines=_split(baselines) or [], ours=ours,
        datasets=_split(datasets), judgments=judgments, vigilance=vigilance, seed=seed,
        trials_per_hit=trials_per_hit, long_side=long_side, variants=parse_variants(variants),
        data_root=Path(root) if root else None, force=force,
    ))  # fmt: skip
    c = res.counts
    if res.random_weights:
        click.echo(f"WARNING: {len(res.random_weights)} output(s) came from randomly initialised weights", err=True)
    click.echo(f"study written to {res.dest}: {c['hits']} HITs, {c['comparison_trials']} comparison trials "
               f"({res.items} comparisons x {judgments}), {c['vigilance_trials']} vigilance trials, "
               f"{res.n_images} images; ours left/right {c['ours_left']}/{c['ours_right']}", err=True)
    if as_json:
        click.echo(json.dumps({"dest": str(res.dest), "counts": c, "items": res.items, "images": res.n_images,
                               "skipped_pairs": res.skipped_pairs, "random_weights": bool(res.random_weights)}))


@command.command("analyze")
@click.option("--results", "results", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Results CSV from Mechanical Turk or <study>/lab/results.csv (repeatable).")
@click.option("--key", required=True, type=click.Path(path_type=Path), help="<study>/private/answer_key.csv")
@opt.dest("Folder for the table (csv, md, tex), plot and summary [default: <key folder>/../analysis].")
@click.option("--min-vigilance", default=1.0, show_default=True, type=float,
              help="Share of catch trials a rater must answer right to be kept.")
@click.option("--bootstrap", "n_boot", default=2000, show_default=True, type=int, help="Bootstrap replicates.")
@opt.seed("Seed of the bootstrap.")
@opt.as_json("Print the table and summary as JSON on stdout.")
def analyze_cmd(results, key, dest, min_vigilance, n_boot, seed, as_json):
    """Share of votes for our method per baseline and data set, with CIs and tests (Table 1).

    \b
    Example:
      splice study analyze --results Batch_4242_batch_results.csv --key study/private/answer_key.csv
    """
    from eval.study.analyze import AnalysisSettings, analyze, to_markdown
    from splice.core.paths import ensure_writable_dir

    dest = ensure_writable_dir(dest if dest is not None else Path(key).resolve().parent.parent / "analysis", "--dest")
    a = analyze(AnalysisSettings(results=list(results), key=key, dest=dest, min_vigilance=min_vigilance,
                                 n_boot=n_boot, seed=seed))
    s = a.summary
    click.echo(f"raters: {s['raters']}, dropped for failing vigilance: {s['raters_failed_vigilance']} "
               f"({s['judgments_dropped_with_failed_raters']} judgments), without vigilance trials: "
               f"{s['raters_without_vigilance']}; comparison votes used: {s['comparison_votes']}", err=True)
    if as_json:
        click.echo(json.dumps({"summary": s, "table": a.table.to_dict(orient="records"), "files": a.files},
                              default=str))
    else:
        click.echo(to_markdown(a.table), nl=False)
    click.echo(f"written: {', '.join(a.files.values())}", err=True)


@command.command("serve")
@click.option("--study", "study_dir", required=True, type=click.Path(path_type=Path), help="An exported study folder.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port (0 = any free).")
@click.option("--rater", default=None, help="Serve this one rater only (skips the name form).")
def serve_cmd(study_dir, port, rater):
    """Run the study's trials in a browser on this machine (lab sessions, one rater at a time).

    Answers go to <study>/lab/results.csv in Mechanical Turk's format, so `splice study analyze`
    reads them. Bound to 127.0.0.1 only; stop with Ctrl-C, continue later with the same name.

    \b
    Example:
      splice study serve --study study/ --port 8765 --rater P01
    """
    from eval.study.server import make_server

    try:
        server, study = make_server(study_dir, port, rater)
    except OSError as e:
        raise UserError(f"cannot listen on 127.0.0.1:{port} ({e.strerror}); pick another --port") from None
    host, real_port = server.server_address[:2]
    click.echo(f"study page: http://{host}:{real_port}/  ({len(study.sets)} set(s) of "
               f"{len(next(iter(study.sets.values())))} trials; answers -> {study.results_path})", err=True)
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.server_close()
