"""The one conftest: tiny synthetic inputs, the dummy methods, a run-store factory, a one-node SLURM.
No network, no real weights.

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
    """The dummy methods (``dummy``, ``nomaxside``, ``cudaonly``, ``cpuonly``, ``picky``), importable in workers."""
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


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM (munged, slurmctld, slurmd) in a temporary folder for the whole session, stopped
    by process id at the end; tests using it skip with the reason when SLURM, munge or root is missing."""
    from tests.support.slurm import SlurmCluster, slurm_available

    reason = slurm_available()
    if reason:
        pytest.skip(reason)
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture
def slurm(slurm_cluster, dummies, monkeypatch):
    """The session's cluster, with sbatch/squeue/submitit of this test pointed at it and the dummy
    methods importable in its array tasks (they inherit PYTHONPATH); its jobs are cancelled afterwards."""
    from tests.support.slurm import FOREIGN_ENV

    for name in [k for k in os.environ if k.startswith(FOREIGN_ENV)]:
        monkeypatch.delenv(name)  # the tests may run inside a SLURM job of a real cluster
    for name, value in slurm_cluster.client_env.items():
        monkeypatch.setenv(name, value)
    yield slurm_cluster
    slurm_cluster.cancel_all()
