"""`splice bench --launcher slurm` against a real one-node SLURM the tests start (tests/support/slurm.py).

The cluster has no accounting storage (no sacct), 2 CPUs here and one partition, ``debug``. Each
test skips, saying why, where SLURM, munge or root is missing.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from click.testing import CliRunner

pytest.importorskip("submitit")

from splice.cli import cli  # noqa: E402
from splice.core.health import STATES  # noqa: E402
from splice.core.store import RunStore  # noqa: E402
from splice.data.manifests import get_manifest, load_manifest  # noqa: E402
from splice.runner import LaunchOptions, PlanRequest, SlurmOptions, bench, job_state, plan_jobs  # noqa: E402
from splice.runner import slurm as launcher  # noqa: E402
from tests.support import PROJECT  # noqa: E402
from tests.support.dummies import events, make_dataset  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(150)]

OPTS = dict(partition="debug", cpus_per_task=1, gpus_per_task=0, time_min=5)
WAITING = "task states come from squeue and the run store, not sacct"


@pytest.fixture(autouse=True)
def _quick_waits(monkeypatch):
    monkeypatch.setattr(launcher, "RESULT_GRACE", 1.0)  # one node, one file system: no lag to allow for
    monkeypatch.setattr(launcher, "POLL_MAX", launcher.POLL_MIN)  # squeue every 2 s, not ever more rarely


class Background(threading.Thread):
    """``fn(*args)`` in a thread; :meth:`result` joins and returns or raises what it did."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args, self.value, self.error = fn, args, None, None
        self.start()

    def run(self):
        try:
            self.value = self.fn(*self.args)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            self.error = e

    def result(self, timeout=90.0):
        self.join(timeout)
        assert not self.is_alive(), f"{self.fn.__name__} still running after {timeout} s"
        if self.error is not None:
            raise self.error
        return self.value


def wait_for(condition, what, timeout=60.0, run: Background | None = None):
    deadline = time.monotonic() + timeout
    while not condition():
        if run is not None and not run.is_alive():
            run.result(0)
            raise AssertionError(f"bench ended before {what}")
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.1)


def slurm_launch(out, **opts):
    return LaunchOptions(out=out, devices=["cpu"], launcher="slurm", slurm=SlurmOptions(**{**OPTS, **opts}), wait=True,
                         progress=False)  # fmt: skip


def test_array_over_the_demo_set_runs_each_job_once_and_records_its_task(slurm, tmp_path, caplog):
    """Two array tasks of three jobs each, at most one at a time; `bench status` while the first runs
    (its third job blocked) and the second waits; a method raising in the second is a failed record."""
    log = tmp_path / "events.log"
    req = PlanRequest(methods=["identity", "nomaxside", "dummy"], manifests=[get_manifest("demo")],
                      root=PROJECT / "datasets", preset="smoke",
                      options={"nomaxside": {"log": str(log)}, "dummy": {"log": str(log), "block_on": "giraffe_zebra",
                                                                        "fail_on": "sa_208_209"}})  # fmt: skip
    jobs = plan_jobs(req)
    assert [(j.key.pair_id, j.key.method) for j in jobs][:3] == [("giraffe_zebra", m) for m in req.methods]
    out = tmp_path / "run"
    caplog.set_level(logging.INFO)
    run = Background(bench, req, slurm_launch(out, jobs_per_task=3, array_parallelism=1))
    wait_for(lambda: ("start", "giraffe_zebra") in events(log) and len(events(log)) == 3, "blocked dummy job", run=run)

    r = CliRunner().invoke(cli, ["bench", "status", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    tasks = {t["task"]: t for t in json.loads(r.stdout)["slurm"]}
    array = next(iter(tasks)).split("_")[0]
    first, second = tasks[f"{array}_0"], tasks[f"{array}_1"]
    assert (first["state"], second["state"], second["reason"]) == ("RUNNING", "PENDING", "JobArrayTaskLimit")
    assert first["jobs"] == [str(j.key) for j in jobs[:3]] and second["jobs"] == [str(j.key) for j in jobs[3:]]
    none = dict.fromkeys(STATES, 0)
    assert first["counts"] == {**none, "done": 2, "running": 1} and second["counts"] == {**none, "pending": 3}
    text = CliRunner().invoke(cli, ["bench", "status", "--out", str(out)]).stdout
    assert f"{array}_1" in text and "PENDING (JobArrayTaskLimit)" in text

    (tmp_path / "events.log.go").touch()
    summary = run.result()
    assert summary.submitted == [f"{array}_0", f"{array}_1"]
    assert (summary.done, summary.failed) == (5, 1)
    store = RunStore(out)
    starts = Counter(p for e, p in events(log) if e == "start")
    assert starts == {"giraffe_zebra": 2, "sa_208_209": 2}  # nomaxside and dummy, once each per pair
    for i, job in enumerate(jobs):
        rec = store.read_record(job.key)
        task = f"{array}_{i // 3}"
        assert rec.invocation == summary.invocation and len(rec.attempts) == 1
        assert rec.slurm["job"] == task and rec.slurm["array_job_id"] == array and rec.slurm["array_task_id"] == i // 3
        assert rec.slurm["cluster"] == "splicetest" and rec.slurm["partition"] == "debug"
        assert rec.slurm["log"] == str(out / "slurm" / task / f"{task}_0_log.err")
    failed = store.read_record(jobs[5].key)
    assert (jobs[5].key.method, failed.status) == ("dummy", "failed")
    assert "dummy failure on sa_208_209" in failed.error
    assert f"failed: {jobs[5].key}" in open(failed.slurm["log"]).read()  # the task's log says so too
    listed = CliRunner().invoke(cli, ["bench", "status", "--out", str(out), "--failed"]).stdout
    assert f"failed {jobs[5].key}: {failed.error} (log {failed.slurm['log']})" in listed
    assert not list(out.rglob("claim.json"))
    script = (out / "slurm" / array / f"{array}_submission.sh").read_text()
    assert "#SBATCH --array=0-1%1" in script
    csv = (out / "jobs.csv").read_text().splitlines()
    assert csv[0].endswith(",slurm_job,log,fix") and sum(f",{array}_1," in line for line in csv) == 3
    # said once where states come from; submitit never asked sacct (so never warned about it)
    said = [r.getMessage() for r in caplog.records if WAITING in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"waiting for SLURM array {array} (2 task(s))")
    assert not [r for r in caplog.records if r.name.startswith("submitit") or "sacct error" in r.getMessage()]


def test_a_cancelled_task_runs_again_and_nothing_else_does(slurm, tmp_path):
    root, manifest = make_dataset(tmp_path, 3)
    log = tmp_path / "events.log"
    req = PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke",
                      options={"dummy": {"log": str(log), "block_on": "p1"}})  # fmt: skip
    jobs = plan_jobs(req)
    out = tmp_path / "run"
    store = RunStore(out)
    run = Background(bench, req, slurm_launch(out))
    wait_for(lambda: ("start", "p1") in events(log), "start of p1", run=run)
    victim = job_state(store, jobs[1].key).holder["slurm_task"]
    slurm.run("scancel", victim)
    first = run.result()  # without sacct, submitit alone would wait for this task forever
    assert (first.done, first.failed) == (2, 1)
    (lost,) = [o for o in first.outcomes if o.state == "failed"]
    assert lost.key["pair_id"] == "p1" and lost.error.startswith(f"array task {victim} ended CANCELLED")
    wait_for(lambda: job_state(store, jobs[1].key).state == "stale", "stale claim of the cancelled task", 30)

    (tmp_path / "events.log.go").touch()
    second = bench(req, slurm_launch(out))  # the same command again
    assert len(second.submitted) == 1 and (second.done, second.skipped, second.failed) == (1, 2, 0)
    assert Counter(p for e, p in events(log) if e == "start") == {"p0": 1, "p1": 2, "p2": 1}
    assert Counter(p for e, p in events(log) if e == "end") == {"p0": 1, "p1": 1, "p2": 1}
    recs = [store.read_record(j.key) for j in jobs]
    assert [r.invocation for r in recs] == [first.invocation, second.invocation, first.invocation]
    assert recs[1].slurm["job"] == second.submitted[0] != victim
    assert not list(out.rglob("claim.json"))


def test_two_bench_commands_on_one_store_at_once(slurm, tmp_path):
    """Two `splice bench` processes submit two arrays for the same four jobs, one task of each at a time,
    so a task of one meets the other's claims: each job runs once. The commands print no submitit or
    sacct line and say once where job states come from."""
    root, manifest = make_dataset(tmp_path, 4)
    log, out = tmp_path / "events.log", tmp_path / "run"
    code = ("import sys; from tests.support.dummies import register; register(); "
            "from splice.cli import main; main(sys.argv[1:])")
    argv = [sys.executable, "-c", code, "bench", "--methods", "dummy", "--datasets", str(manifest), "--root", str(root),
            "--out", str(out), "--preset", "smoke", "--devices", "cpu", "--method-args", f"dummy.log={log}",
            "--method-args", "dummy.sleep=0.5", "--launcher", "slurm", "--slurm-partition", "debug",
            "--slurm-cpus-per-task", "1", "--slurm-gpus-per-task", "0", "--slurm-time", "5",
            "--slurm-jobs-per-task", "2", "--slurm-array-parallelism", "1", "--wait", "--no-progress",
            "--json"]  # fmt: skip
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
             for _ in range(2)]  # fmt: skip
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    summaries = [json.loads(stdout) for stdout, _ in results]  # stdout holds the JSON summary only
    assert sum(s["done"] for s in summaries) == 4 and all(s["failed"] == 0 for s in summaries)
    assert all(s["done"] + s["skipped"] + s["claimed_elsewhere"] == 4 for s in summaries)
    assert len({s["submitted"][0].split("_")[0] for s in summaries}) == 2  # two arrays
    assert Counter(p for e, p in events(log) if e == "start") == {f"p{i}": 1 for i in range(4)}
    for _, stderr in results:
        assert stderr.count(WAITING) == 1, stderr
        assert "sacct" not in stderr.replace(WAITING, "") and "submitit" not in stderr, stderr
    records = [rec for _, rec in RunStore(out).iter_records()]
    assert len(records) == 4 and {r.slurm["job"] for r in records} <= {t for s in summaries for t in s["submitted"]}


def test_no_gpus_on_the_partition_is_one_line(slurm, tmp_path, capsys):
    """The default --slurm-gpus-per-task 1 on a partition without GPUs: sbatch refuses; one line, exit 2."""
    from splice.cli import main

    argv = ["bench", "--methods", "identity", "--datasets", "demo", "--root", str(PROJECT / "datasets"), "--out",
            str(tmp_path / "run"), "--preset", "smoke", "--devices", "cpu", "--launcher", "slurm",
            "--slurm-partition", "debug", "--slurm-cpus-per-task", "1", "--no-progress"]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2
    assert len(err) == 1 and err[0].startswith("error: --launcher slurm: sbatch refused the job array: "), err
    assert "gres" in err[0] and "--slurm-gpus-per-task 0 on a partition without GPUs" in err[0]
    assert not slurm.jobs()


def test_a_request_no_node_can_meet_is_said_once(slurm, tmp_path, caplog):
    """--slurm-cpus-per-task 8 on a 2-CPU node: SLURM accepts the array and it would pend forever."""
    root, manifest = make_dataset(tmp_path, 2)
    req = PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke")
    cpus = slurm.cpus + 6
    caplog.set_level(logging.INFO)
    run = Background(bench, req, slurm_launch(tmp_path / "run", cpus_per_task=cpus))
    warned = lambda: [r for r in caplog.records if r.levelno == logging.WARNING and "PartitionConfig" in r.getMessage()]  # noqa: E731
    wait_for(lambda: warned(), "warning about PartitionConfig", 30, run=run)
    time.sleep(launcher.POLL_MIN * 1.5)  # at least one more squeue poll: still said once
    array = slurm.jobs()[0].split("_")[0]
    slurm.run("scancel", array)
    summary = run.result()
    assert summary.failed == 2 and all("ended CANCELLED" in o.error for o in summary.outcomes)
    (w,) = warned()
    msg = w.getMessage()
    assert msg.startswith(f"SLURM array {array} is pending (PartitionConfig)") and "--slurm-cpus-per-task" in msg
    assert f"scancel {array}" in msg
