"""The one conftest: tiny synthetic inputs, the dummy methods, a run-store factory. No network, no real weights.

Helpers that are not fixtures live in ``tests/support/`` (a package of helpers, not of tests); no test
module imports another test module.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import PAPER_DATA
from tests.support.images import make_image

# Two cores on the reference machine: keep every test single-threaded and deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass



@pytest.fixture
def tiny_pair(tmp_path) -> tuple[Path, Path]:
    """A 96x80 structure image and a 72x72 appearance image as PNG files."""
    s = tmp_path / "inputs" / "structure.png"
    a = tmp_path / "inputs" / "appearance.png"
    s.parent.mkdir(parents=True)
    make_image(96, 80, seed=1).save(s)
    make_image(72, 72, seed=2).save(a)
    return s, a


@pytest.fixture
def paper_data() -> Path:
    if not PAPER_DATA.exists():
        pytest.skip("../shared/data/paper is absent")
    return PAPER_DATA


@pytest.fixture
def locked_dir(tmp_path):
    """A folder nobody (root included) can write into: ``chattr +i``; skipped where that is not allowed."""
    import shutil
    import subprocess

    folder = tmp_path / "locked"
    folder.mkdir()
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=False)


@pytest.fixture
def dummies(monkeypatch):
    """The dummy methods (``dummy``, ``nomaxside``, ``cudaonly``) registered and importable in workers."""
    from tests.support import dummies as d

    d.register()
    d.ensure_importable(monkeypatch)
    return d


@pytest.fixture
def run_store(tmp_path):
    """A factory of synthetic run stores: ``run_store.add(dataset, pair, method, **record fields)``."""
    from tests.support.store import write_job

    class Factory:
        root = tmp_path / "run"

        def add(self, dataset: str, pair_id: str, method: str, **kw):
            return write_job(self.root, dataset, pair_id, method, **kw)

    return Factory()
