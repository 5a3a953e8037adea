"""``splice bench`` as a library call: plan, skip what is done, launch, summarise.

:func:`bench` plans the jobs of a :class:`~splice.runner.jobs.PlanRequest`, classifies each
against the run store (:mod:`splice.core.health`: done / failed / running elsewhere / stale / pending /
corrupt / output missing / not applicable), appends an entry to ``run.json``, writes each job's
``job.json``, records the jobs of data sets a method does not apply to as ``not-applicable`` (without
running anything), runs the rest with the local or the SLURM launcher, regenerates ``jobs.csv`` and
returns a :class:`BenchSummary`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from splice.core.claims import describe_holder
from splice.core.errors import ConfigError
from splice.core.record import NOT_APPLICABLE
from splice.core.store import RunStore
from splice.runner.cost import CostModel, CostPlan, estimate_plan
from splice.runner.execute import Outcome, record_not_applicable
from splice.runner.jobs import Job, PlanRequest, plan_jobs
from splice.runner.local import run_local
from splice.runner.packing import Packing, PackingPolicy, device_memory_mb
from splice.runner.runlog import append_invocation, finish_invocation, new_invocation
from splice.runner.slurm import SlurmOptions, submit_slurm, wait_slurm
from splice.runner.status import _format_table, job_state, scan, write_job_specs, write_jobs_csv

log = logging.getLogger(__name__)

ACTIONS = {
    "pending": "run",
    "retry": "run again (failed before; --retry-failed)",
    "stale": "take over",
    "running": "skip (claimed by {holder})",
    "done": "skip (done)",
    "failed": "skip (failed; --retry-failed runs it again)",
    "not-applicable": "skip (the method does not apply to this data set)",
    "corrupt": "run again (its unreadable record.json is set aside first)",
    "output-missing": "run again (its ok record without an output is set aside first)",
}


def missing_inputs(req: PlanRequest) -> list[Path]:
    """The images of the request's pairs that are not under its data root (each once, in plan order)."""
    seen: dict[Path, None] = {}
    for job in plan_jobs(req):
        if job.not_applicable is not None:
            continue  # never run: its images are not needed
        for p in (job.pair.structure, job.pair.appearance):
            if p not in seen and not p.exists():
                seen[p] = None
    return list(seen)


@dataclass
class PlannedJob:
    job: Job
    state: str
    holder: str | None = None
    record: dict[str, Any] | None = None

    @property
    def action(self) -> str:
        return ACTIONS[self.state].format(holder=self.holder)

    def row(self) -> dict[str, Any]:
        row = {**self.job.key.to_dict(), "state": self.state, "action": self.action,
               "structure": str(self.job.pair.structure), "appearance": str(self.job.pair.appearance)}  # fmt: skip
        if self.job.settings.get("dataset_options"):
            row["dataset_options"] = self.job.settings["dataset_options"]
        if self.job.not_applicable is not None:
            row["not_applicable"] = self.job.not_applicable
        return row


#: the states of a planned job that ``bench`` runs ("retry": failed, with --retry-failed; corrupt and
#: output-missing: their records are set aside first)
RUNS = ("pending", "stale", "retry", "corrupt", "output-missing")


def classify(jobs: list[Job], store: RunStore, retry_failed: bool = False) -> list[PlannedJob]:
    out = []
    for job in jobs:
        if job.not_applicable is not None:
            out.append(PlannedJob(job, NOT_APPLICABLE))
            continue
        st = job_state(store, job.key)
        state = "retry" if st.state == "failed" and retry_failed else st.state
        out.append(PlannedJob(job, state, describe_holder(st.holder) if st.holder else None, st.record))
    return out


@dataclass
class BenchSummary:
    planned: int
    outcomes: list[Outcome] = field(default_factory=list)
    skipped_done: int = 0
    failed_before: int = 0  # failed records not retried
    claimed_elsewhere: int = 0
    seconds: float = 0.0
    by_method: dict[str, Counter] = field(default_factory=dict)
    method_seconds: dict[str, float] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)  # SLURM job ids (when not waiting)
    invocation: str | None = None
    interrupted: bool = False
    missing_inputs: int = 0  # jobs left pending because their images are missing (--skip-missing)
    not_applicable: int = 0  # jobs of data sets their method does not apply to (recorded, never run)
    estimate: dict[str, Any] | None = None  # the cost expected before the run (splice.runner.cost.CostPlan)
    packing_events: list[dict[str, Any]] = field(default_factory=list)  # a device's concurrency lowered, and why

    @property
    def done(self) -> int:
        return sum(o.state == "done" for o in self.outcomes)

    @property
    def failed(self) -> int:
        return sum(o.state == "failed" for o in self.outcomes)

    @property
    def skipped(self) -> int:
        return self.skipped_done + sum(o.state == "skipped" for o in self.outcomes)

    @property
    def claimed(self) -> int:
        return self.claimed_elsewhere + sum(o.state == "claimed" for o in self.outcomes)

    @property
    def failed_total(self) -> int:
        return self.failed + self.failed_before + sum(o.state == "skipped-failed" for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "done": self.done, "skipped": self.skipped, "failed": self.failed,
                "failed_not_retried": self.failed_total - self.failed, "claimed_elsewhere": self.claimed,
                "seconds": round(self.seconds, 2), "submitted": self.submitted, "invocation": self.invocation,
                "interrupted": self.interrupted, "missing_inputs": self.missing_inputs,
                "not_applicable": self.not_applicable, "estimate": self.estimate,
                "packing_events": self.packing_events,
                "by_method": {m: dict(c) for m, c in self.by_method.items()},
                "errors": dict(Counter(o.error for o in self.outcomes
                                       if o.state == "failed").most_common(10))}  # fmt: skip

    def table(self) -> str:
        head = ["method", "jobs", "done", "skipped", "failed", "claimed", "n/a", "seconds"]
        rows = []
        for m, c in sorted(self.by_method.items()):
            rows.append([m, str(sum(c.values())), str(c["done"]), str(c["skipped"]), str(c["failed"]),
                         str(c["claimed"]), str(c["n/a"]), f"{self.method_seconds.get(m, 0.0):.1f}"])  # fmt: skip
        rows.append(["total", str(self.planned), str(self.done), str(self.skipped), str(self.failed_total),
                     str(self.claimed), str(self.not_applicable), f"{self.seconds:.1f} (wall)"])  # fmt: skip
        return _format_table(head, rows, left=1)


def _tally(summary: BenchSummary, method: str, state: str, seconds: float | None = None) -> None:
    bucket = {"done": "done", "failed": "failed", "skipped": "skipped", "skipped-failed": "failed",
              "claimed": "claimed", "skip-done": "skipped", "failed-before": "failed",
              "claimed-before": "claimed", "not-applicable": "n/a"}[state]  # fmt: skip
    summary.by_method.setdefault(method, Counter())[bucket] += 1
    if seconds:
        summary.method_seconds[method] = summary.method_seconds.get(method, 0.0) + float(seconds)


@dataclass
class LaunchOptions:
    out: Path
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    workers: int | None = None
    launcher: str = "local"
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    wait: bool = True
    retry_failed: bool = False
    progress: bool = True
    skip_missing: bool = False
    jobs_per_device: PackingPolicy | None = None  # --jobs-per-device (local launcher): jobs packed by memory
    memory_gb: float | None = None  # --memory-gb: each device's memory for packing (default: measured)
    keep_work: bool = False  # keep work/ (checkpoints, scratch) of jobs that end ok


def estimate_cost(jobs: list[Job], launch: LaunchOptions, model: CostModel | None = None,
                  capacity_mb: dict[str, float | None] | None = None) -> CostPlan:  # fmt: skip
    """The expected cost of running ``jobs`` as ``launch`` says (:mod:`splice.runner.cost`)."""
    model = model or CostModel.from_store(launch.out)
    if launch.launcher == "slurm":
        kind = "cpu" if launch.devices == ["cpu"] or not launch.slurm.gpus_per_task else "cuda"
        return estimate_plan(jobs, model, launch.devices, slurm_tasks=launch.slurm.array_parallelism, slurm_kind=kind)
    if launch.jobs_per_device is not None and capacity_mb is None:
        capacity_mb = device_memory_mb(launch.devices, launch.memory_gb)
    return estimate_plan(jobs, model, launch.devices, workers=launch.workers, policy=launch.jobs_per_device,
                         capacity_mb=capacity_mb)  # fmt: skip


def bench(req: PlanRequest, launch: LaunchOptions, argv: list[str] | None = None,
          settings_extra: dict[str, Any] | None = None,
          on_estimate: Callable[[CostPlan], None] | None = None) -> BenchSummary:  # fmt: skip
    """Run (or submit) every job of ``req`` that is not done; see the module docstring.

    Before running, the expected cost of the jobs to run (:func:`estimate_cost`) goes to ``on_estimate``
    and into this invocation's entry of ``run.json`` (``settings.estimate``), beside what it really took."""
    t0 = time.time()
    store = RunStore(launch.out)
    jobs = plan_jobs(req)
    planned = classify(jobs, store, launch.retry_failed)
    summary = BenchSummary(planned=len(planned))

    def runs(p: PlannedJob) -> bool:  # what the loop below hands to the launcher
        if p.state not in RUNS:
            return False
        return not (launch.skip_missing and not (p.job.pair.structure.exists() and p.job.pair.appearance.exists()))

    model = CostModel.from_store(store)
    capacity = None
    if launch.launcher == "local" and launch.jobs_per_device is not None:
        capacity = device_memory_mb(launch.devices, launch.memory_gb)
    estimate = estimate_cost([p.job for p in planned if runs(p)], launch, model, capacity)
    summary.estimate = estimate.to_dict()
    if on_estimate is not None and estimate.methods:
        on_estimate(estimate)

    settings = {**req.to_dict(), "out": str(launch.out), "devices": launch.devices, "workers": launch.workers,
                "launcher": launch.launcher, "retry_failed": launch.retry_failed, "keep_work": launch.keep_work,
                "estimate": summary.estimate,
                **(settings_extra or {})}  # fmt: skip
    if launch.jobs_per_device is not None:
        settings["packing"] = {**launch.jobs_per_device.to_dict(), "capacity_mb": capacity}
    if launch.launcher == "slurm":
        settings["slurm"] = {k: v for k, v in vars(launch.slurm).items()}
    invocation = new_invocation(settings, [m.record() for m in req.manifests], argv)
    summary.invocation = invocation["id"]
    store.root.mkdir(parents=True, exist_ok=True)
    append_invocation(store.root, invocation)
    write_job_specs(store, jobs)

    to_run: list[Job] = []
    for p in planned:
        m = p.job.key.method
        if p.state == NOT_APPLICABLE:
            record_not_applicable(p.job, store, invocation)
            summary.not_applicable += 1
            _tally(summary, m, "not-applicable")
        elif p.state == "done":
            summary.skipped_done += 1
            _tally(summary, m, "skip-done")
        elif p.state == "failed":
            summary.failed_before += 1
            _tally(summary, m, "failed-before")
        elif p.state == "running":
            summary.claimed_elsewhere += 1
            _tally(summary, m, "claimed-before")
            log.info("%s: claimed by %s; skipped", p.job.key, p.holder)
        elif not runs(p):
            summary.missing_inputs += 1  # left pending: the images are not under --root
        else:
            to_run.append(p.job)

    bar = None
    if launch.progress and to_run:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(to_run), desc="bench", unit="job", file=sys.stderr, dynamic_ncols=True, disable=None)
        except ImportError:  # pragma: no cover
            bar = None

    def on_outcome(o: Outcome) -> None:
        _tally(summary, o.key["method"], o.state, o.seconds)
        if bar is not None:
            bar.update()
            c = Counter()
            for mc in summary.by_method.values():
                c.update(mc)
            bar.set_postfix(done=c["done"], failed=c["failed"], refresh=False)

    try:
        if launch.launcher == "local":
            packing = None
            if launch.jobs_per_device is not None:
                packing = Packing(launch.jobs_per_device, capacity or {}, model.memory_of)
            try:
                summary.outcomes = run_local(to_run, store, launch.devices, launch.workers, invocation,
                                             launch.retry_failed, on_outcome=on_outcome, packing=packing)  # fmt: skip
            finally:
                summary.packing_events = list(packing.events) if packing is not None else []
        elif launch.launcher == "slurm":
            submitted = submit_slurm(to_run, store, launch.slurm, invocation, launch.retry_failed,
                                     device="cpu" if launch.devices == ["cpu"] else "auto")  # fmt: skip
            summary.submitted = [s.job_id for s in submitted]
            if launch.wait:
                for o in wait_slurm(submitted, to_run, launch.slurm.jobs_per_task, store):
                    summary.outcomes.append(o)
                    on_outcome(o)
        else:
            raise ConfigError(f"unknown --launcher {launch.launcher!r}; use local or slurm")
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        if bar is not None:
            bar.close()
        summary.seconds = time.time() - t0
        try:
            write_jobs_csv(store, scan(store))
        except OSError as e:  # pragma: no cover
            log.warning("could not write jobs.csv: %s", e)
        finish_invocation(store.root, invocation["id"], summary.to_dict())
    return summary


def dry_run(req: PlanRequest, out: Path, retry_failed: bool = False) -> list[PlannedJob]:
    """The jobs ``bench`` would consider, with what it would do to each. Writes nothing."""
    return classify(plan_jobs(req), RunStore(out), retry_failed)
