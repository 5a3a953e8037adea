"""``splice study``: plan, export, serve and analyse the 2AFC user study (Splice paper, Table 1).

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


# Options that more than one study command takes, defined once here.
def _judgments(help: str, default: int = 5):
    return click.option("--judgments", default=default, show_default=True, type=click.IntRange(1, 50), help=help)


def _max_hits(help: str):
    return click.option("--max-hits-per-worker", "max_hits", default=None, type=click.IntRange(1, None),
                        metavar="N", help=help)


@click.group("study", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """The 2AFC user study: plan it, export Mechanical Turk sheets, run a lab page, analyse the votes.

    \b
    Examples:
      splice study power --items 25 --raters 40 --judgments 5 --share 0.6
      splice study export --out runs/paper --ours splice --baselines strotss,wct2,swapping-autoencoder \\
          --judgments 5 --vigilance 0.1 --seed 1 --base-url https://example.org/s1/images --dest study/
      splice study serve --study study/ --port 8765
      splice study analyze --results Batch_123_results.csv --results study/lab/results.csv \\
          --key study/private/answer_key.csv --dest study/analysis
      splice study analyze --votes docs/study/example_votes_synthetic.csv --dest /tmp/study-example --json
      splice study agreement --out runs/paper --votes votes.csv --dest study/analysis
    """


@command.command("export")
@opt.out("The run store (runs/NAME).", dest="run_dir")
@click.option("--ours", default="splice", show_default=True, help="Our method (the one every trial includes).")
@click.option("--baselines", required=True, help="Comma-separated baseline methods to compare against.")
@opt.datasets("Comma-separated data sets (default: all in the run).")
@_judgments("k: judgments per comparison, each by a different rater (every HIT is published with k assignments).")
@click.option("--vigilance", default=0.1, show_default=True, type=float,
              help="Share of catch trials per HIT (0 = none; at least 1 per HIT otherwise).")
@opt.seed("Seed of every random choice (ids, sides, order).")
@click.option("--base-url", required=True, help="URL under which the exported images/ folder will be published.")
@opt.dest("Folder to write the study into (outside the run store: its private answer key must not be shared).",
          required=True)
@click.option("--trials-per-hit", default=10, show_default=True, type=click.IntRange(2, 100), help="Trials per HIT.")
@_max_hits("Cap of HITs one worker may take (told to workers; enforced by the lab page and by analyze).")
@click.option("--size", "long_side", default=512, show_default=True, type=click.IntRange(64, 2048),
              help="Longer side of every shown image, in pixels.")
@click.option("--variant", "variants", multiple=True, metavar="METHOD=s<seed>-<hash>",
              help="Which job variant of METHOD to use when the run holds several.")
@opt.root("Folder that relative input paths of the records are resolved against.")
@opt.force("Overwrite an existing export in --dest (new ids!).")
@opt.as_json("Print the export summary as JSON on stdout.")
def export_cmd(run_dir, ours, baselines, datasets, judgments, vigilance, seed, base_url, dest, trials_per_hit,
               max_hits, long_side, variants, root, force, as_json):
    """Write Mechanical Turk sheets (batch CSV, HIT template, images, answer key) from a run.

    Every comparison sits in exactly one HIT; publish every HIT with --judgments (k) assignments,
    so k different workers judge each comparison (README.md in --dest says where to set it).

    \b
    Example:
      splice study export --out runs/paper --ours splice --baselines strotss,wct2 --datasets afhq,wild-pairs \\
          --judgments 5 --vigilance 0.1 --seed 1 --base-url https://example.org/s1/images --dest study/ \\
          --max-hits-per-worker 4
    Upload images/ to --base-url, batch.csv and template.html to Mechanical Turk; keep private/.
    """
    from eval.study.export import ExportSettings, check_dest, export_study, parse_variants
    from splice.core.paths import ensure_writable_dir
    from splice.core.store import RunStore

    run_dir = RunStore.open(run_dir).root
    check_dest(dest, run_dir)
    dest = ensure_writable_dir(dest, "--dest")
    res = export_study(ExportSettings(
        run_dir=run_dir, dest=dest, base_url=base_url, baselines=_split(baselines) or [], ours=ours,
        datasets=_split(datasets), judgments=judgments, vigilance=vigilance, seed=seed,
        trials_per_hit=trials_per_hit, long_side=long_side, max_hits_per_worker=max_hits,
        variants=parse_variants(variants), data_root=Path(root) if root else None, force=force,
    ))  # fmt: skip
    c = res.counts
    if res.random_weights:
        click.echo(f"WARNING: {len(res.random_weights)} output(s) came from randomly initialised weights", err=True)
    click.echo(f"study written to {res.dest}: {c['hits']} HITs, {c['comparison_trials']} comparisons, "
               f"{c['vigilance_trials']} vigilance trials, {res.n_images} images; ours left/right "
               f"{c['ours_left']}/{c['ours_right']}", err=True)
    click.echo(f"PUBLISH EVERY HIT WITH {judgments} ASSIGNMENTS (Number of assignments per task = {judgments}): "
               f"{c['judgments']} judgments by {judgments} different workers per comparison, {c['assignments']} "
               "assignments" + (f"; at most {max_hits} HITs per worker" if max_hits else ""), err=True)
    if as_json:
        click.echo(json.dumps({"dest": str(res.dest), "counts": c, "items": res.items, "images": res.n_images,
                               "assignments_per_hit": judgments, "max_hits_per_worker": max_hits,
                               "skipped_pairs": res.skipped_pairs, "random_weights": bool(res.random_weights)}))


@command.command("analyze")
@click.option("--results", "results", multiple=True, type=click.Path(path_type=Path),
              help="Results CSV from Mechanical Turk or <study>/lab/results.csv (repeatable; needs --key).")
@click.option("--key", default=None, type=click.Path(path_type=Path), help="<study>/private/answer_key.csv")
@click.option("--votes", default=None, type=click.Path(path_type=Path), metavar="FILE.csv",
              help="Votes from any platform instead: one row per judgment, with the header "
                   "rater,dataset,pair,a,b,chosen,correct.")
@opt.methods("The method whose share of votes is reported (one name) [default: splice].")
@opt.dest("Folder for the table (csv, md, tex), plot, raters and summary "
          "[default: <study>/analysis, or analysis/ next to --votes].")
@click.option("--export-votes", default=None, type=click.Path(path_type=Path), metavar="FILE.csv",
              help="Also write the votes read, as that long table (what --votes reads).")
@click.option("--min-vigilance", default=1.0, show_default=True, type=float,
              help="Share of answered catch trials a rater must get right (0 = keep every rater).")
@_max_hits("Keep only each worker's first N HITs [default: the export's cap].")
@opt.seed("Seed of the rank-interval draws.")
@opt.as_json("Print one JSON object (comparisons, naive, dropped, agreement, ranking, ...) on stdout.")
def analyze_cmd(results, key, votes, methods, dest, export_votes, min_vigilance, max_hits, seed, as_json):
    """Share of votes for a method per baseline and data set, with intervals that respect raters and
    comparisons (Table 1), the paper's numbers beside ours, agreement and a Bradley-Terry ranking.

    \b
    Examples:
      splice study analyze --results Batch_4242_batch_results.csv --key study/private/answer_key.csv
      splice study analyze --votes docs/study/example_votes_synthetic.csv --dest /tmp/study-example
      splice study analyze --votes votes.csv --method splice --json
      splice study analyze --results study/lab/results.csv --key study/private/answer_key.csv \\
          --export-votes votes.csv
    """
    from splice.core.errors import ConfigError

    names = opt.split(methods) or ["splice"]
    if len(names) != 1:
        raise ConfigError(f"--method takes one method name, got {', '.join(names)}")
    if votes is None and key is None:
        raise ConfigError("give --votes FILE.csv, or --results (Mechanical Turk or lab results) with --key "
                          "<study>/private/answer_key.csv")
    from eval.study.analyze import AnalysisSettings, analyze, to_markdown
    from splice.core.paths import ensure_writable_dir

    if dest is None:
        dest = (Path(key).resolve().parent.parent if votes is None else Path(votes).resolve().parent) / "analysis"
    dest = ensure_writable_dir(dest, "--dest")
    if export_votes is not None:
        ensure_writable_dir(Path(export_votes).resolve().parent, "--export-votes")
    a = analyze(AnalysisSettings(results=list(results), key=key, votes=votes, method=names[0], dest=dest,
                                 export_votes=export_votes, min_vigilance=min_vigilance, max_hits_per_worker=max_hits,
                                 seed=seed))  # fmt: skip
    d = a.dropped
    if a.notice:
        click.echo(f"WARNING: {a.notice}", err=True)
    click.echo(f"raters: {d['raters']}, dropped: {d['raters_failed_vigilance']} failed, "
               f"{d['raters_skipped_vigilance']} skipped and {d['raters_without_vigilance']} never saw a catch trial "
               f"({d['judgments_of_dropped_raters']} judgments); repeats dropped: {d['repeat_judgments']}; "
               f"votes used: {d['votes_used']}", err=True)
    if as_json:
        click.echo(json.dumps(a.to_json(), default=str))
    else:
        click.echo(to_markdown(a), nl=False)
    click.echo(f"written: {', '.join(a.files.values())}", err=True)


@command.command("agreement")
@opt.out("The scored run store the study was exported from (runs/NAME).", dest="run_dir")
@click.option("--results", "results", multiple=True, type=click.Path(path_type=Path),
              help="Results CSV from Mechanical Turk or <study>/lab/results.csv (repeatable; needs "
                   "--key).")  # fmt: skip
@click.option("--key", default=None, type=click.Path(path_type=Path), help="<study>/private/answer_key.csv")
@click.option("--votes", default=None, type=click.Path(path_type=Path), metavar="FILE.csv",
              help="Votes from any platform instead: rater,dataset,pair,a,b,chosen,correct (analyze "
                   "--export-votes).")  # fmt: skip
@opt.metrics("Comma list of the table names of `splice metrics` (structure, cosine, ...) or record names for all "
             "their numbers (vit = structure,appearance,cosine), or all [default: all: every one the run has values "
             "for].")  # fmt: skip
@opt.dest("Folder for agreement.md, .csv and .json [default: <study>/analysis, or analysis/ next to --votes].")
@click.option("--min-vigilance", default=1.0, show_default=True, type=float,
              help="Share of answered catch trials a rater must get right (0 = keep every rater).")  # fmt: skip
@_max_hits("Keep only each worker's first N HITs [default: the export's cap].")
@click.option("--n-boot", default=10_000, show_default=True, type=click.IntRange(100, None),
              help="Bootstrap resamples of the comparisons.")  # fmt: skip
@opt.seed("Seed of the bootstrap resamples.")
@opt.as_json("Print one JSON object (per data set: comparisons, split share; per metric: agreement, CI) on stdout.")
def agreement_cmd(run_dir, results, key, votes, metrics, dest, min_vigilance, max_hits, n_boot, seed, as_json):
    """Which automatic metric agrees with the raters: for every registered metric and data set, how often the
    output it prefers is the one the raters preferred, with a bootstrap 95% interval over comparisons, and
    the share of comparisons where the raters themselves were split.

    Votes are filtered as `splice study analyze` filters them (vigilance, unanswered, repeats). A comparison
    is a pair shown with two methods' outputs; the raters prefer the output with more than half of its votes,
    a metric the one with the better value in its direction (a method's value on a pair: the mean over its
    jobs). Agreement counts the comparisons where both prefer one output (50% = chance).

    \b
    Examples:
      splice study agreement --out runs/paper --votes votes.csv
      splice study agreement --out runs/paper --results Batch_4242_batch_results.csv \\
          --key study/private/answer_key.csv --dest study/analysis
      splice study agreement --out runs/smoke --votes votes.csv --metrics iou,lpips_vgg,clip --json
      splice study agreement --out runs/smoke --votes votes.csv --metrics vit,lab_emd

    Votes on pairs the run does not hold are left out of every count (a warning says how many); a vote
    naming a method without a finished job in the run is an error (the study was exported from another run).
    """
    from splice.core.errors import ConfigError

    if votes is None and key is None:
        raise ConfigError("give --votes FILE.csv, or --results (Mechanical Turk or lab results) with --key "
                          "<study>/private/answer_key.csv")  # fmt: skip
    from eval.agreement import agreement_from_sources, to_markdown
    from eval.study.analyze import AnalysisSettings
    from splice.core.paths import ensure_writable_dir
    from splice.core.store import RunStore

    run_dir = RunStore.open(run_dir).root
    if dest is None:
        dest = (Path(key).resolve().parent.parent if votes is None else Path(votes).resolve().parent) / "analysis"
    dest = ensure_writable_dir(dest, "--dest")
    s = AnalysisSettings(results=list(results), key=key, votes=votes, dest=dest, min_vigilance=min_vigilance,
                         max_hits_per_worker=max_hits)  # fmt: skip
    a = agreement_from_sources(run_dir, s, opt.split(metrics), n_boot=n_boot, seed=seed)
    if a.notice:
        click.echo(f"WARNING: {a.notice}", err=True)
    for _, d in a.datasets.iterrows():
        click.echo(f"{d['dataset']}: {d['comparisons']} comparisons, {d['votes']} votes, raters split on "
                   f"{100 * d['split_share']:.0f}%", err=True)  # fmt: skip
    if as_json:
        click.echo(json.dumps(a.to_json(), default=str))
    else:
        click.echo(to_markdown(a), nl=False)
    click.echo(f"written: {', '.join(a.files.values())}", err=True)


@command.command("power")
@click.option("--items", required=True, type=click.IntRange(2, None),
              help="Comparisons (image pairs) per data set and baseline.")
@click.option("--raters", required=True, type=click.IntRange(1, None),
              help="Raters in the pool (= --judgments: every rater judges every comparison, as in a lab).")
@_judgments("k: judgments per comparison, each by a different rater.")
@click.option("--share", required=True, type=float, help="The true population share of votes for our method.")
@click.option("--rater-sd", default=0.5, show_default=True, type=float,
              help="Spread of the raters' own preferences (sd on the logit scale).")
@click.option("--item-sd", default=0.5, show_default=True, type=float,
              help="Spread of the comparisons' own difficulty (sd on the logit scale).")
@click.option("--comparisons", default=1, show_default=True, type=click.IntRange(1, None),
              help="Baselines per data set (Holm family): the test runs at alpha / this.")
@click.option("--alpha", default=0.05, show_default=True, type=float, help="Level of the test.")
@click.option("--sims", default=1000, show_default=True, type=click.IntRange(100, None),
              help="Simulated studies per setting.")
@opt.seed("Seed of the simulations.")
@opt.as_json("Print the plan as JSON on stdout.")
def power_cmd(items, raters, judgments, share, rater_sd, item_sd, comparisons, alpha, sims, seed, as_json):
    """Plan a study before paying for it: power, false-positive rate and expected CI width, by simulation.

    Simulates studies of --items comparisons x --judgments different raters (from a pool of --raters)
    with rater and comparison effects and analyses each the way `splice study analyze` does.

    \b
    Examples:
      splice study power --items 25 --raters 40 --judgments 5 --share 0.6
      splice study power --items 22 --raters 60 --judgments 5 --share 0.58 --rater-sd 1 --item-sd 0.5 \\
          --comparisons 3 --json
      splice study power --items 25 --raters 5 --judgments 5 --share 0.65   # a lab: 5 raters judge everything
    """
    from eval.study.simulate import Scenario, format_plan, plan

    p = plan(Scenario(items=items, judgments=judgments, raters=raters, share=share, rater_sd=rater_sd,
                      item_sd=item_sd), sims=sims, seed=seed, alpha=alpha, comparisons=comparisons)
    if as_json:
        click.echo(json.dumps(p))
    else:
        click.echo(format_plan(p), nl=False)


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
    k = study.raters_per_hit or "any number of"
    click.echo(f"study page: http://{host}:{real_port}/  ({len(study.hits)} HITs of {study.slots} trials, {k} "
               f"raters each; answers -> {study.results_path})", err=True)
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.server_close()
