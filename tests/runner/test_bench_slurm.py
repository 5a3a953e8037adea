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


FAKE_SQUEUE = """#!/bin/sh
cat "{states}"
"""


def fake_squeue(tmp_path, monkeypatch, lines: str):
    """``squeue`` on PATH printing ``lines`` (``%i|%T|%r``) whatever it is asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "squeue.txt").write_text(lines)
    (bin_dir / "squeue").write_text(FAKE_SQUEUE.format(states=tmp_path / "squeue.txt"))
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")


def test_a_task_that_ends_without_its_result_ends_the_wait(tmp_path, monkeypatch, caplog):
    """squeue says CANCELLED and no result file comes: the jobs the task finished are done (from the
    store), the others failed, and submitit is never asked for a state (no sacct)."""
    import logging

    from submitit.slurm.slurm import SlurmJob

    from splice.runner import slurm as launcher
    from splice.runner.execute import run_job

    root, manifest = make_dataset(tmp_path, 4)
    req = PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke")
    jobs = plan_jobs(req)
    store = RunStore(tmp_path / "run")
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    run_job(jobs[2], store)  # task 77_1 finished its first job, then was cancelled
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name)
    fake_squeue(tmp_path, monkeypatch, "77_0|PENDING|PartitionConfig\n77_1|CANCELLED|None\n")
    monkeypatch.setattr(launcher, "RESULT_GRACE", 0.0)
    tasks = [SlurmJob(tmp_path / "run" / "slurm" / "%j", f"77_{i}") for i in range(2)]
    caplog.set_level(logging.INFO)
    outcomes = launcher.wait_slurm(tasks, jobs, jobs_per_task=2, store=store)
    ended = [next(outcomes), next(outcomes)]  # task 77_0 pends on: the generator yields task 77_1's jobs
    assert [(o.key["pair_id"], o.state) for o in ended] == [("p2", "done"), ("p3", "failed")]
    assert ended[1].error == ("array task 77_1 ended CANCELLED before this job finished; its claim turns stale and "
                              "a later `splice bench` runs it")
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("states come from squeue and the run store" in m for m in msgs) == 1
    assert sum("is pending (PartitionConfig)" in m for m in msgs) == 1
    assert not [r for r in caplog.records if r.name.startswith("submitit")]


def test_a_task_that_raised_outside_its_jobs_says_what_it_raised(tmp_path):
    """A task whose result file holds an exception (e.g. a job spec it could not load): its jobs failed
    with the exception's last line and the task's log, not the head of a traceback."""
    from submitit.core.utils import cloudpickle_dump
    from submitit.slurm.slurm import SlurmJob

    from splice.runner.slurm import wait_slurm

    root, manifest = make_dataset(tmp_path, 2)
    jobs = plan_jobs(PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke"))
    sj = SlurmJob(tmp_path / "run" / "slurm" / "%j", "5_0")
    sj.paths.folder.mkdir(parents=True)
    trace = "Traceback (most recent call last):\n  File ...\nModuleNotFoundError: No module named 'tests'\n"
    cloudpickle_dump(("error", trace), sj.paths.result_pickle)
    outcomes = list(wait_slurm([sj], jobs, jobs_per_task=2, store=RunStore(tmp_path / "run")))
    assert [o.state for o in outcomes] == ["failed", "failed"]
    assert outcomes[0].error == (f"array task 5_0 raised ModuleNotFoundError: No module named 'tests' "
                                 f"(log {sj.paths.stderr})")


def test_status_shows_the_scheduler_view_of_the_store_arrays(tmp_path, monkeypatch):
    """`bench status` lists each task squeue still knows with its jobs' states from the store."""
    from click.testing import CliRunner

    from splice.cli import cli
    from splice.core.atomic import atomic_write_json
    from splice.runner.execute import run_job
    from splice.runner.status import STATES, write_job_specs

    root, manifest = make_dataset(tmp_path, 3)
    req = PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke")
    jobs = plan_jobs(req)
    out = tmp_path / "run"
    store = RunStore(out)
    write_job_specs(store, jobs)
    run_job(jobs[0], store)
    paths = [str(j.key.relpath()) for j in jobs]
    atomic_write_json(out / "slurm" / "array-5.json", {"array": "5", "tasks": {"5_0": paths[:2], "5_1": paths[2:]}})
    atomic_write_json(out / "slurm" / "array-3.json", {"array": "3", "tasks": {"3_0": paths}})  # long gone
    fake_squeue(tmp_path, monkeypatch, "5_0|RUNNING|None\n5_1|PENDING|JobArrayTaskLimit\n")
    r = CliRunner().invoke(cli, ["bench", "status", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    view = json.loads(r.stdout)["slurm"]
    assert [(t["task"], t["state"], t["reason"]) for t in view] == [("5_0", "RUNNING", "None"),
                                                                   ("5_1", "PENDING", "JobArrayTaskLimit")]
    assert view[0]["counts"]["done"] == 1 and view[0]["counts"]["pending"] == 1 and view[1]["counts"]["pending"] == 1
    text = CliRunner().invoke(cli, ["bench", "status", "--out", str(out)]).stdout.splitlines()
    i = text.index("SLURM array tasks (state from squeue; their jobs' states from the run store):")
    assert text[i + 1].split() == ["array", "task", "scheduler", "jobs", *STATES]
    assert text[i + 3].split() == ["5_1", "PENDING", "(JobArrayTaskLimit)", "1", "0", "0", "0", "0", "1", "0", "0", "0"]
    # no squeue here: one line saying the view is the store's only
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    r = CliRunner().invoke(cli, ["bench", "status", "--out", str(out)])
    assert r.exit_code == 0 and "squeue does not answer here" in r.stderr and "SLURM array tasks" not in r.stdout


def test_a_record_names_the_slurm_job_it_was_made_in(monkeypatch):
    from splice.core.record import JobKey, JobRecord, make_record

    key = JobKey("demo", "p0", "identity", 0, "abc")
    for name in [k for k in __import__("os").environ if k.startswith("SLURM")]:
        monkeypatch.delenv(name)
    assert make_record(key, status="ok").slurm is None
    env = {"SLURM_JOB_ID": "15", "SLURM_ARRAY_JOB_ID": "12", "SLURM_ARRAY_TASK_ID": "3", "SLURM_RESTART_COUNT": "1",
           "SLURM_CLUSTER_NAME": "lab", "SLURM_JOB_PARTITION": "gpu", "SLURMD_NODENAME": "n7",
           "SPLICE_TASK_LOG": "/runs/x/slurm/12_3/12_3_0_log.err"}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rec = make_record(key, status="failed", error="boom")
    assert rec.slurm == {"job": "12_3", "job_id": "15", "array_job_id": "12", "array_task_id": 3, "restarts": 1,
                         "cluster": "lab", "partition": "gpu", "node": "n7", "log": env["SPLICE_TASK_LOG"]}
    assert JobRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    older = {k: v for k, v in rec.to_dict().items() if k != "slurm"}  # a record written before the field
    assert JobRecord.from_dict(older).slurm is None


def test_many_pending_or_completed_tasks_share_a_row():
    from splice.runner.status import TaskView, scheduler_table

    views = [TaskView(f"9_{i}", "COMPLETED", "None", []) for i in range(3)]
    views += [TaskView("9_3", "RUNNING", "None", []), TaskView("9_7", "FAILED", "NonZeroExitCode", [])]
    views += [TaskView(f"9_{i}", "PENDING", "JobArrayTaskLimit", []) for i in (4, 5, 6, 8, 10)]
    rows = [line.split()[:3] for line in scheduler_table(views, max_rows=5).splitlines()[1:]]
    assert rows == [["9_[0-2]", "COMPLETED", "0"], ["9_3", "RUNNING", "0"], ["9_7", "FAILED", "(NonZeroExitCode)"],
                    ["9_[4-6,8,10]", "PENDING", "(JobArrayTaskLimit)"]]
    assert len(scheduler_table(views).splitlines()) == 1 + len(views)  # few tasks: a row each
