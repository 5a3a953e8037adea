"""The ``splice`` command line run in this process (seconds faster than a subprocess, which imports torch anew)."""

from __future__ import annotations

import pytest

from splice.cli import main


def invoke(capsys, *argv) -> tuple[int, str, str]:
    """``splice ARGV`` in this process, through :func:`splice.cli.main` (one-line errors, exit codes): (exit code,
    stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    got = capsys.readouterr()
    return int(e.value.code or 0), got.out, got.err
