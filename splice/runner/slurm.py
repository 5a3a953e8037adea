"""The SLURM launcher: the same jobs as a job array through ``submitit`` (as DINO's
``run_with_submitit.py`` does), all writing into one run store on a shared file system.

Each array task runs a chunk of jobs with :func:`splice.runner.execute.execute`, so claims
keep two tasks (or a task and a local runner) off the same job, ``ok`` jobs are skipped, and
a failure is a record, not a crashed task. :class:`BenchTask` is checkpointable: when SLURM
preempts or times out a task, submitit requeues it, and the requeued task takes over its own
claims (same array task id) and resumes from ``work/``.

Submitit's folder is ``runs/NAME/slurm/%j`` (logs, pickles, results of every task).
``cluster="local"`` or ``"debug"`` runs the array with submitit's local executors (tests).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splice.core.errors import ConfigError
from splice.core.store import RunStore
from splice.runner.execute import OOM_LADDER, Outcome, execute
from splice.runner.jobs import Job

log = logging.getLogger(__name__)


@dataclass
class SlurmOptions:
    partition: str | None = None
    time_min: int = 24 * 60
    gpus_per_task: int = 1
    cpus_per_task: int = 8
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int = 64
    jobs_per_task: int = 1
    cluster: str | None = None  # None = SLURM (auto-detected); "local" / "debug" for tests
    extra: dict[str, Any] = field(default_factory=dict)  # further slurm_* parameters for submitit


def _task_device(requested: str) -> str:
    if requested != "auto":
        return requested
    if not (os.path.exists("/dev/nvidiactl") or os.environ.get("CUDA_VISIBLE_DEVICES")):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class BenchTask:
    """One array task: run a chunk of jobs. Picklable; requeued on timeout/preemption."""

    def __init__(self, store_root: str, invocation: dict[str, Any], retry_failed: bool, device: str = "auto",
                 ladder: tuple[int, ...] = OOM_LADDER):  # fmt: skip
        self.store_root = store_root
        self.invocation = invocation
        self.retry_failed = retry_failed
        self.device = device
        self.ladder = ladder

    def __call__(self, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        store = RunStore(self.store_root)
        device = _task_device(self.device)
        out = []
        for spec in chunk:
            job = Job.from_dict(spec)
            outcome = execute(job, store, device, self.invocation, self.retry_failed, self.ladder)
            log.info("%s: %s", job.key, outcome.state)
            out.append(outcome.to_dict())
        return out

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def make_executor(folder: Path, opts: SlurmOptions, n_tasks: int):
    try:
        import submitit
    except ImportError:  # pragma: no cover
        raise ConfigError("--launcher slurm needs the submitit package: pip install submitit") from None
    try:
        executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=opts.cluster)
    except RuntimeError as e:
        raise ConfigError(f"--launcher slurm: no SLURM cluster found here ({e}); run on a login node or use "
                          "--launcher local") from None  # fmt: skip
    params: dict[str, Any] = {
        "name": "splice-bench",
        "timeout_min": int(opts.time_min),
        "cpus_per_task": int(opts.cpus_per_task),
        "slurm_partition": opts.partition,
        "slurm_account": opts.account,
        "slurm_qos": opts.qos,
        "slurm_constraint": opts.constraint,
        "slurm_array_parallelism": int(min(opts.array_parallelism, max(1, n_tasks))),
        "slurm_gpus_per_task": int(opts.gpus_per_task) if opts.gpus_per_task else None,
        "mem_gb": opts.mem_gb,
        **{f"slurm_{k}": v for k, v in opts.extra.items()},
    }
    if executor.cluster != "slurm":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def submit_slurm(jobs: list[Job], store: RunStore, opts: SlurmOptions, invocation: dict[str, Any] | None = None,
                 retry_failed: bool = False, device: str = "auto") -> list[Any]:  # fmt: skip
    """Submit ``jobs`` as one job array (``opts.jobs_per_task`` jobs per array task). Returns submitit jobs."""
    if not jobs:
        return []
    k = max(1, int(opts.jobs_per_task))
    chunks = [[j.to_dict() for j in jobs[i : i + k]] for i in range(0, len(jobs), k)]
    executor = make_executor(store.root / "slurm", opts, len(chunks))
    task = BenchTask(str(store.root.absolute()), invocation or {}, retry_failed, device)
    submitted = executor.map_array(task, chunks)
    if submitted:
        log.info("submitted %d array task(s) for %d job(s): %s", len(submitted), len(jobs),
                 submitted[0].job_id.split("_")[0])  # fmt: skip
    return submitted


def wait_slurm(submitted: list[Any], jobs: list[Job], jobs_per_task: int = 1) -> list[Outcome]:
    """Wait for every array task; a task that died becomes ``failed`` outcomes for its jobs
    (their claims turn stale; a later invocation takes them over)."""
    outcomes: list[Outcome] = []
    k = max(1, int(jobs_per_task))
    for i, sj in enumerate(submitted):
        chunk = jobs[i * k : (i + 1) * k]
        try:
            outcomes.extend(Outcome(**d) for d in sj.result())
        except Exception as e:  # noqa: BLE001 - the whole task died (node failure, cancelled)
            msg = " ".join(str(e).split())[:300]
            died = f"array task {sj.job_id} died: {msg}"
            outcomes.extend(Outcome(j.key.to_dict(), "failed", error=died) for j in chunk)
    return outcomes
