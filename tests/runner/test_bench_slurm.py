"""The SLURM launcher through submitit's local executor: a job array writing into one run store."""

from __future__ import annotations

import json
import pickle
from collections import Counter

import pytest

submitit = pytest.importorskip("submitit")

from splice.core.store import RunStore  # noqa: E402
from splice.data.manifests import load_manifest  # noqa: E402
from splice.runner import LaunchOptions, PlanRequest, SlurmOptions, bench, plan_jobs  # noqa: E402
from splice.runner.slurm import BenchTask  # noqa: E402
from tests.support.dummies import events, make_dataset, register  # noqa: E402

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _dummies(monkeypatch):
    from tests.support.dummies import ensure_importable

    ensure_importable(monkeypatch)
    register()


def test_job_array_through_submitit_local_executor(tmp_path):
    root, manifest = make_dataset(tmp_path, 3)
    log = tmp_path / "events.log"
    req = PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke",
                      options={"dummy": {"log": str(log), "fail_on": "p2"}})  # fmt: skip
    out = tmp_path / "run"
    opts = SlurmOptions(cluster="local", jobs_per_task=2, time_min=5, cpus_per_task=1, gpus_per_task=0)
    launch = LaunchOptions(out=out, devices=["cpu"], launcher="slurm", slurm=opts, wait=True, progress=False)
    summary = bench(req, launch)
    assert len(summary.submitted) == 2  # 3 jobs, 2 per array task
    assert (summary.done, summary.failed) == (2, 1)
    store = RunStore(out)
    jobs = plan_jobs(req)
    assert [store.read_record(j.key).status for j in jobs] == ["ok", "ok", "failed"]
    assert store.read_record(jobs[0].key).device == "cpu"
    assert Counter(p for e, p in events(log) if e == "end") == {"p0": 1, "p1": 1}
    assert (out / "slurm").is_dir() and not list(out.rglob("claim.json"))
    inv = json.loads((out / "run.json").read_text())["invocations"][0]
    assert inv["settings"]["launcher"] == "slurm" and inv["settings"]["slurm"]["jobs_per_task"] == 2
    # resubmitting submits nothing: the ok jobs are skipped, the failed one is not retried
    again = bench(req, LaunchOptions(out=out, devices=["cpu"], launcher="slurm", slurm=opts, progress=False))
    assert again.submitted == [] and (again.skipped, again.failed_before) == (2, 1)


def test_task_is_picklable_and_requeues_itself(tmp_path):
    task = BenchTask(str(tmp_path), {"id": "x"}, retry_failed=False, device="cpu")
    clone = pickle.loads(pickle.dumps(task))
    assert clone.store_root == str(tmp_path) and clone.device == "cpu"
    delayed = task.checkpoint([{"key": "chunk"}])
    assert delayed.function is task and delayed.args == ([{"key": "chunk"}],)


FAKE_SBATCH = """#!/bin/sh
for last; do :; done
cp "$last" "{dest}"
echo "Submitted batch job 4242"
"""


def test_sbatch_script_for_a_real_cluster(tmp_path, monkeypatch):
    """On a login node (faked: srun and sbatch on PATH) the array is one sbatch call with our parameters."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.format(dest=tmp_path / "submitted.sh"))
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    root, manifest = make_dataset(tmp_path, 3)
    req = PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke")
    opts = SlurmOptions(partition="gpu", time_min=90, gpus_per_task=2, cpus_per_task=4, mem_gb=32, account="lab",
                        array_parallelism=8)  # fmt: skip
    summary = bench(req, LaunchOptions(out=tmp_path / "run", launcher="slurm", slurm=opts, wait=False, progress=False))
    assert summary.submitted == ["4242_0", "4242_1", "4242_2"] and summary.done == 0
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-task=2",
                 "#SBATCH --cpus-per-task=4", "#SBATCH --mem=32GB", "#SBATCH --account=lab", "#SBATCH --array=0-2%3",
                 "#SBATCH --job-name=splice-bench"):
        assert line in script, line
    # the jobs are planned on disk (job.json) and pending until the array runs them
    assert (tmp_path / "run" / "jobs.csv").read_text().count(",pending,") == 3
