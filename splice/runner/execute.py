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
skips jobs another runner holds or that are already done. A record it is about to replace that is
not a plain failure (a corrupt ``record.json``, an ``ok`` record whose output is gone) is set aside
first (:meth:`~splice.core.store.RunStore.set_aside_record`), never silently overwritten. A job that
ends ok keeps only what a user needs (output, record, log): its ``work/`` folder (checkpoints,
scratch) is removed unless the bench was asked to keep it (``--keep-work``).
"""

from __future__ import annotations

import gc
import logging
import random
import shutil
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from splice.core.atomic import atomic_save_image, atomic_write_text
from splice.core.claims import Claim, describe_holder
from splice.core.errors import UserError
from splice.core.imageio import sha256_file
from splice.core.record import NOT_APPLICABLE, JobKey, JobRecord, make_record
from splice.core.resources import measure, now
from splice.core.store import WORK, RunStore
from splice.runner.jobs import Job, create_method

log = logging.getLogger(__name__)

OOM_LADDER: tuple[int, ...] = (1024, 768, 512, 384)
"""``max_side`` values tried in turn after an out-of-memory error on an accelerator (native first)."""

TRACEBACK = "traceback.txt"
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


def free_accelerator() -> None:
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
class SharedOutOfMemory(Exception):
    """Out of memory on an accelerator shared with other jobs (``requeue_oom``): no record is written;
    the launcher lowers the device's concurrency and runs the job again (:mod:`splice.runner.packing`)."""


def run_job(job: Job, store: RunStore, device: str = "cpu", invocation: dict[str, Any] | None = None,
            ladder: tuple[int, ...] = OOM_LADDER, requeue_oom: bool = False) -> JobRecord:  # fmt: skip
    """Run ``job`` on ``device`` and write its output and record into ``store``. Returns the record.

    The caller must hold the job's claim (see :func:`execute`). Never raises for a failure of
    the method; KeyboardInterrupt and SystemExit pass through (no record is written then), and so
    does :class:`SharedOutOfMemory` when ``requeue_oom`` (the job shares the device: instead of the
    ladder, the launcher runs it again with fewer neighbours).
    """
    key = job.key
    job_dir = store.job_dir(key)
    job_dir.mkdir(parents=True, exist_ok=True)
    started = now()
    attempts: list[dict[str, Any]] = []
    result = None
    error: BaseException | None = None
    error_tb = ""
    max_side = job.settings.get("max_side")
    method = None
    native_short: int | None = None
    t_total = time.perf_counter()
    create_error: Exception | None = None
    try:
        method = create_method(job)
    except Exception as e:  # recorded below, as the first attempt's failure (the constructor is not run twice)
        method, create_error = None, e
    if method is not None and device.split(":")[0] not in method.devices and "cpu" in method.devices:
        # a CPU-only method (reinhard, histogram) given a GPU worker runs on the worker's CPU
        log.info("%s: %s runs on the CPU only; running it there instead of %s", key, key.method, device)
        device = "cpu"
    while True:
        # the planned resolution resumes from work/; a lowered rung keeps its own checkpoint
        workdir = job_dir / WORK
        if max_side != job.settings.get("max_side"):
            workdir = workdir / f"max_side-{max_side}"
        settings = job.run_settings(device, workdir, max_side)
        with measure(device) as m:
            try:
                if method is None:
                    raise create_error
                if device.split(":")[0] not in method.devices:
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
        oom = error is not None and is_oom(error)
        attempts.append({"max_side": max_side, "error": one_line(error) if error else None,
                         "seconds": round(m.seconds, 3), "peak_memory_mb": m.peak_memory_mb})  # fmt: skip
        if error is None or not oom or not is_accelerator(device):
            break
        # Out of memory on an accelerator: drop the exception (its traceback holds tensors), free, go lower.
        error_type, error_msg = type(error).__name__, one_line(error)
        error = None
        free_accelerator()
        if requeue_oom:
            raise SharedOutOfMemory(error_msg)
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
    geometry = None
    if error is None:
        try:
            atomic_save_image(store.output_path(key), result.image)  # the output first, the record last
            geometry = result.geometry.to_dict()
            (job_dir / TRACEBACK).unlink(missing_ok=True)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - e.g. a full disk
            error, error_tb = e, traceback.format_exc()
    if error is not None and error_tb:
        try:
            atomic_write_text(job_dir / TRACEBACK, error_tb)
        except OSError:
            pass
    failure = error.message if isinstance(error, _Failure) else (one_line(error) if error is not None else None)
    record = make_record(
        key, status="ok" if error is None else "failed", pair={**job.pair.to_dict(), "manifest": job.manifest},
        inputs=_inputs_record(job, info), config=job.config,
        settings={**job.settings, "device": device, "max_side": max_side}, output=store.output_path(key).name,
        geometry=geometry, info=info, measurement=m, seconds_total=time.perf_counter() - t_total, device=device,
        max_side=max_side, attempts=attempts, error=failure,
        error_type=(error.error_type if isinstance(error, _Failure) else type(error).__name__) if error else None,
        invocation=invocation, started=started,
    )  # fmt: skip
    store.write_record(key, record)
    return record


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
    state: str  # done | failed | skipped | skipped-failed | claimed | oom (shared device; run it again)
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


def keep_work_of(invocation: dict[str, Any] | None) -> bool:
    """Whether the bench invocation asked to keep the work folders of finished jobs (``--keep-work``)."""
    return bool(((invocation or {}).get("settings") or {}).get("keep_work", False))


def _set_aside_unusable(store: RunStore, key: JobKey) -> None:
    """Before a job runs again: a corrupt record, or an ok record whose output is gone, is renamed, not overwritten."""
    rec, problem = store.load_record(key)
    if problem is not None:
        store.set_aside_record(key, "corrupt")
    elif rec is not None and rec.ok and not store.output_path(key).exists():
        store.set_aside_record(key, "output-missing")


def remove_work(job_dir: Path) -> None:
    """Remove a finished job's scratch folder (checkpoints, copies of inputs); a failure to do so is only logged."""
    work = job_dir / WORK
    try:
        shutil.rmtree(work)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("could not remove %s: %s", work, e)


def execute(job: Job, store: RunStore, device: str = "cpu", invocation: dict[str, Any] | None = None,
            retry_failed: bool = False, ladder: tuple[int, ...] = OOM_LADDER, requeue_oom: bool = False,
            keep_work: bool | None = None) -> Outcome:  # fmt: skip
    """Claim ``job``, run it unless it is done (or failed and not retried), release the claim.

    With ``requeue_oom``, an out-of-memory error on an accelerator is the outcome ``oom`` (no record).
    ``keep_work``: keep the job's ``work/`` when it ends ok (default: what the invocation's settings say,
    ``keep_work``; else removed)."""
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
        if rec and rec.status == "failed" and not retry_failed:
            return Outcome(key.to_dict(), "skipped-failed", error=rec.error)
        _clean_partial_writes(store.job_dir(key))
        _set_aside_unusable(store, key)
        try:
            with claim.heartbeat():
                record = run_job(job, store, device, invocation, ladder, requeue_oom)
        except SharedOutOfMemory as e:
            log.warning("%s: %s beside other jobs on %s; it will run again", key, e, device)
            return Outcome(key.to_dict(), "oom", error=str(e))
        state = "done" if record.ok else "failed"
        if record.ok and not (keep_work if keep_work is not None else keep_work_of(invocation)):
            remove_work(store.job_dir(key))
        if state == "failed":
            log.warning("failed: %s: %s", key, record.error)
        else:
            log.info("done: %s (%.1f s)", key, record.seconds)
        return Outcome(key.to_dict(), state, seconds=record.seconds, error=record.error, max_side=record.max_side)
    finally:
        claim.release()


def record_not_applicable(job: Job, store: RunStore, invocation: dict[str, Any] | None = None) -> JobRecord:
    """Write the ``not-applicable`` record of a job whose method does not apply to its data set (unless it is
    there already). Nothing runs; the record says why, so status, tables and grids can show it as such."""
    existing = store.read_record(job.key)
    if existing is not None and existing.status == NOT_APPLICABLE:
        return existing
    record = make_record(job.key, status=NOT_APPLICABLE, pair={**job.pair.to_dict(), "manifest": job.manifest},
                         config=job.config, settings=job.settings, error=job.not_applicable,
                         info={"not_applicable": job.not_applicable}, invocation=invocation)  # fmt: skip
    store.write_record(job.key, record)
    return record


def record_crash(job: Job, store: RunStore, message: str, invocation: dict[str, Any] | None = None) -> Outcome:
    """Write a failed record for a job whose worker process died (after taking over its stale claim)."""
    key = job.key
    claim = Claim(store.job_dir(key), invocation=(invocation or {}).get("id"), job=str(key))
    if not claim.acquire():
        return Outcome(key.to_dict(), "claimed", holder=describe_holder(claim.blocked_by))
    try:
        if store.is_done(key):
            return Outcome(key.to_dict(), "done")
        record = make_record(key, status="failed", pair={**job.pair.to_dict(), "manifest": job.manifest},
                             config=job.config, settings=job.settings, error=message, error_type="WorkerDied",
                             invocation=invocation)  # fmt: skip
        store.write_record(key, record)
        return Outcome(key.to_dict(), "failed", error=message)
    finally:
        claim.release()
