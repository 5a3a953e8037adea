"""Claim files: two runners on one run store never run the same job.

A runner that wants to run a job creates ``<job dir>/claim.json`` with ``O_CREAT | O_EXCL``
(atomic on local file systems and on NFSv3+), holding who it is: host, pid, the process start
time (so a recycled pid is not mistaken for the owner), the boot id, the SLURM job id and a
random token. While the job runs, a heartbeat thread touches the file.

A claim is *stale*, and may be taken over, when its owner cannot be running any more:

- same host: the pid is gone (or a zombie), was reused by another process, or the machine
  rebooted since (another boot id);
- same SLURM array task (the task was requeued after a timeout or preemption);
- another host: the heartbeat is older than the timeout (:data:`DEFAULT_TIMEOUT`, or
  ``$SPLICE_CLAIM_TIMEOUT`` seconds), since a pid on another machine cannot be checked.

Taking over is serialised by a second ``O_EXCL`` file (``claim.json.break``) so that two
runners that both see the same stale claim do not both win.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

CLAIM = "claim.json"
DEFAULT_TIMEOUT = 600.0
"""Seconds without a heartbeat after which a claim from another host counts as stale."""
HEARTBEAT = 30.0
"""Seconds between heartbeats (touching the claim file) while a job runs."""
UNREADABLE_GRACE = 60.0
"""An empty or unreadable claim (its writer died between create and write) is stale after this long."""


def claim_timeout() -> float:
    value = os.environ.get("SPLICE_CLAIM_TIMEOUT")
    return float(value) if value else DEFAULT_TIMEOUT


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a Linux process, or None when unknown."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether process ``pid`` on this host is running (zombies and recycled pids count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    stat = _proc_stat(pid)
    if stat is None:
        # no /proc at all (macOS): trust kill(0); with /proc, the process vanished meanwhile
        return not Path("/proc/self/stat").exists()
    state, ticks = stat
    if state in ("Z", "X"):
        return False
    if start_ticks is not None and ticks != start_ticks:
        return False
    return True


def slurm_task_id() -> str | None:
    """``<array job>_<task>`` (or the plain job id) of the SLURM task this process runs in."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def identity(**extra: Any) -> dict[str, Any]:
    """Who this process is, as written into a claim."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "start_ticks": stat[1] if stat else None,
        "boot_id": _boot_id(),
        "slurm_task": slurm_task_id(),
        "time": time.time(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "token": secrets.token_hex(8),
        **extra,
    }


def stale_reason(holder: dict[str, Any] | None, mtime: float, timeout: float | None = None,
                 now: float | None = None) -> str | None:  # fmt: skip
    """Why the claim of ``holder`` (last touched at ``mtime``) is stale, or None when it is live."""
    now = time.time() if now is None else now
    timeout = claim_timeout() if timeout is None else timeout
    age = now - mtime
    if holder is None:
        return f"unreadable claim {age:.0f} s old" if age > UNREADABLE_GRACE else None
    me = socket.gethostname()
    if holder.get("host") == me:
        boot = _boot_id()
        if holder.get("boot_id") and boot and holder["boot_id"] != boot:
            return f"{me} rebooted since the claim was made"
        pid = int(holder.get("pid") or 0)
        if not pid_alive(pid, holder.get("start_ticks")):
            return f"process {pid} on {me} is not running"
        return None
    task = slurm_task_id()
    if task and holder.get("slurm_task") == task:
        return f"SLURM task {task} was requeued"
    if age > timeout:
        return f"no heartbeat from {holder.get('host')}:{holder.get('pid')} for {age:.0f} s (timeout {timeout:.0f} s)"
    return None


class Claim:
    """The claim on one job folder. ``acquire()`` -> True when this process owns the job."""

    def __init__(self, job_dir: str | os.PathLike, timeout: float | None = None, **extra: Any):
        self.path = Path(job_dir) / CLAIM
        self.timeout = claim_timeout() if timeout is None else timeout
        self.extra = extra
        self.token: str | None = None
        self.blocked_by: dict[str, Any] | None = None  # the live holder when acquire() failed
        self.took_over: dict[str, Any] | None = None  # the stale holder we replaced

    # -- reading --------------------------------------------------------------------------
    def read(self) -> tuple[dict[str, Any] | None, float] | None:
        """(holder or None when unreadable, mtime), or None when there is no claim."""
        try:
            mtime = self.path.stat().st_mtime
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError:
            return (None, time.time())
        try:
            holder = json.loads(text)
            return (holder if isinstance(holder, dict) else None, mtime)
        except ValueError:
            return (None, mtime)

    # -- acquiring ------------------------------------------------------------------------
    def _create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = identity(**self.extra)
        if self.took_over:
            me["took_over"] = {k: self.took_over.get(k) for k in ("host", "pid", "started")}
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(me))
            f.flush()
            os.fsync(f.fileno())
        self.token = me["token"]
        return True

    def _break(self, seen: tuple[dict[str, Any] | None, float]) -> None:
        """Remove the stale claim ``seen`` unless someone else replaced it meanwhile."""
        lock = self.path.with_name(self.path.name + ".break")
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.close(fd)
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime > UNREADABLE_GRACE:
                    lock.unlink()  # a breaker died holding the lock
            except FileNotFoundError:
                pass
            return
        try:
            now = self.read()
            if now is not None and now[0] == seen[0]:
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
        finally:
            try:
                lock.unlink()
            except FileNotFoundError:
                pass

    def acquire(self) -> bool:
        self.blocked_by = None
        for _ in range(4):
            if self._create():
                return True
            seen = self.read()
            if seen is None:
                continue  # released meanwhile: try again
            holder, mtime = seen
            reason = stale_reason(holder, mtime, self.timeout)
            if reason is None:
                self.blocked_by = holder or {"host": "?", "pid": "?", "unreadable": True}
                return False
            log.warning("taking over the claim on %s: %s", self.path.parent, reason)
            self.took_over = holder or {}
            self._break(seen)
        self.blocked_by = (self.read() or ({"host": "?", "pid": "?"}, 0))[0]
        return False

    @property
    def owned(self) -> bool:
        if self.token is None:
            return False
        seen = self.read()
        return bool(seen and seen[0] and seen[0].get("token") == self.token)

    def release(self) -> None:
        """Remove the claim if it is still ours (never someone else's that took it over)."""
        if self.token is None:
            return
        if self.owned:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self.token = None

    @contextmanager
    def heartbeat(self, interval: float | None = None) -> Iterator[None]:
        """Touch the claim every ``interval`` seconds while the body runs."""
        interval = min(HEARTBEAT, self.timeout / 4) if interval is None else interval
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    os.utime(self.path)
                except OSError:
                    return

        t = threading.Thread(target=beat, name="claim-heartbeat", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(timeout=5)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "?"
    return f"{holder.get('host', '?')}:{holder.get('pid', '?')}"
