"""``runs/NAME/run.json``: one entry per ``splice bench`` invocation.

Each entry holds the command line, the resolved settings, the manifests used (name, version,
SHA-256), the git commit of the code (when it is a git checkout), host, start and end time and
the summary counts. The entry is appended when the invocation starts (so a killed run is still
on file) and completed when it ends. Appends from concurrent runners are serialised by an
``O_EXCL`` lock file next to ``run.json``.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from splice.core.atomic import atomic_write_json, read_json
from splice.core.store import RUN_JSON, RunStore

log = logging.getLogger(__name__)

LOCK_STALE = 30.0


def git_info(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``{"sha", "dirty"}`` of the git checkout holding the code, or None."""
    here = Path(path) if path else Path(__file__).resolve().parents[2]
    if not (here / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)  # fmt: skip
        return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


@contextmanager
def _locked(path: Path, timeout: float = 60.0) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.close(fd)
            break
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime > LOCK_STALE:
                    lock.unlink()  # a writer died holding it (writes take milliseconds)
                    continue
            except FileNotFoundError:
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not lock {lock}; remove it if no runner is writing") from None
            time.sleep(0.05)
    try:
        yield
    finally:
        try:
            lock.unlink()
        except FileNotFoundError:
            pass


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"schema": 1, "invocations": []}
    try:
        data = read_json(path)
    except (OSError, ValueError):
        # keep the unreadable file for inspection (never overwritten), say so, and start a new log
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside, n = path.with_name(f"run.corrupt-{stamp}.json"), 1
        while aside.exists():
            n += 1
            aside = path.with_name(f"run.corrupt-{stamp}-{n}.json")
        path.rename(aside)
        log.warning("%s is not readable JSON; set aside as %s, and a new run log begins (the jobs' own records "
                    "are untouched)", path, aside.name)  # fmt: skip
        return {"schema": 1, "invocations": []}
    if isinstance(data, list):  # tolerate a bare list
        data = {"schema": 1, "invocations": data}
    data.setdefault("invocations", [])
    return data


def new_invocation(settings: dict[str, Any], manifests: list[dict[str, Any]],
                   argv: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "id": time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3),
        "command": list(sys.argv if argv is None else argv),
        "cwd": os.getcwd(),
        "settings": settings,
        "manifests": manifests,
        "git": git_info(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "finished": None,
        "summary": None,
    }


def append_invocation(run_dir: str | os.PathLike, entry: dict[str, Any]) -> None:
    path = Path(run_dir) / RUN_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        data = _read(path)
        data["invocations"].append(entry)
        atomic_write_json(path, data)


def finish_invocation(run_dir: str | os.PathLike, entry_id: str, summary: dict[str, Any]) -> None:
    path = Path(run_dir) / RUN_JSON
    with _locked(path):
        data = _read(path)
        for e in data["invocations"]:
            if e.get("id") == entry_id:
                e["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                e["summary"] = summary
                break
        atomic_write_json(path, data)


def read_invocations(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return RunStore(run_dir).invocations()
