"""``splice bench``: every method over every pair of the chosen data sets, into a resumable run store.

Jobs are (method, data set, pair, seed, config hash) of the Splice paper's comparisons
(Tumanyan et al., CVPR 2022); ``splice bench status`` shows their states.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from splice.core.errors import ConfigError, UserError
from splice.data.manifests import parse_dataset_list

log = logging.getLogger(__name__)


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@click.group(name="bench", invoke_without_command=True, context_settings={"max_content_width": 110})
@click.option("--methods", help="Comma-separated method names, 'all' (every benchmark method) or 'smoke' (quick ones).")
@click.option("--datasets", help="Comma-separated data-set names (see `splice datasets list`) or manifest CSV paths.")
@click.option("--root", type=click.Path(path_type=Path), help="Data root the manifest image paths are relative to.")
@click.option("--out", type=click.Path(path_type=Path), help="Run store folder, e.g. runs/paper.")
@click.option("--preset", default="paper", show_default=True,
              help="Method preset: paper, smoke (splice also: paper-10k, fast).")
@click.option("--seeds", default="0", show_default=True, help="Seeds: 0 or 0,1,2 or 0-4.")
@click.option("--pairs", help="Only these pair ids (comma-separated).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N pairs of each data set (smoke tests only).")
@click.option("--method-args", "method_args", multiple=True, metavar="K=V",
              help="Method option, typed as YAML: k=v for every method or method.k=v for one (repeatable).")
@click.option("--weights", multiple=True, metavar="SPEC",
              help="Weights for splice (a tag or a local file), or method=SPEC for another method (repeatable).")
@click.option("--allow-random-weights", is_flag=True, help="Fall back to random weights when real ones are missing "
              "(smoke runs; every record says so).")
@click.option("--max-side", type=click.IntRange(min=64),
              help="Cap the structure image's shorter side (part of the config).")
@click.option("--devices", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:0,cuda:1 or mps; one worker per device.")
@click.option("--workers", type=click.IntRange(min=0),
              help="Worker processes (default: one per device; 0 = in this process).")
@click.option("--launcher", type=click.Choice(["local", "slurm"]), default="local", show_default=True)
@click.option("--slurm-partition", help="SLURM partition.")
@click.option("--slurm-time", type=click.IntRange(min=1), default=24 * 60, show_default=True,
              help="Minutes per array task.")
@click.option("--slurm-gpus-per-task", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--slurm-cpus-per-task", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--slurm-mem-gb", type=float, help="Memory per array task in GB.")
@click.option("--slurm-account", help="SLURM account.")
@click.option("--slurm-qos", help="SLURM QOS.")
@click.option("--slurm-constraint", help="SLURM constraint (e.g. a GPU type).")
@click.option("--slurm-array-parallelism", type=click.IntRange(min=1), default=64, show_default=True,
              help="At most this many array tasks at once.")
@click.option("--slurm-jobs-per-task", type=click.IntRange(min=1), default=1, show_default=True,
              help="Jobs run one after the other by each array task.")
@click.option("--slurm-cluster", type=click.Choice(["slurm", "local", "debug"]), default="slurm", hidden=True,
              help="submitit executor (local/debug run the array on this machine; for tests).")
@click.option("--wait/--no-wait", default=None,
              help="Wait for the SLURM array to finish (default: wait for local/debug only).")
@click.option("--dry-run", is_flag=True, help="List the jobs and what would be run or skipped; write nothing.")
@click.option("--retry-failed", is_flag=True, help="Run jobs with a failed record again.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (or the dry-run plan) as JSON on stdout.")
@click.pass_context
def command(ctx: click.Context, methods, datasets, root, out, preset, seeds, pairs, limit, method_args, weights,
            allow_random_weights, max_side, devices, workers, launcher, slurm_partition, slurm_time,
            slurm_gpus_per_task, slurm_cpus_per_task, slurm_mem_gb, slurm_account, slurm_qos, slurm_constraint,
            slurm_array_parallelism, slurm_jobs_per_task, slurm_cluster, wait, dry_run, retry_failed, no_progress,
            as_json) -> None:  # fmt: skip
    """Run methods over data sets into a resumable run store.

    A job is (method, data set, pair, seed, config hash); its output and record.json go to
    OUT/outputs/<dataset>/<pair>/<method>/s<seed>-<hash>/. Jobs with an ok record are skipped,
    failures are recorded and do not stop the others, and two runners on one store never run
    the same job. Exit code 0 when every job is done, 1 when some failed, 2 on bad input.

    \b
    Examples:
      splice bench --methods smoke --datasets demo --root datasets --out runs/smoke --preset smoke \\
          --devices cpu --allow-random-weights
      splice bench --methods splice,strotss --datasets wild-pairs,afhq,mountains --root data --out runs/paper
      splice bench --methods all --datasets afhq --root data --out runs/paper --devices cuda:0,cuda:1
      splice bench --methods splice --datasets afhq --root data --out runs/seeds --seeds 0-2 \\
          --method-args splice.steps=500 --dry-run
      splice bench --methods all --datasets wild-pairs,afhq,mountains --root /shared/data --out /shared/runs/paper \\
          --launcher slurm --slurm-partition gpu --slurm-time 240
      splice bench status --out runs/paper
    """
    if ctx.invoked_subcommand is not None:
        return
    given = (("--methods", methods), ("--datasets", datasets), ("--root", root), ("--out", out))
    missing = [n for n, v in given if not v]
    if missing:
        raise ConfigError(f"splice bench needs {', '.join(missing)}; see `splice bench --help` for examples")
    from splice.runner.jobs import PlanRequest, expand_methods, parse_method_args, parse_seeds, parse_weights
    from splice.runner.bench import LaunchOptions, bench, dry_run as plan_only, parse_devices
    from splice.runner.slurm import SlurmOptions

    if not Path(root).is_dir():
        raise UserError(f"--root {root} is not a folder; it must hold the images (see datasets/README.md)")
    if limit is not None:
        click.echo(f"warning: --limit {limit} is for smoke tests only; never report numbers from a partial run",
                   err=True)  # fmt: skip
    names = expand_methods(methods)
    req = PlanRequest(
        methods=names,
        manifests=parse_dataset_list(datasets),
        root=Path(root),
        seeds=parse_seeds(seeds),
        preset=preset,
        weights=parse_weights(weights, names),
        allow_random_weights=allow_random_weights,
        max_side=max_side,
        options=parse_method_args(method_args, names),
        pair_ids=_csv(pairs),
        limit=limit,
    )

    if dry_run:
        planned = plan_only(req, Path(out), retry_failed)
        if as_json:
            click.echo(json.dumps([p.row() for p in planned], indent=1))
        else:
            for p in planned:
                k = p.job.key
                click.echo(f"{p.state:<8} {k.method:<12} {k.dataset:<10} {k.pair_id:<28} "
                           f"s{k.seed}-{k.config_hash}  {p.action}")  # fmt: skip
        from collections import Counter

        c = Counter(p.state for p in planned)
        would = c["pending"] + c["stale"] + c["retry"]
        click.echo(f"dry run: {len(planned)} job(s); would run {would}, skip {c['done']} done, "
                   f"{c['failed']} failed, {c['running']} claimed elsewhere", err=True)  # fmt: skip
        return

    if launcher == "slurm":
        devs = ["cpu"] if devices == "cpu" else ["auto"]
    else:
        devs = parse_devices(devices)
    slurm = SlurmOptions(partition=slurm_partition, time_min=slurm_time, gpus_per_task=slurm_gpus_per_task,
                         cpus_per_task=slurm_cpus_per_task, mem_gb=slurm_mem_gb, account=slurm_account, qos=slurm_qos,
                         constraint=slurm_constraint, array_parallelism=slurm_array_parallelism,
                         jobs_per_task=slurm_jobs_per_task,
                         cluster=None if slurm_cluster == "slurm" else slurm_cluster)  # fmt: skip
    if wait is None:
        wait = launcher == "local" or slurm.cluster is not None
    launch = LaunchOptions(out=Path(out), devices=devs, workers=workers, launcher=launcher, slurm=slurm, wait=wait,
                           retry_failed=retry_failed, progress=not no_progress and not as_json)  # fmt: skip
    summary = bench(req, launch, argv=["splice", *sys.argv[1:]] if sys.argv else None)

    click.echo(summary.table(), err=True)
    d = summary.to_dict()
    for err, n in list(d["errors"].items())[:5]:
        click.echo(f"  {n} x {err}", err=True)
    if summary.submitted and not wait:
        click.echo(f"submitted {len(summary.submitted)} SLURM array task(s) ({summary.submitted[0].split('_')[0]}); "
                   f"follow with: splice bench status --out {out}", err=True)  # fmt: skip
    if d["failed_not_retried"]:
        click.echo(f"{d['failed_not_retried']} job(s) failed in an earlier invocation; rerun them with --retry-failed",
                   err=True)  # fmt: skip
    click.echo(f"jobs: {Path(out) / 'jobs.csv'}", err=True)
    if as_json:
        click.echo(json.dumps(d, indent=1))
    if summary.failed_total:
        sys.exit(1)


@command.command(name="status")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The run store folder.")
@click.option("--failed", "show_failed", is_flag=True, help="Also list every failed job with its error.")
@click.option("--json", "as_json", is_flag=True, help="Print every job's state as JSON on stdout.")
def status_cmd(out: Path, show_failed: bool, as_json: bool) -> None:
    """Every job's state (done, failed, running, stale, pending); regenerates OUT/jobs.csv.

    \b
    Examples:
      splice bench status --out runs/paper
      splice bench status --out runs/paper --failed
      splice bench status --out runs/paper --json | jq '.counts'
    """
    from splice.runner.runlog import read_invocations
    from splice.runner.status import counts, scan, table, write_jobs_csv
    from splice.core.store import RunStore

    if not out.is_dir():
        raise UserError(f"run store not found: {out}; create it with `splice bench --out {out} ...`")
    store = RunStore(out)
    states = scan(store)
    path = write_jobs_csv(store, states)
    if as_json:
        click.echo(json.dumps({"out": str(out), "counts": counts(states), "invocations": len(read_invocations(out)),
                               "jobs": [s.row() for s in states]}, indent=1, default=str))  # fmt: skip
        return
    click.echo(table(states))
    if show_failed:
        for s in states:
            if s.state == "failed":
                click.echo(f"failed {s.key}: {(s.record or {}).get('error')}")
    click.echo(f"jobs: {path}", err=True)
