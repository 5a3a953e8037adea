"""Every job's state in a run store, and ``runs/NAME/jobs.csv``.

The states (done, failed, running, stale, pending, corrupt, output-missing, not-applicable) and how a
job gets one are :mod:`splice.core.health`'s, the one classifier that ``score``, ``table`` and
``report`` use too; this module adds what the runner shows: the per (data set, method) table,
``jobs.csv`` (with the command that fixes each job) and, for a store that SLURM arrays write into,
:func:`scheduler_view`: each array task ``squeue`` still lists (pending and why, running, ended),
with the states of the jobs it runs.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from splice.core.atomic import atomic_write_json, atomic_write_text, read_json
from splice.core.claims import describe_holder
from splice.core.health import JOB_SPEC, STATES, Fixer, JobHealth, counts, job_health, survey  # noqa: F401
from splice.core.record import JobKey
from splice.core.store import RunStore
from splice.runner.jobs import Job

JOBS_CSV = "jobs.csv"
CSV_COLUMNS = ["dataset", "pair_id", "method", "seed", "config_hash", "state", "seconds", "peak_memory_mb", "max_side",
               "attempts", "random_weights", "device", "host", "error", "finished", "job_dir", "slurm_job",
               "log", "fix"]  # fmt: skip


def write_job_specs(store: RunStore, jobs: Iterable[Job]) -> int:
    """Write ``job.json`` into each planned job's folder (only when absent or different)."""
    n = 0
    for job in jobs:
        path = store.job_dir(job.key) / JOB_SPEC
        spec = job.to_dict()
        try:
            if path.exists() and read_json(path) == json.loads(json.dumps(spec, default=str)):
                continue
        except (OSError, ValueError):
            pass
        atomic_write_json(path, spec)
        n += 1
    return n


class JobState(JobHealth):
    """A job's :class:`~splice.core.health.JobHealth` with what the runner shows of it."""

    @property
    def slurm_job(self) -> str | None:
        """The SLURM array task (or job) on it now (a claim) or that made its record."""
        if self.state in ("running", "stale") and self.holder and self.holder.get("slurm_task"):
            return self.holder["slurm_task"]
        return (self.record.slurm or {}).get("job") if self.record else None

    def row(self, fixer: Fixer | None = None) -> dict[str, Any]:
        rec = self.record
        return {
            **self.key.to_dict(),
            "state": self.state,
            "seconds": rec.seconds if rec else None,
            "peak_memory_mb": rec.peak_memory_mb if rec else None,
            "max_side": rec.max_side if rec else None,
            "attempts": len(rec.attempts) if rec else 0,
            "random_weights": rec.random_weights if rec else None,
            "device": rec.device if rec else None,
            "host": describe_holder(self.holder) if self.state in ("running", "stale") else (rec.host if rec else None),
            "error": self.why if self.state != "done" else None,
            "finished": rec.finished if rec else None,
            "job_dir": str(self.job_dir),
            "slurm_job": self.slurm_job,
            "log": (rec.slurm or {}).get("log") if rec else None,
            "fix": fixer.command(self) if fixer is not None else None,
        }


def _as_state(h: JobHealth) -> JobState:
    return JobState(**vars(h))


def job_state(store: RunStore, key: JobKey) -> JobState:
    return _as_state(job_health(store, key))


def scan(store: RunStore, extra: Iterable[JobKey] = ()) -> list[JobState]:
    """The state of every expected job of the store (plus ``extra`` keys), sorted."""
    return [_as_state(h) for h in survey(store, extra)]


def write_jobs_csv(store: RunStore, states: list[JobState]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    fixer = Fixer(store)
    for s in states:
        w.writerow({k: ("" if v is None else v) for k, v in s.row(fixer).items()})
    return atomic_write_text(store.root / JOBS_CSV, buf.getvalue())


def table(states: list[JobState]) -> str:
    """A per (data set, method) count table for people."""
    groups: dict[tuple[str, str], Counter] = {}
    secs: dict[tuple[str, str], float] = {}
    for s in states:
        g = (s.key.dataset, s.key.method)
        groups.setdefault(g, Counter())[s.state] += 1
        if s.state == "done" and s.record and s.record.seconds is not None:
            secs[g] = secs.get(g, 0.0) + float(s.record.seconds)
    head = ["dataset", "method", "jobs", *STATES, "seconds"]
    rows = [[d, m, str(sum(c.values())), *(str(c.get(k, 0)) for k in STATES), f"{secs.get((d, m), 0.0):.1f}"]
            for (d, m), c in sorted(groups.items())]  # fmt: skip
    total = counts(states)
    rows.append(["total", "", str(len(states)), *(str(total[k]) for k in STATES), f"{sum(secs.values()):.1f}"])
    return _format_table(head, rows, left=2)


@dataclass
class TaskView:
    """One SLURM array task as the scheduler sees it, with its jobs as the run store sees them."""

    task: str
    state: str  # squeue's %T: PENDING, RUNNING, COMPLETED, CANCELLED, ...
    reason: str  # squeue's %r: why it is pending ("None" otherwise)
    jobs: list[JobState]

    @property
    def scheduler(self) -> str:
        return f"{self.state} ({self.reason})" if self.reason not in ("", "None") else self.state

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "state": self.state, "reason": self.reason, "counts": counts(self.jobs),
                "jobs": [str(s.key) for s in self.jobs]}  # fmt: skip


def scheduler_view(store: RunStore, states: list[JobState]) -> tuple[list[TaskView], str | None]:
    """The tasks of this store's SLURM arrays that ``squeue`` still lists (``OUT/slurm/array-*.json``
    says which jobs each runs), and a note when arrays are known but squeue does not answer here."""
    from splice.runner.slurm import known_arrays, squeue_states

    arrays = known_arrays(store)
    if not arrays:
        return [], None
    seen = squeue_states(arrays)
    if seen is None:
        return [], (f"SLURM array(s) {', '.join(arrays)} were submitted into this store, but squeue does not "
                    "answer here: the states above are the store's only")  # fmt: skip
    by_path = {str(s.key.relpath()): s for s in states}
    views = []
    for tasks in arrays.values():
        for task, paths in tasks.items():
            if task in seen:
                state, reason = seen[task]
                views.append(TaskView(task, state, reason, [by_path[p] for p in paths if p in by_path]))
    return views, None


def scheduler_table(views: list[TaskView], max_rows: int = 20) -> str:
    """Per array task: the scheduler's state and its jobs' states in the store. Past ``max_rows`` tasks,
    the pending and the completed tasks of an array share one row per state (``12_[3-9,11]``)."""
    rows: list[tuple[list[TaskView], str]] = []  # (tasks, scheduler state), in the order first seen
    grouped: dict[tuple[str, str], list[TaskView]] = {}
    for v in views:
        if len(views) > max_rows and v.state in ("PENDING", "COMPLETED"):
            key = (v.task.partition("_")[0], v.scheduler)
            if key not in grouped:
                grouped[key] = []
                rows.append((grouped[key], v.scheduler))
            grouped[key].append(v)
        else:
            rows.append(([v], v.scheduler))
    out = []
    for tasks, scheduler in rows:
        label = tasks[0].task
        if len(tasks) > 1 or (len(views) > max_rows and tasks[0].state in ("PENDING", "COMPLETED")):
            label = f"{label.partition('_')[0]}_[{_ranges([int(t.task.partition('_')[2]) for t in tasks])}]"
        jobs = [s for t in tasks for s in t.jobs]
        c = counts(jobs)
        out.append([label, scheduler, str(len(jobs)), *(str(c[k]) for k in STATES)])
    return _format_table(["array task", "scheduler", "jobs", *STATES], out, left=2)


def _ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _format_table(head: list[str], rows: list[list[str]], left: int) -> str:
    """Aligned columns: the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([fmt(head), *(fmt(r) for r in rows)])
