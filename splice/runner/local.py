"""The local launcher: a pool of worker processes, one per device listed (or N CPU workers).

Workers are fresh (``spawn``) processes, so a method's CUDA context, threads or a crash stay
in its worker: a worker that dies (segfault, the kernel's OOM killer) gets a ``failed``
record for the job it held and is replaced; the other jobs go on. Workers die with the
launcher (``PR_SET_PDEATHSIG`` on Linux), so after a ``kill -9`` of the launcher their claims
are stale at once and the next invocation takes the jobs over, resuming from ``work/``.

``workers=0`` runs the jobs in the launcher's own process (debugging; no crash isolation).

Which job starts where is the :class:`~splice.runner.packing.Packer`'s decision: one job per worker
and N workers over the devices in turn (``--workers``), or several jobs per device packed by
memory (``--jobs-per-device``). Workers start when a job needs one and live until the end.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

from splice.core.store import RunStore
from splice.runner.execute import OOM_LADDER, Outcome, execute, free_accelerator, record_crash
from splice.runner.jobs import Job
from splice.runner.packing import Packer, Packing, PackingPolicy, fixed_policy_for_workers

log = logging.getLogger(__name__)


def _set_pdeathsig() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphans holding claims)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover
        pass


def _worker_main(conn: Connection, device: str, store_root: str, invocation: dict[str, Any], retry_failed: bool,
                 ladder: tuple[int, ...], threads: int | None, parent_pid: int, log_level: int) -> None:  # fmt: skip
    _set_pdeathsig()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the launcher's business
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    store = RunStore(store_root)
    if threads and "torch" in sys.modules:  # pragma: no cover - torch is normally imported later by a method
        sys.modules["torch"].set_num_threads(threads)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        job = Job.from_dict(msg["job"])
        shared = not msg.get("ladder", True)  # beside other jobs: an OOM goes back to the launcher
        if threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        try:
            out = execute(job, store, device, invocation, retry_failed, ladder, requeue_oom=shared)
        except BaseException as e:  # noqa: BLE001 - a bug in the harness itself: report, keep the worker
            out = Outcome(job.key.to_dict(), "failed", error=f"runner error: {type(e).__name__}: {e}")
        if msg.get("release_memory"):
            free_accelerator()  # hand the cached blocks back: other workers share this device
        try:
            conn.send(out.to_dict())
        except (BrokenPipeError, OSError):
            return


@dataclass
class _Worker:
    device: str
    proc: Any
    conn: Connection
    job: Job | None = None
    started: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown exit"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def run_local(jobs: list[Job], store: RunStore, devices: list[str], workers: int | None = None,
              invocation: dict[str, Any] | None = None, retry_failed: bool = False,
              ladder: tuple[int, ...] = OOM_LADDER, on_outcome: Callable[[Outcome], None] | None = None,
              packing: Packing | None = None) -> list[Outcome]:  # fmt: skip
    """Run ``jobs`` on ``devices`` and return one :class:`Outcome` per job (in completion order).

    ``workers``: None = one per device; 0 = in this process; N = N workers over the devices in turn.
    ``packing`` (``--jobs-per-device``): several jobs at once per device, as many as its policy lets
    (:mod:`splice.runner.packing`); a job that runs out of memory beside others runs again with fewer.
    """
    invocation = invocation or {}
    outcomes: list[Outcome] = []

    def done(o: Outcome) -> None:
        outcomes.append(o)
        if on_outcome:
            on_outcome(o)

    if not jobs:
        return outcomes
    if workers == 0 and packing is None:
        for job in jobs:
            done(execute(job, store, devices[0], invocation, retry_failed, ladder))
        return outcomes

    if packing is None:  # --workers: N workers over the devices in turn, one job each at a time
        used, per_device = fixed_policy_for_workers(devices, workers)
        packer = Packer(used, PackingPolicy(auto=False, cap=max(per_device.values())), {}, lambda j, d: None)
        packer.limit.update(per_device)
    else:
        packer = packing.packer(devices)
    slots = {d: min(n, len(jobs)) for d, n in packer.limit.items()}
    cpu_workers = sum(n for d, n in slots.items() if d == "cpu")
    threads = max(1, (os.cpu_count() or 1) // cpu_workers) if cpu_workers else None
    ctx = mp.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()

    def start(device: str) -> _Worker:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, name=f"splice-bench-worker-{device}",
                           args=(child, device, str(store.root), invocation, retry_failed, ladder,
                                 threads if device == "cpu" else None, os.getpid(), level), daemon=True)  # fmt: skip
        proc.start()
        child.close()
        return _Worker(device=device, proc=proc, conn=parent)

    pool: list[_Worker] = []
    queue = deque(jobs)

    def dispatch() -> None:
        for device in packer.devices:
            while queue:
                job = packer.pick(queue, device)
                if job is None:
                    break
                w = next((w for w in pool if w.device == device and w.job is None), None)
                if w is None:
                    w = start(device)
                    pool.append(w)
                w.job, w.started = job, time.time()
                w.extra = {"ladder": packer.start(job, device)}
                try:
                    w.conn.send({"job": job.to_dict(), "ladder": w.extra["ladder"],
                                 "release_memory": packing is not None and device != "cpu"})  # fmt: skip
                except (BrokenPipeError, OSError):
                    pass  # found dead below

    try:
        while queue or any(w.job is not None for w in pool):
            dispatch()
            busy = [w for w in pool if w.job is not None]
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
            arrived = []
            for w in pool:
                if w.job is None or (w.conn not in ready and w.proc.sentinel not in ready):
                    continue
                result = None
                if w.conn in ready:
                    try:
                        result = w.conn.recv()
                    except (EOFError, OSError):
                        result = None
                arrived.append((w, result))
            # out-of-memory reports first: the jobs that ended at the same moment were running beside them
            arrived.sort(key=lambda wr: not (wr[1] is not None and wr[1]["state"] == "oom"))
            for w, result in arrived:
                job, w.job = w.job, None
                if result is not None and result["state"] == "oom":
                    packer.oom(job, w.device)  # fewer at once on this device; the job runs again, alone
                    log.warning("%s: out of memory beside other jobs on %s; %d at once there from now on; "
                                "it runs again alone", job.key, w.device, packer.limit[w.device])  # fmt: skip
                    queue.appendleft(job)
                    continue
                packer.finish(job, w.device)
                if result is not None:
                    done(Outcome(**result))
                    continue
                # The worker died holding a job: record it, drop the worker (a new one starts when needed).
                w.proc.join(timeout=10)
                how = _describe_exit(w.proc.exitcode)
                msg = (f"the worker process died ({how}) while running this job"
                       + ("; the system may have run out of memory" if "KILL" in how else ""))  # fmt: skip
                log.warning("%s: %s", job.key, msg)
                done(record_crash(job, store, msg, invocation))
                w.conn.close()
                pool.remove(w)
                packer.workers[w.device] = max(0, packer.workers[w.device] - 1)
    finally:
        for w in pool:
            try:
                if w.proc.is_alive() and w.job is None:
                    w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        deadline = time.time() + 10
        for w in pool:
            if w.job is not None:  # interrupted: stop it now (its claim turns stale, work/ stays)
                w.proc.terminate()
            w.proc.join(timeout=max(0.1, deadline - time.time()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=5)
    if packing is not None:
        packing.events.extend(packer.events)
    return outcomes
