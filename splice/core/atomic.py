"""Atomic file writes: a temporary file in the same folder, fsync, then rename.

A reader (or a job restarted after ``kill -9``) therefore sees either the old file or the
complete new one, never a half-written file. Works on shared (NFS-like) file systems
because ``os.replace`` within one directory is atomic there too.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0o022)  # read it (the only portable way) and put it back at once
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; results on a shared (SLURM) store must be readable like any
# file the user writes, so the final file gets the mode ``open()`` would have given it.
_FILE_MODE = 0o666 & ~_current_umask()


def _default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call ``write(fileobj)`` on a temporary file and move it to ``path`` when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=False, default=_default, allow_nan=True) + "\n"


def plain(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, paths text), so in-memory equals on-disk."""
    return json.loads(to_json(obj))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj))


def atomic_save_image(path: str | os.PathLike, image, format: str | None = None) -> Path:
    """Save a PIL image atomically; PNG unless the suffix says otherwise."""
    fmt = format or {".jpg": "JPEG", ".jpeg": "JPEG"}.get(Path(path).suffix.lower(), "PNG")
    return atomic_write(path, lambda f: image.save(f, format=fmt))


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


def read_json(path: str | os.PathLike) -> Any:
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)
