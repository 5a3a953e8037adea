"""The SLURM launcher: the same jobs as a job array through ``submitit`` (as DINO's
``run_with_submitit.py`` does), all writing into one run store on a shared file system.

Each array task runs a chunk of jobs with :func:`splice.runner.execute.execute`, so claims
keep two tasks (or a task and a local runner) off the same job, ``ok`` jobs are skipped, and
a failure is a record, not a crashed task. :class:`BenchTask` is checkpointable: when SLURM
preempts or times out a task, submitit requeues it, and the requeued task takes over its own
claims (same array task id) and resumes from ``work/``.

Submitit's folder is ``runs/NAME/slurm/%j`` (logs, pickles, results of every task);
``runs/NAME/slurm/array-<id>.json`` lists the jobs of each task of an array. Every record made
in a task names the SLURM job, the array task and the task's log (``record.slurm``).

Waiting (:func:`wait_slurm`) asks ``squeue`` and reads the run store; it never asks submitit for
a job's state, which would run ``sacct``: clusters without accounting storage have none, and a
task cancelled or killed before writing its result would be waited for forever.
``cluster="local"`` or ``"debug"`` runs the array with submitit's local executors (tests).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from splice.core.atomic import atomic_write_json, read_json
from splice.core.errors import ConfigError
from splice.core.record import TASK_LOG_ENV
from splice.core.store import RunStore
from splice.runner.execute import OOM_LADDER, Outcome, execute
from splice.runner.jobs import Job

log = logging.getLogger(__name__)

ARRAY_FILE = "array-{array}.json"
"""``OUT/slurm/array-<id>.json``: the array's tasks and the jobs each runs (written at submission)."""
ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                    "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "PREEMPTED",
                    "RESV_DEL_HOLD"})  # fmt: skip
"""squeue states (``%T``) in which a task may still produce its result."""
GONE = "GONE"
"""The state of a task squeue no longer lists (purged ``MinJobAge`` seconds after it ended)."""
REQUEST_OPTIONS = ("--slurm-partition", "--slurm-gpus-per-task", "--slurm-cpus-per-task", "--slurm-mem-gb",
                   "--slurm-time", "--slurm-account", "--slurm-qos", "--slurm-constraint")  # fmt: skip
HOPELESS = {
    "PartitionConfig": "the request exceeds what the partition's nodes have or allow (--slurm-cpus-per-task, "
                       "--slurm-gpus-per-task, --slurm-mem-gb, --slurm-time)",
    "PartitionNodeLimit": "the request exceeds the partition's node limits",
    "PartitionTimeLimit": "--slurm-time exceeds the partition's time limit",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "ReqNodeNotAvail": "the nodes it needs are down, drained or reserved",
    "InvalidAccount": "--slurm-account is not valid here",
    "InvalidQOS": "--slurm-qos is not valid here",
    "BadConstraints": "--slurm-constraint matches no node",
    "QOSMaxCpuPerJobLimit": "--slurm-cpus-per-task exceeds the QOS's limit",
    "QOSMaxWallDurationPerJobLimit": "--slurm-time exceeds the QOS's limit",
}  # fmt: skip
"""Pending reasons that will not resolve by themselves: said once, with the options to change."""
RESULT_GRACE = 10.0
"""Seconds a task may stay without its result file after squeue says it ended (file-system lag)."""
POLL_MIN, POLL_MAX = 2.0, 60.0
"""squeue is asked after 0, 2, 4, 8, ... seconds, then every minute."""


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


def _task_log() -> str | None:
    """The stderr file of the submitit task this process runs (``OUT/slurm/<job>/<job>_0_log.err``)."""
    try:
        import submitit

        return str(submitit.JobEnvironment().paths.stderr.absolute())
    except Exception:  # noqa: BLE001 - not in a submitit task, or an executor without paths
        return None


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
        before = os.environ.get(TASK_LOG_ENV)
        task_log = _task_log()
        if task_log:
            os.environ[TASK_LOG_ENV] = task_log  # each record names this file (splice.core.record.slurm_context)
        try:
            out = []
            for spec in chunk:
                job = Job.from_dict(spec)
                outcome = execute(job, store, device, self.invocation, self.retry_failed, self.ladder)
                log.info("%s: %s", job.key, outcome.state)
                out.append(outcome.to_dict())
            return out
        finally:  # the debug executor runs tasks in the submitting process
            if before is None:
                os.environ.pop(TASK_LOG_ENV, None)
            else:
                os.environ[TASK_LOG_ENV] = before

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _quiet_submitit() -> None:
    """In the submitting process, submitit's records go through our handlers only: submitit installs
    two of its own at import (all levels to stdout, warnings to stderr), which would put its lines
    into ``--json`` output and print each warning twice."""
    lg = logging.getLogger("submitit")
    for h in list(lg.handlers):
        if h.get_name() in ("submitit_out", "submitit_err"):
            lg.removeHandler(h)


def make_executor(folder: Path, opts: SlurmOptions, n_tasks: int):
    try:
        import submitit
    except ImportError:  # pragma: no cover
        raise ConfigError("--launcher slurm needs the submitit package: pip install submitit") from None
    _quiet_submitit()
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


def _refused(e: BaseException) -> ConfigError:
    """sbatch's refusal (submitit's FailedJobError holds its stderr) as one line naming the options."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    said = [ln for ln in lines if "error" in ln.lower()] or lines or [type(e).__name__]
    return ConfigError(f"--launcher slurm: sbatch refused the job array: {'; '.join(said[:3])}; check "
                       f"{', '.join(REQUEST_OPTIONS)} against the partition (`sinfo -o '%P %c %m %G %l'`; "
                       "--slurm-gpus-per-task 0 on a partition without GPUs)")  # fmt: skip


def submit_slurm(jobs: list[Job], store: RunStore, opts: SlurmOptions, invocation: dict[str, Any] | None = None,
                 retry_failed: bool = False, device: str = "auto") -> list[Any]:  # fmt: skip
    """Submit ``jobs`` as one job array (``opts.jobs_per_task`` jobs per array task). Returns submitit jobs.

    Which jobs each task runs goes to ``OUT/slurm/array-<id>.json`` (read by ``splice bench status``)."""
    if not jobs:
        return []
    k = max(1, int(opts.jobs_per_task))
    chunks = [jobs[i : i + k] for i in range(0, len(jobs), k)]
    executor = make_executor(store.root / "slurm", opts, len(chunks))
    task = BenchTask(str(store.root.absolute()), invocation or {}, retry_failed, device)
    from submitit.core.utils import FailedJobError

    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):  # submitit prints sbatch's stderr, then raises it
            submitted = executor.map_array(task, [[j.to_dict() for j in c] for c in chunks])
    except FailedJobError as e:
        raise _refused(e) from None
    if said.getvalue():
        sys.stderr.write(said.getvalue())
    if submitted and executor.cluster == "slurm":
        array = submitted[0].job_id.split("_")[0]
        tasks = {sj.job_id: [str(j.key.relpath()) for j in c] for sj, c in zip(submitted, chunks)}
        atomic_write_json(store.root / "slurm" / ARRAY_FILE.format(array=array),
                          {"array": array, "invocation": (invocation or {}).get("id"), "jobs_per_task": k,
                           "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tasks": tasks})  # fmt: skip
    if submitted:
        log.info("submitted %d array task(s) for %d job(s): %s", len(submitted), len(jobs),
                 submitted[0].job_id.split("_")[0])  # fmt: skip
    return submitted


def known_arrays(store: RunStore) -> dict[str, dict[str, list[str]]]:
    """``{array id: {array task id: [job folder relative to the store, ...]}}`` of every array submitted
    into ``store`` (from ``OUT/slurm/array-<id>.json``), oldest first."""
    out: dict[str, dict[str, list[str]]] = {}
    folder = store.root / "slurm"
    files = sorted(folder.glob(ARRAY_FILE.format(array="*")), key=lambda p: _numeric(p.stem.partition("-")[2]))
    for path in files:
        try:
            d = read_json(path)
            out[str(d["array"])] = {str(t): [str(p) for p in paths] for t, paths in d["tasks"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.debug("unreadable %s; skipped", path)
    return out


def _numeric(task_id: str) -> tuple[int, ...]:
    """Sort key of ``12``, ``12_3``: numbers, not text."""
    try:
        return tuple(int(x) for x in task_id.split("_"))
    except ValueError:
        return (1 << 62,)


# --------------------------------------------------------------------------------------------------------
# waiting: squeue and the run store, never sacct
# --------------------------------------------------------------------------------------------------------
def squeue_states(ids: Iterable[str]) -> dict[str, tuple[str, str]] | None:
    """``{array task id: (state, reason)}`` for every task of the arrays (or jobs) ``ids`` that the
    scheduler still lists, finished ones included (until ``MinJobAge`` purges them); None when
    ``squeue`` itself failed, so that nothing is concluded from a task's absence."""
    ids = sorted(set(ids))
    if not ids:
        return {}
    cmd = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r", "--jobs=" + ",".join(ids)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("squeue failed: %s", e)
        return None
    if r.returncode != 0:
        if "Invalid job id" in r.stderr:  # one id only, and the scheduler has forgotten it
            return {}
        log.debug("squeue failed (exit %d): %s", r.returncode, r.stderr.strip())
        return None
    out = {}
    for line in r.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            out[parts[0]] = (parts[1], parts[2])
    return out


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return _one_line(" | ".join(lines[-n:]), 240)


def _from_store(chunk: list[Job], store: RunStore | None, task: str, why: str) -> list[Outcome]:
    """Outcomes of the jobs of array task ``task``, which ended without a result, from the run store:
    what it finished before it ended counts; the rest failed for ``why``."""
    out = []
    for job in chunk:
        rec = store.read_record(job.key) if store is not None else None
        if rec is not None and store.is_done(job.key):
            out.append(Outcome(job.key.to_dict(), "done", seconds=rec.seconds, max_side=rec.max_side))
        elif rec is not None and rec.status == "failed" and (rec.slurm or {}).get("job") == task:
            out.append(Outcome(job.key.to_dict(), "failed", seconds=rec.seconds, error=rec.error))
        else:
            out.append(Outcome(job.key.to_dict(), "failed", error=why))
    return out


def _task_outcomes(sj: Any, chunk: list[Job], store: RunStore | None) -> list[Outcome]:
    """The outcomes a finished task returned, or (it raised outside a job) what the store says."""
    try:
        return [Outcome(**d) for d in sj.result()]
    except Exception as e:  # noqa: BLE001 - the task raised outside execute(): a job spec it cannot load, ...
        why = _one_line(e)
        try:
            from submitit.core.utils import pickle_load

            outcome, trace = pickle_load(sj.paths.result_pickle)
            if outcome == "error" and str(trace).strip():
                why = _one_line(str(trace).strip().splitlines()[-1])  # the exception, not the traceback's head
        except Exception:  # noqa: BLE001 - no result file: keep submitit's message
            pass
        return _from_store(chunk, store, sj.job_id, f"array task {sj.job_id} raised {why} (log {sj.paths.stderr})")


def _is_slurm(sj: Any) -> bool:
    from submitit.slurm.slurm import SlurmJob

    return isinstance(sj, SlurmJob)


def wait_slurm(submitted: list[Any], jobs: list[Job], jobs_per_task: int = 1,
               store: RunStore | None = None) -> Iterator[Outcome]:  # fmt: skip
    """Yield the outcomes of every array task's jobs as the tasks end.

    A task has ended when its result file exists (submitit writes it for a return and for an
    exception), or when ``squeue`` shows it in a final state (cancelled, failed, timed out, node
    failure, out of memory, completed) or no longer lists it, and no result file came within
    :data:`RESULT_GRACE` seconds. Then its jobs' outcomes come from the run store: a job the task
    finished is ``done``, the others ``failed`` with the task's end (their claims turn stale and the
    next ``splice bench`` takes them over). submitit is never asked for a state, so it never runs
    ``sacct``, which clusters without accounting storage do not have. A task pending for a reason
    that will not resolve itself (:data:`HOPELESS`) is reported once."""
    k = max(1, int(jobs_per_task))
    chunks = [jobs[i * k : (i + 1) * k] for i in range(len(submitted))]
    if not submitted:
        return
    if not _is_slurm(submitted[0]):  # submitit's local/debug executors: no scheduler to ask
        for sj, chunk in zip(submitted, chunks):
            yield from _task_outcomes(sj, chunk, store)
        return
    arrays = sorted({sj.job_id.split("_")[0] for sj in submitted})
    log.info("waiting for SLURM array %s (%d task(s)): task states come from squeue and the run store, not sacct",
             ",".join(arrays), len(submitted))  # fmt: skip
    left = dict(enumerate(submitted))
    ended: dict[int, float] = {}
    said: set[str] = set()
    t0 = last = time.monotonic()
    states = squeue_states(arrays)
    while left:
        now = time.monotonic()
        if now - last >= min(POLL_MAX, max(POLL_MIN, (now - t0) / 2)):
            states, last = squeue_states(arrays), now
        if states is None and "squeue" not in said:
            said.add("squeue")
            log.warning("squeue does not answer here: waiting for the tasks' result files only (a task that "
                        "dies without one is not noticed; `splice bench status` shows the store)")  # fmt: skip
        for i, sj in list(left.items()):
            if sj.paths.result_pickle.exists():
                del left[i]
                yield from _task_outcomes(sj, chunks[i], store)
                continue
            if states is None:
                continue
            state, reason = states.get(sj.job_id, (GONE, ""))
            if state in ACTIVE:
                ended.pop(i, None)
                if state == "PENDING" and reason in HOPELESS and reason not in said:
                    said.add(reason)
                    array = sj.job_id.split("_")[0]
                    log.warning("SLURM array %s is pending (%s): %s; it will not start until that changes "
                                "(scancel %s, then submit again)", array, reason, HOPELESS[reason], array)  # fmt: skip
                continue
            if now - ended.setdefault(i, now) >= RESULT_GRACE:  # allow for a shared file system's lag
                del left[i]
                tail = _tail(sj.paths.stderr)
                why = (f"array task {sj.job_id} ended {state} before this job finished; its claim turns stale and "
                       "a later `splice bench` runs it" + (f" (log {sj.paths.stderr}: {tail})" if tail else ""))
                yield from _from_store(chunks[i], store, sj.job_id, why)
        if left:
            time.sleep(min(5.0, max(1.0, (time.monotonic() - t0) / 60)))
