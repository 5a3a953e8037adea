"""Where things live (weights, caches) and whether a place can be written.

Every command checks, before any work, that it can write where it will write
(:func:`ensure_writable_dir`): a read-only mount, an immutable folder (``chattr +i``) or a
file where a folder should be is one line naming the option, not a traceback an hour later.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from splice.core.errors import UserError


def weights_dir() -> Path:
    """Where local weight files are looked for: ``$SPLICE_WEIGHTS_DIR`` or ``~/.cache/splice-bench/weights``."""
    return Path(os.environ.get("SPLICE_WEIGHTS_DIR") or Path.home() / ".cache" / "splice-bench" / "weights")


def cache_dir() -> Path:
    """Where feature caches live: ``$SPLICE_CACHE_DIR`` or ``~/.cache/splice-bench``."""
    return Path(os.environ.get("SPLICE_CACHE_DIR") or Path.home() / ".cache" / "splice-bench")


def _why(e: OSError) -> str:
    return {errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "the folder is immutable or not ours", errno.ENOSPC: "the disk is full",
            errno.EDQUOT: "the disk quota is exceeded"}.get(e.errno, e.strerror or type(e).__name__)  # fmt: skip


def ensure_writable_dir(path: str | os.PathLike, option: str = "--out", create: bool = True) -> Path:
    """``path`` as a folder this process can write into (created when ``create``), or a one-line
    :class:`UserError` naming ``option``. Writes and removes one hidden probe file."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file, not a folder; choose a folder")
    first_missing = next((p for p in [path, *path.parents] if p.exists()), None)
    if first_missing is not None and not first_missing.is_dir():
        raise UserError(f"{option} {path}: {first_missing} is a file, not a folder")
    if not path.exists():
        if not create:
            raise UserError(f"{option} {path} does not exist")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{option} {path} cannot be created ({_why(e)}); choose a writable folder") from None
    probe = path / f".splice-write-test-{secrets.token_hex(4)}"
    try:
        with open(probe, "wb") as f:
            f.write(b"ok")
    except OSError as e:
        raise UserError(f"{option} {path} is not writable ({_why(e)}); choose a writable folder") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return path


def ensure_writable_file(path: str | os.PathLike, option: str) -> Path:
    """A file path whose folder can be written (the file itself may exist; it is replaced atomically)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file name")
    ensure_writable_dir(path.parent if str(path.parent) else Path("."), option=option)
    return path
