"""Atomic writes: all or nothing, and files readable like any other the user writes."""

from __future__ import annotations

import os
import stat

import pytest

from splice.core.atomic import atomic_write, atomic_write_json, read_json


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "record.json"
    atomic_write_json(target, {"status": "ok", "n": 1})

    def crash(f):
        f.write(b'{"status": "partial"')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert read_json(target) == {"status": "ok", "n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        import importlib

        import splice.core.atomic as atomic

        importlib.reload(atomic)  # the mode is read from the umask at import
        atomic.atomic_write_json(tmp_path / "a.json", {})
        with open(tmp_path / "b.json", "w") as f:  # what plain open() gives, for comparison
            f.write("{}")
    finally:
        os.umask(old)
        importlib.reload(atomic)
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o644
