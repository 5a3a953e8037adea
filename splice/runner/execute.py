"""Running one benchmark job: time it, measure its peak memory, retry lower on OOM, record it.

:func:`run_job` calls the method, then writes ``output.png`` and *then* ``record.json``, both
atomically (temporary file, fsync, rename), so a job killed at any moment never leaves an
``ok`` record without its output. Any exception becomes a ``failed`` record with a one-line
error and the error type (the traceback goes to ``traceback.txt``); the other jobs go on.

Out of memory on an accelerator (``torch.OutOfMemoryError``) retries the job with a lower
``RunSettings.max_side`` from :data:`OOM_LADDER` (the structure image's shorter side, in
pixels), skipping rungs at or above the image's own size. The record lists every attempt and
says which ``max_side`` produced the result (``None`` = native resolution). Users of the
reference Splice code hit this on 8 GB GPUs and downscaled by hand.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset per attempt); on a Linux CPU
the process's peak resident set (``VmHWM``), reset per job by writing ``5`` to
``/proc/self/clear_refs``; elsewhere the process-lifetime ``ru_maxrss`` (said so in the record).
The peak includes what the worker already held when the job started (imported libraries,
caches); that amount is recorded beside it as ``peak_memory_baseline_mb``.

:func:`execute` wraps :func:`run_job` in the job's claim (:mod:`splice.core.claims`) and
skips jobs another runner holds or that are already done.
"""

from __future__ import annotations

import gc
import logging
import os
import platform
import random
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from splice.core.atomic import atomic_save_image, atomic_write_text
from splice.core.errors import UserError
from splice.core.imageio import sha256_file
from splice.core.store import JobKey, RunStore
from splice.core.claims import Claim, describe_holder
from splice.runner.jobs import Job, create_method

log = logging.getLogger(__name__)

OOM_LADDER: tuple[int, ...] = (1024, 768, 512, 384)
"""``max_side`` values tried in turn after an out-of-memory error on an accelerator (native first)."""

TRACEBACK = "traceback.txt"
WORK = "work"
MAX_ERROR_CHARS = 500


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def one_line(e: BaseException) -> str:
    """The one-line error of a record: UserErrors as written, others prefixed with their type."""
    msg = " ".join(str(e).split())
    if not isinstance(e, UserError):
        msg = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return msg if len(msg) <= MAX_ERROR_CHARS else msg[: MAX_ERROR_CHARS - 3] + "..."


def is_oom(e: BaseException) -> bool:
    torch = sys.modules.get("torch")
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom_type is not None and isinstance(e, oom_type):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and "out of memory" in text and ("cuda" in text or "mps" in text)


def is_accelerator(device: str) -> bool:
    return device.split(":")[0] in ("cuda", "mps")


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("splice-bench", "torch", "torchvision", "timm", "numpy", "pillow"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class PeakMemory:
    """Peak memory of one job attempt in MB (see the module docstring for what is measured)."""

    def __init__(self, device: str):
        self.device = device
        self.kind = "none"
        self.baseline_mb: float | None = None  # what the process already held when the attempt started
        torch = sys.modules.get("torch")
        if device.startswith("cuda") and torch is not None and torch.cuda.is_available():
            self.kind = "cuda_max_allocated"
        elif Path("/proc/self/clear_refs").exists():
            self.kind = "rss_peak"
        else:
            self.kind = "ru_maxrss_process"

    def reset(self) -> None:
        if self.kind == "cuda_max_allocated":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_mb = torch.cuda.memory_allocated(self.device) / 2**20
        elif self.kind == "rss_peak":
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM to the current RSS
                self.baseline_mb = self._status_mb("VmRSS:")
            except OSError:
                self.kind = "ru_maxrss_process"

    @staticmethod
    def _status_mb(field: str) -> float | None:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
        return None

    def read_mb(self) -> float | None:
        try:
            if self.kind == "cuda_max_allocated":
                import torch

                return torch.cuda.max_memory_allocated(self.device) / 2**20
            if self.kind == "rss_peak":
                return self._status_mb("VmHWM:")
            import resource

            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, kB on Linux
        except Exception:  # measuring must never fail a job
            return None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def _free_accelerator() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _short_side(path: Path) -> int | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return min(im.size)
    except Exception:
        return None


def next_rung(current: int | None, native_short: int | None, ladder: tuple[int, ...] = OOM_LADDER) -> int | None:
    """The next ``max_side`` to try after an OOM at ``current`` (None = native), or None when exhausted."""
    limit = current if current is not None else native_short
    for rung in ladder:
        if limit is None or rung < limit:
            return rung
    return None


def _inputs_record(job: Job, info: dict[str, Any]) -> dict[str, Any]:
    given = info.get("inputs") if isinstance(info.get("inputs"), dict) else {}
    out = {}
    for role in ("structure", "appearance"):
        path = getattr(job.pair, role)
        rec = dict(given.get(role) or {})
        rec["path"] = str(path)
        try:
            rec["sha256"] = sha256_file(path)
        except OSError:
            rec["sha256"] = None
        out[role] = rec
    return out


# --------------------------------------------------------------------------------------
# one job
# --------------------------------------------------------------------------------------
def run_job(job: Job, store: RunStore, device: str = "cpu", invocation: dict[str, Any] | None = None,
            ladder: tuple[int, ...] = OOM_LADDER) -> dict[str, Any]:  # fmt: skip
    """Run ``job`` on ``device`` and write its output and record into ``store``. Returns the record.

    The caller must hold the job's claim (see :func:`execute`). Never raises for a failure of
    the method; KeyboardInterrupt and SystemExit pass through (no record is written then).
    """
    key = job.key
    job_dir = store.job_dir(key)
    job_dir.mkdir(parents=True, exist_ok=True)
    started = _now()
    attempts: list[dict[str, Any]] = []
    result = None
    error: BaseException | None = None
    error_tb = ""
    peak: float | None = None
    seconds = 0.0
    max_side = job.settings.get("max_side")
    mem = PeakMemory(device)
    method = None
    native_short: int | None = None
    t_total = time.perf_counter()
    while True:
        # the planned resolution resumes from work/; a lowered rung keeps its own checkpoint
        workdir = job_dir / WORK
        if max_side != job.settings.get("max_side"):
            workdir = workdir / f"max_side-{max_side}"
        settings = job.run_settings(device, workdir, max_side)
        oom = False
        mem.reset()
        t0 = time.perf_counter()
        try:
            if method is None:
                method = create_method(job)
            if device.split(":")[0] not in method.devices and device.split(":")[0] not in ("auto",):
                raise UserError(f"method {key.method} does not run on {device} "
                                f"(it supports {', '.join(method.devices)}); choose another --devices")  # fmt: skip
            _seed_everything(settings.seed)
            result = method.run(job.pair, settings)
            _check_result(result)
            error = None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - every method failure becomes a record
            error, error_tb = e, traceback.format_exc()
            oom = is_oom(e)
        seconds = time.perf_counter() - t0
        peak = mem.read_mb()
        attempts.append({"max_side": max_side, "error": one_line(error) if error else None,
                         "seconds": round(seconds, 3), "peak_memory_mb": peak})  # fmt: skip
        if error is None or not oom or not is_accelerator(device):
            break
        # Out of memory on an accelerator: drop the exception (its traceback holds tensors), free, go lower.
        error_type, error_msg = type(error).__name__, one_line(error)
        error = None
        _free_accelerator()
        if not getattr(method, "supports_max_side", False):
            why = "the method cannot lower its resolution: supports_max_side=False"
            error = _Failure(error_type, f"{error_msg} ({why})")
            break
        if native_short is None:
            native_short = _short_side(job.pair.structure)
        rung = next_rung(max_side, native_short, ladder)
        if rung is None:
            why = f"out of memory at every rung of the ladder down to max_side {max_side}"
            error = _Failure(error_type, f"{error_msg} ({why})")
            break
        log.warning("%s: out of memory at max_side %s; retrying at %d", key, max_side or "native", rung)
        max_side = rung

    info = dict(result.info) if (result is not None and error is None and isinstance(result.info, dict)) else {}
    record: dict[str, Any] = {
        "status": "failed",
        "pair": {**job.pair.to_dict(), "manifest": job.manifest},
        "inputs": _inputs_record(job, info),
        "config": job.config,
        "settings": {**job.settings, "device": device, "max_side": max_side},
        "output": None,
        "geometry": None,
        "random_weights": bool(info.get("random_weights", False)),
        "weights": info.get("weights"),
        "seconds": round(seconds, 3),
        "seconds_total": round(time.perf_counter() - t_total, 3),
        "peak_memory_mb": round(peak, 1) if peak is not None else None,
        "peak_memory_kind": mem.kind,
        "peak_memory_baseline_mb": round(mem.baseline_mb, 1) if mem.baseline_mb is not None else None,
        "device": device,
        "max_side": max_side,
        "attempts": attempts,
        "info": info,
        "error": None,
        "error_type": None,
        "versions": versions(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "invocation": (invocation or {}).get("id"),
        "git": (invocation or {}).get("git"),
        "started": started,
        "finished": None,
    }
    if error is None:
        try:
            atomic_save_image(store.output_path(key), result.image)  # the output first, the record last
            record.update(status="ok", output=store.output_path(key).name, geometry=result.geometry.to_dict())
            tb = job_dir / TRACEBACK
            if tb.exists():
                tb.unlink()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - e.g. a full disk
            error, error_tb = e, traceback.format_exc()
    if error is not None:
        record.update(status="failed", error=error.message if isinstance(error, _Failure) else one_line(error),
                      error_type=error.error_type if isinstance(error, _Failure) else type(error).__name__)  # fmt: skip
        if error_tb:
            try:
                atomic_write_text(job_dir / TRACEBACK, error_tb)
            except OSError:
                pass
    record["finished"] = _now()
    store.write_record(key, record)
    return {"schema": record.get("schema", 1), **record, "job": key.to_dict()}


class _Failure(Exception):
    """A failure the ladder decided on (the original exception is gone)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _check_result(result: Any) -> None:
    from splice.core.method import MethodResult

    if not isinstance(result, MethodResult):
        raise TypeError(f"the method returned {type(result).__name__}, not a MethodResult")
    if tuple(result.image.size) != tuple(result.geometry.output):
        raise ValueError(f"the output is {result.image.size[0]}x{result.image.size[1]} but its geometry says "
                         f"{result.geometry.output[0]}x{result.geometry.output[1]}")  # fmt: skip
    if result.image.mode != "RGB":
        result.image = result.image.convert("RGB")


# --------------------------------------------------------------------------------------
# claimed execution
# --------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What happened to one job in one invocation."""

    key: dict[str, Any]
    state: str  # done | failed | skipped | skipped-failed | claimed
    seconds: float | None = None
    error: str | None = None
    max_side: int | None = None
    holder: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def job_key(self) -> JobKey:
        return JobKey.from_dict(self.key)


def _clean_partial_writes(job_dir: Path) -> None:
    """Remove temporary files a killed writer left (``.output.png.*.tmp``); never touches work/."""
    if not job_dir.is_dir():
        return
    for p in job_dir.glob(".*.tmp"):
        try:
            p.unlink()
        except OSError:
            pass


def execute(job: Job, store: RunStore, device: str = "cpu", invocation: dict[str, Any] | None = None,
            retry_failed: bool = False, ladder: tuple[int, ...] = OOM_LADDER) -> Outcome:  # fmt: skip
    """Claim ``job``, run it unless it is done (or failed and not retried), release the claim."""
    key = job.key
    if store.is_done(key):
        return Outcome(key.to_dict(), "skipped")
    claim = Claim(store.job_dir(key), invocation=(invocation or {}).get("id"), job=str(key))
    if not claim.acquire():
        return Outcome(key.to_dict(), "claimed", holder=describe_holder(claim.blocked_by))
    try:
        # Another runner may have finished it between our check and our claim.
        rec = store.read_record(key)
        if store.is_done(key):
            return Outcome(key.to_dict(), "skipped")
        if rec and rec.get("status") == "failed" and not retry_failed:
            return Outcome(key.to_dict(), "skipped-failed", error=rec.get("error"))
        _clean_partial_writes(store.job_dir(key))
        with claim.heartbeat():
            record = run_job(job, store, device, invocation, ladder)
        state = "done" if record["status"] == "ok" else "failed"
        if state == "failed":
            log.warning("failed: %s: %s", key, record["error"])
        else:
            log.info("done: %s (%.1f s)", key, record["seconds"])
        return Outcome(key.to_dict(), state, seconds=record["seconds"], error=record["error"],
                       max_side=record["max_side"])  # fmt: skip
    finally:
        claim.release()


def record_crash(job: Job, store: RunStore, message: str, invocation: dict[str, Any] | None = None) -> Outcome:
    """Write a failed record for a job whose worker process died (after taking over its stale claim)."""
    key = job.key
    claim = Claim(store.job_dir(key), invocation=(invocation or {}).get("id"), job=str(key))
    if not claim.acquire():
        return Outcome(key.to_dict(), "claimed", holder=describe_holder(claim.blocked_by))
    try:
        if store.is_done(key):
            return Outcome(key.to_dict(), "done")
        record = {
            "status": "failed", "pair": {**job.pair.to_dict(), "manifest": job.manifest}, "config": job.config,
            "settings": job.settings, "output": None, "geometry": None, "random_weights": False, "weights": None,
            "seconds": None, "peak_memory_mb": None, "attempts": [], "info": {}, "error": message,
            "error_type": "WorkerDied", "versions": versions(), "host": socket.gethostname(),
            "invocation": (invocation or {}).get("id"), "finished": _now(),
        }  # fmt: skip
        store.write_record(key, record)
        return Outcome(key.to_dict(), "failed", error=message)
    finally:
        claim.release()
