"""Every command checks that it can write where it will write before any work (splice.core.paths)."""

from __future__ import annotations

import errno

import pytest

from splice.core.errors import UserError
from splice.core.paths import ensure_writable_dir, ensure_writable_file


def test_creates_and_probes_a_folder(tmp_path):
    out = ensure_writable_dir(tmp_path / "a" / "b", "--out")
    assert out.is_dir() and list(out.iterdir()) == []  # the probe file is gone


def test_a_file_is_not_a_folder(tmp_path):
    f = tmp_path / "README.md"
    f.write_text("x")
    with pytest.raises(UserError) as e:
        ensure_writable_dir(f, "--out")
    assert str(e.value) == f"--out {f} is a file, not a folder; choose a folder"
    with pytest.raises(UserError, match=rf"--dest {f / 'sub'}: {f} is a file, not a folder"):
        ensure_writable_dir(f / "sub", "--dest")
    with pytest.raises(UserError, match="is a folder; give a file name"):
        ensure_writable_file(tmp_path, "--save")


def test_immutable_folder(locked_dir):
    with pytest.raises(UserError) as e:
        ensure_writable_dir(locked_dir, "--out")
    assert (
        str(e.value) == f"--out {locked_dir} is not writable (the folder is immutable or not ours); "
        "choose a writable folder"
    )
    with pytest.raises(UserError, match=r"cannot be created \(the folder is immutable or not ours\)"):
        ensure_writable_dir(locked_dir / "run", "--out")


def test_read_only_file_system_is_named(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open

    def ro_open(path, *a, **k):
        if ".splice-write-test-" in str(path):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", ro_open)
    with pytest.raises(UserError, match=r"--out .* is not writable \(the file system is read-only\)"):
        ensure_writable_dir(tmp_path, "--out")


def test_missing_folder_without_create(tmp_path):
    with pytest.raises(UserError, match=r"--root .*nope does not exist"):
        ensure_writable_dir(tmp_path / "nope", "--root", create=False)

