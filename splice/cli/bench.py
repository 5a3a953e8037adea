"""``splice bench``: every method over every pair of the chosen data sets, into a resumable run store.

Jobs are (method, data set, pair, seed, config hash) of the Splice paper's comparisons
(Tumanyan et al., CVPR 2022); ``splice bench status`` shows their states and ``splice bench
import`` files outputs that already exist (e.g. the authors') into a run store.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

import click

from splice.cli import options as opt
from splice.core.errors import ConfigError, UserError

log = logging.getLogger(__name__)


@click.group(name="bench", invoke_without_command=True, context_settings={"max_content_width": 110})
@opt.methods("Comma-separated method names, 'all' (every benchmark method) or 'smoke' (quick ones).")
@opt.datasets("Comma-separated data-set names (see `splice datasets list`) or manifest CSV paths.")
@opt.root()
@opt.out("Run store folder, e.g. runs/paper.", required=False)
@opt.preset()
@click.option("--seeds", default="0", show_default=True, help="Seeds: 0 or 0,1,2 or 0-4.")
@opt.pairs("Only these pair ids (comma-separated).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N pairs of each data set (smoke tests only).")
@opt.method_args
@opt.weights("Weights for splice (a tag or a local file), or method=SPEC for another method (repeatable).",
             multiple=True)
@opt.allow_random_weights
@click.option("--max-side", type=click.IntRange(min=64),
              help="Cap the structure image's shorter side (part of the config).")
@opt.devices()
@click.option("--workers", type=click.IntRange(min=0),
              help="Worker processes (default: one per device; 0 = in this process).")
@click.option("--jobs-per-device", default=None, metavar="auto|N",
              help="Jobs at once on each device: N, or auto = as many as fit in its memory (each method's peak "
                   "from earlier records of --out, else the suite's reference table, plus 20%), at most 8 "
                   "(auto:CAP). An out-of-memory error lowers that device's count and runs the job again alone.")
@opt.memory_gb("Memory of each device for --jobs-per-device auto and --dry-run [default: measured free memory].")
@click.option("--skip-missing", is_flag=True,
              help="Run the pairs whose images are under --root and leave the others pending (default: stop).")
@click.option("--launcher", type=click.Choice(["local", "slurm"]), default="local", show_default=True)
@click.option("--slurm-partition", help="SLURM partition.")
@click.option("--slurm-time", type=click.IntRange(min=1), default=24 * 60, show_default=True,
              help="Minutes per array task.")
@click.option("--slurm-gpus-per-task", type=click.IntRange(min=0), default=1, show_default=True,
              help="GPUs per array task (0 on a partition without GPUs).")
@click.option("--slurm-cpus-per-task", type=click.IntRange(min=1), default=8, show_default=True,
              help="CPUs per array task (at most a node's; see docs/slurm.md).")
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
@opt.dry_run("List the jobs and what would be run or skipped; write nothing.")
@click.option("--retry-failed", is_flag=True, help="Run jobs with a failed record again.")
@opt.keep_work
@opt.no_progress
@opt.as_json("Print the summary (or the dry-run plan) as JSON on stdout.")
@click.pass_context
def command(ctx: click.Context, methods, datasets, root, out, preset, seeds, pairs, limit, method_args, weights,
            allow_random_weights, max_side, devices, workers, jobs_per_device, memory_gb, skip_missing, launcher,
            slurm_partition, slurm_time,
            slurm_gpus_per_task, slurm_cpus_per_task, slurm_mem_gb, slurm_account, slurm_qos, slurm_constraint,
            slurm_array_parallelism, slurm_jobs_per_task, slurm_cluster, wait, dry_run, retry_failed, keep_work,
            no_progress, as_json) -> None:  # fmt: skip
    """Run methods over data sets into a resumable run store.

    A job is (method, data set, pair, seed, config hash); its output and record.json go to
    OUT/outputs/<dataset>/<pair>/<method>/s<seed>-<hash>/. Jobs with an ok record are skipped,
    failures are recorded and do not stop the others, and two runners on one store never run
    the same job. A job that ends ok keeps its output and record (and an external method's log); its
    checkpoints and scratch files (work/) are removed unless --keep-work. Exit code 0 when every job is done,
    1 when some failed, 2 on bad input.

    \b
    Examples:
      splice bench --methods smoke --datasets demo --root datasets --out runs/smoke --preset smoke \\
          --devices cpu --allow-random-weights
      splice bench --methods splice,strotss --datasets wild-pairs,afhq,mountains --root data --out runs/paper
      splice bench --methods all --datasets afhq --root data --out runs/paper --devices cuda:0,cuda:1
      splice bench --methods all --datasets afhq --root data --out runs/paper --devices cuda --jobs-per-device auto
      splice bench --methods all --datasets wild-pairs,afhq,mountains --root data --out runs/paper \\
          --devices cuda:0,cuda:1 --jobs-per-device auto --memory-gb 80 --dry-run     # the cost before the run
      splice bench --methods splice --datasets afhq --root data --out runs/seeds --seeds 0-2 \\
          --method-args splice.steps=500 --dry-run
      splice bench --methods all --datasets wild-pairs,afhq,mountains --root /shared/data --out /shared/runs/paper \\
          --launcher slurm --slurm-partition gpu --slurm-time 240
      splice bench status --out runs/paper
      splice bench import --from ../shared/data/paper/afhq --dataset afhq --method-dir ours --out runs/paper
    """
    if ctx.invoked_subcommand is not None:
        return
    given = (("--methods", methods), ("--datasets", datasets), ("--root", root), ("--out", out))
    missing = [n for n, v in given if not v]
    if missing:
        raise ConfigError(f"splice bench needs {', '.join(missing)}; see `splice bench --help` for examples")
    from splice.core.paths import ensure_writable_dir
    from splice.data.manifests import parse_dataset_list
    from splice.runner.bench import RUNS, LaunchOptions, bench, estimate_cost, missing_inputs
    from splice.runner.bench import dry_run as plan_only
    from splice.runner.cost import CostModel
    from splice.runner.jobs import PlanRequest, expand_methods, method_overrides, parse_seeds, parse_weights
    from splice.runner.packing import parse_jobs_per_device
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
        options=method_overrides(method_args, names),
        pair_ids=opt.split(pairs),
        limit=limit,
    )

    packing = parse_jobs_per_device(jobs_per_device)
    if packing is not None and workers is not None:
        raise ConfigError(f"--workers {workers} and --jobs-per-device {jobs_per_device}: give one of them")
    if packing is not None and launcher != "local":
        raise ConfigError("--jobs-per-device packs jobs on this machine's devices; with --launcher slurm use "
                          "--slurm-jobs-per-task")  # fmt: skip
    if launcher == "slurm":
        devs = ["cpu"] if devices == "cpu" else ["auto"]
    else:
        devs = _devices(devices, planning=dry_run)
    slurm = SlurmOptions(partition=slurm_partition, time_min=slurm_time, gpus_per_task=slurm_gpus_per_task,
                         cpus_per_task=slurm_cpus_per_task, mem_gb=slurm_mem_gb, account=slurm_account, qos=slurm_qos,
                         constraint=slurm_constraint, array_parallelism=slurm_array_parallelism,
                         jobs_per_task=slurm_jobs_per_task,
                         cluster=None if slurm_cluster == "slurm" else slurm_cluster)  # fmt: skip
    if wait is None:
        wait = launcher == "local" or slurm.cluster is not None
    launch = LaunchOptions(out=Path(out), devices=devs, workers=workers, launcher=launcher, slurm=slurm, wait=wait,
                           retry_failed=retry_failed, progress=not no_progress and not as_json,
                           skip_missing=skip_missing, jobs_per_device=packing, memory_gb=memory_gb,
                           keep_work=keep_work)  # fmt: skip

    if dry_run:
        from splice.runner.jobs import dataset_settings

        planned = plan_only(req, Path(out), retry_failed)
        model = CostModel.from_store(out)
        to_run = [p.job for p in planned if p.state in RUNS]
        cost = estimate_cost(to_run, launch, model)
        if as_json:
            rows = []
            for p in planned:
                row = p.row()
                if p.state in RUNS:
                    est = model.estimate(p.job, devs[0] if launcher == "local" else cost.devices[0])
                    row.update(expected_seconds=est.seconds, expected_memory_mb=est.memory_mb, cost_source=est.source)
                rows.append(row)
            click.echo(json.dumps(rows, indent=1))
        else:
            for d in dataset_settings(req):  # what a method declares per data set (model, options, or n/a)
                what = (f"not applicable: {d['not_applicable']}" if "not_applicable" in d
                        else " ".join(f"{k}={shlex.quote(str(v))}" for k, v in d["options"].items()))
                click.echo(f"# {d['method']} on {d['dataset']}: {what}")
            for p in planned:
                k = p.job.key
                click.echo(f"{p.state:<8} {k.method:<12} {k.dataset:<10} {k.pair_id:<28} "
                           f"s{k.seed}-{k.config_hash}  {p.action}")  # fmt: skip
        # the cost goes to stderr beside the count, so that stdout stays one line (or one JSON row) per job
        click.echo("expected cost of the jobs to run (seconds and peak memory per job):", err=True)
        click.echo(cost.table(), err=True)
        from collections import Counter

        c = Counter(p.state for p in planned)
        would = sum(c[state] for state in RUNS)
        click.echo(f"dry run: {len(planned)} job(s); would run {would}, skip {c['done']} done, "
                   f"{c['failed']} failed, {c['running']} claimed elsewhere, "
                   f"{c['not-applicable']} not applicable", err=True)  # fmt: skip
        return

    ensure_writable_dir(out, "--out")
    absent = missing_inputs(req)
    if absent and not skip_missing:
        example = absent[0]
        raise UserError(f"{len(absent)} image(s) of the selected pairs are missing under --root {root} "
                        f"(e.g. {example}); "
                        f"check with `splice datasets check --root {root}`, or add --skip-missing to run the others")
    if launcher == "slurm":  # what was submitted, and where waiting takes job states from, is said once
        slurm_log = logging.getLogger("splice.runner.slurm")
        if slurm_log.getEffectiveLevel() > logging.INFO:
            slurm_log.setLevel(logging.INFO)

    def announce(cost) -> None:  # beside the progress bar; quiet runs find the estimate in run.json and the summary
        click.echo(cost.table().splitlines()[-1], err=True)

    try:
        summary = bench(req, launch, argv=["splice", *sys.argv[1:]] if sys.argv else None,
                        on_estimate=announce if launch.progress and launcher == "local" else None)  # fmt: skip
    except KeyboardInterrupt:
        again = shlex.join(["splice", *sys.argv[1:]])
        click.echo(f"interrupted; finished jobs are kept, running ones resume from their checkpoints: {again}",
                   err=True)  # fmt: skip
        sys.exit(130)

    click.echo(summary.table(), err=True)
    d = summary.to_dict()
    if summary.estimate and summary.outcomes:
        from splice.runner.cost import format_duration

        unknown = summary.estimate["unknown_jobs"]
        click.echo(f"expected wall time {format_duration(summary.estimate['wall_seconds'])}"
                   + (f" ({unknown} job(s) of unknown cost not counted)" if unknown else "")
                   + f", took {format_duration(summary.seconds)}", err=True)  # fmt: skip
    for err, n in list(d["errors"].items())[:5]:
        click.echo(f"  {n} x {err}", err=True)
    if summary.submitted and not wait:
        click.echo(f"submitted {len(summary.submitted)} SLURM array task(s) ({summary.submitted[0].split('_')[0]}); "
                   f"follow with: splice bench status --out {out}", err=True)  # fmt: skip
    if d["failed_not_retried"]:
        click.echo(f"{d['failed_not_retried']} job(s) failed in an earlier invocation; rerun them with --retry-failed",
                   err=True)  # fmt: skip
    if d["missing_inputs"]:
        click.echo(f"{d['missing_inputs']} job(s) left pending: their images are missing under --root {root}",
                   err=True)  # fmt: skip
    if d["not_applicable"]:
        click.echo(f"{d['not_applicable']} job(s) recorded as not applicable (a method that does not apply to "
                   "that data set; see `splice bench --dry-run`)", err=True)  # fmt: skip
    click.echo(f"jobs: {Path(out) / 'jobs.csv'}", err=True)
    if as_json:
        click.echo(json.dumps(d, indent=1))
    if summary.failed_total:
        sys.exit(1)


def _devices(value: str, planning: bool) -> list[str]:
    """``--devices``; when only planning (``--dry-run``), devices this machine lacks are taken as given."""
    from splice.core.devices import parse_devices

    try:
        return parse_devices(value)
    except ConfigError:
        if not planning:
            raise
    devices = parse_devices(value, present=False)  # a malformed or empty list is still the same one-line error
    click.echo(f"note: --devices {value}: not all on this machine; planned as given (the costs assume them)",
               err=True)  # fmt: skip
    return devices


@command.command(name="status")
@opt.out("The run store folder.")
@click.option("--failed", "show_failed", is_flag=True, help="Also list every failed job with its error.")
@opt.as_json("Print every job's state as JSON on stdout.")
def status_cmd(out: str, show_failed: bool, as_json: bool) -> None:
    """Every job's state and the store's size; regenerates OUT/jobs.csv.

    States: done, failed, running (claimed), stale (its runner is gone), pending (planned, not
    finished), corrupt (record.json unreadable), output-missing (an ok record without its output),
    not-applicable. Every job that is not done is named with its path and the command that fixes
    it (also in jobs.csv, column fix). For SLURM arrays of this store that the scheduler still
    lists, also each array task's state (from squeue) and the states of its jobs (from the store).

    \b
    Examples:
      splice bench status --out runs/paper
      splice bench status --out runs/paper --failed
      splice bench status --out runs/paper --json | jq '.counts'
    """
    from splice.core.health import Fixer, attention, attention_lines
    from splice.core.store import RunStore, human_size
    from splice.runner.runlog import read_invocations
    from splice.runner.status import counts, scan, scheduler_table, scheduler_view, table, write_jobs_csv

    store = RunStore.open(out, option="--out")
    states = scan(store)
    try:
        path = write_jobs_csv(store, states)
    except OSError as e:  # a read-only store (a finished run on a shared mount) still has a status
        path = None
        click.echo(f"warning: jobs.csv not updated ({e.strerror or e}: {Path(out) / 'jobs.csv'}); "
                   "the status below is read from the store", err=True)  # fmt: skip
    tasks, note = scheduler_view(store, states)
    size, work = store.disk_usage(), store.work_usage()
    fixer = Fixer(store)
    if note:
        click.echo(note, err=True)
    if as_json:
        click.echo(json.dumps({"out": str(out), "counts": counts(states), "invocations": len(read_invocations(out)),
                               "size_bytes": size, "work_bytes": work,
                               "jobs": [s.row(fixer) for s in states], "slurm": [t.to_dict() for t in tasks]},
                              indent=1, default=str))  # fmt: skip
        return
    click.echo(table(states))
    if tasks:
        click.echo("\nSLURM array tasks (state from squeue; their jobs' states from the run store):")
        click.echo(scheduler_table(tasks))
    click.echo(f"\nstore {out}: {human_size(size)}"
               + (f", of which {human_size(work)} in work/ folders (checkpoints of unfinished or --keep-work jobs)"
                  if work else ""))  # fmt: skip
    lines = attention_lines(attention(states, fixer), out)
    if lines:
        click.echo("\n" + "\n".join(lines))
    if show_failed:
        for s in states:
            if s.state == "failed":
                task_log = s.row()["log"]  # the SLURM task's log, when an array task ran it
                click.echo(f"failed {s.key}: {s.record.error if s.record else None}"
                           + (f" (log {task_log})" if task_log else ""))  # fmt: skip
    if path is not None:
        click.echo(f"jobs: {path}", err=True)


@command.command(name="import")
@click.option("--from", "source", required=True, type=click.Path(), metavar="DIR",
              help="Folder of pair folders: <key>/A (structure), <key>/B (appearance), <key>/<method-dir> (output).")
@opt.datasets("The data set (a manifest name such as afhq, or a manifest CSV): pairs are matched to it by SHA-256.",
              required=True)
@click.option("--method-dir", required=True, help="Subfolder holding the outputs (ours, sa, strotss, ...).")
@click.option("--label", default=None, help="Method name in the run store [paper-<method-dir>].")
@opt.out("Run store folder.")
@opt.root("Record the pairs' images under this data root (as `splice bench --root`) instead of <key>/A, <key>/B.")
@click.option("--geometry", default=None, help="Output geometry (e.g. 'stretch 256x256'); default: inferred.")
@click.option("--file", "file_glob", default=None, help="Glob picking the output when a folder holds several.")
@opt.as_json("Print one JSON row per pair on stdout.")
def import_cmd(source, datasets, method_dir, label, out, root, geometry, file_glob, as_json) -> None:
    """Import stored outputs (e.g. the Splice authors') into a run store as method LABEL.

    Every output becomes a job of the `precomputed` method with a record as from a fresh run; pairs
    already imported are skipped.

    \b
    Examples (the Splice authors' AFHQ sample, three methods into one run):
      splice bench import --from ../shared/data/paper/afhq --dataset afhq --method-dir ours --out runs/paper
      splice bench import --from ../shared/data/paper/afhq --dataset afhq --method-dir sa \\
          --geometry "stretch 256x256" --out runs/paper
      splice bench import --from ../shared/data/paper/afhq --dataset afhq --method-dir strotss --out runs/paper
    Then: splice score --out runs/paper; splice report --out runs/paper
    """
    from splice.core.paths import ensure_writable_dir
    from splice.data.manifests import get_manifest
    from splice.runner.importing import import_outputs

    names = opt.split(datasets) or []
    if len(names) != 1:
        raise ConfigError(f"--dataset {datasets!r}: import into one data set at a time")
    manifest = get_manifest(names[0])
    ensure_writable_dir(out, "--out")
    rows = import_outputs(Path(source), manifest, Path(out), method_dir, label=label,
                          data_root=Path(root) if root else None, geometry=geometry, file_glob=file_glob)  # fmt: skip
    for r in rows:
        if r.state in ("failed", "skipped-failed"):
            click.echo(f"failed {r.pair_id}: {r.error}", err=True)
    done = sum(r.state in ("done", "skipped") for r in rows)
    click.echo(f"imported {done}/{len(rows)} outputs of {source} as {rows[0].method} into {out}", err=True)
    if as_json:
        for r in rows:
            click.echo(json.dumps(r.__dict__))
    if done != len(rows):
        sys.exit(1)
