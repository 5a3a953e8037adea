"""The runner as processes: worker pool, worker crash, kill -9 and resume, two concurrent runners, CLI exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from splice.core.claims import pid_alive
from splice.core.health import STATES
from splice.core.store import RunStore
from splice.data.manifests import load_manifest
from splice.runner import LaunchOptions, PlanRequest, bench, plan_jobs
from tests.support.dummies import PROJECT, events, make_dataset, register

pytestmark = pytest.mark.timeout(120)

CLI = f"import sys; sys.path[:0] = [{str(PROJECT)!r}]; import tests.support.dummies as d; d.register(); " \
      "from splice.cli import main; main(sys.argv[1:])"  # fmt: skip


@pytest.fixture(autouse=True)
def _dummies(monkeypatch):
    from tests.support.dummies import ensure_importable

    ensure_importable(monkeypatch)
    register()


def _cli_args(tmp_path: Path, manifest: Path, root: Path, log: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", CLI, "bench", "--methods", "dummy", "--datasets", str(manifest), "--root", str(root),
            "--out", str(tmp_path / "run"), "--preset", "smoke", "--devices", "cpu", "--method-args", f"log={log}",
            "--no-progress", *extra]  # fmt: skip


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=90, cwd=PROJECT, **kw)


def _wait_for(pred, timeout=30.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_pool_of_workers_survives_a_worker_crash(tmp_path):
    root, manifest = make_dataset(tmp_path, 5)
    log = tmp_path / "events.log"
    req = PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke",
                      options={"dummy": {"log": str(log), "die_on": "p2"}})  # fmt: skip
    summary = bench(req, LaunchOptions(out=tmp_path / "run", devices=["cpu"], workers=2, progress=False))
    assert (summary.done, summary.failed) == (4, 1)
    store = RunStore(tmp_path / "run")
    jobs = plan_jobs(req)
    rec = store.read_record(jobs[2].key)
    assert rec.error_type == "WorkerDied" and "signal SIGKILL" in rec.error
    assert all(store.is_done(j.key) for j in jobs if j.key.pair_id != "p2")
    pids = {line.split()[2] for line in log.read_text().splitlines()}
    assert len(pids) >= 2  # two workers, plus the replacement
    assert not list((tmp_path / "run").rglob("claim.json"))


def test_resume_after_kill_9_of_the_runner_runs_every_job_exactly_once(tmp_path):
    root, manifest = make_dataset(tmp_path, 4)
    log = tmp_path / "events.log"
    runner = subprocess.Popen(_cli_args(tmp_path, manifest, root, log, "--method-args", "block_on=p2"),
                              cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        _wait_for(lambda: ("start", "p2") in events(log), what="the runner to reach p2")
    finally:
        runner.kill()  # kill -9
        runner.wait()
    worker_pid = int([line for line in log.read_text().splitlines() if line.startswith("start p2")][0].split()[2])
    _wait_for(lambda: not pid_alive(worker_pid), timeout=10, what="the orphaned worker to die with its runner")
    store = RunStore(tmp_path / "run")
    assert [store.is_done(k) for k in _keys(tmp_path, manifest, root, log)] == [True, True, False, False]

    Path(str(log) + ".go").write_text("")  # the rerun must not block again
    r = _run(_cli_args(tmp_path, manifest, root, log, "--method-args", "block_on=p2"))
    assert r.returncode == 0, r.stderr
    assert "taking over the claim" in r.stderr
    ends = Counter(p for e, p in events(log) if e == "end")
    assert ends == {"p0": 1, "p1": 1, "p2": 1, "p3": 1}
    assert Counter(p for e, p in events(log) if e == "start")["p2"] == 2  # killed once, then resumed
    status = _run([sys.executable, "-m", "splice", "bench", "status", "--out", str(tmp_path / "run"), "--json"])
    counts = json.loads(status.stdout)["counts"]
    assert counts == {**dict.fromkeys(STATES, 0), "done": 4}


def _keys(tmp_path, manifest, root, log):
    opts = {"log": str(log), "block_on": "p2"}
    req = PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke",
                      options={"dummy": opts})  # fmt: skip
    return [j.key for j in plan_jobs(req)]


def test_two_concurrent_runners_do_each_job_exactly_once(tmp_path):
    root, manifest = make_dataset(tmp_path, 10)
    log = tmp_path / "events.log"
    args = _cli_args(tmp_path, manifest, root, log, "--method-args", "sleep=0.15", "--json")
    a = subprocess.Popen(args, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen(args, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out_a, err_a = a.communicate(timeout=90)
    out_b, err_b = b.communicate(timeout=90)
    assert a.returncode == 0 and b.returncode == 0, err_a + err_b
    ends = Counter(p for e, p in events(log) if e == "end")
    starts = Counter(p for e, p in events(log) if e == "start")
    assert ends == starts == {f"p{i}": 1 for i in range(10)}
    sa, sb = json.loads(out_a), json.loads(out_b)
    assert sa["done"] + sb["done"] == 10
    assert sa["done"] >= 1 and sb["done"] >= 1, (sa, sb)  # they really ran side by side
    assert sa["done"] + sa["skipped"] + sa["claimed_elsewhere"] == 10
    inv = json.loads((tmp_path / "run" / "run.json").read_text())["invocations"]
    assert len(inv) == 2 and all(e["summary"] for e in inv)


def test_cli_exit_codes_dry_run_and_status(tmp_path):
    root, manifest = make_dataset(tmp_path, 3)
    log = tmp_path / "events.log"
    out = tmp_path / "run"

    r = _run(_cli_args(tmp_path, manifest, root, log, "--dry-run"))
    assert r.returncode == 0 and r.stdout.count("pending  dummy") == 3 and "would run 3" in r.stderr
    assert not out.exists()

    r = _run(_cli_args(tmp_path, manifest, root, log, "--method-args", "fail_on=p1", "--limit", "2", "--workers", "0"))
    assert r.returncode == 1
    assert "--limit 2 is for smoke tests only" in r.stderr and "1 x RuntimeError: dummy failure on p1" in r.stderr
    r = _run(_cli_args(tmp_path, manifest, root, log, "--method-args", "fail_on=p1", "--limit", "2", "--dry-run",
                       "--json"))  # fmt: skip
    plan = json.loads(r.stdout)
    assert [p["state"] for p in plan] == ["done", "failed"] and "--retry-failed" in plan[1]["action"]

    r = _run([sys.executable, "-m", "splice", "bench", "status", "--out", str(out), "--failed"])
    assert r.returncode == 0 and "failed dummy/toy/p1/" in r.stdout
    assert (out / "jobs.csv").read_text().count("\n") == 3

    bad = [
        (["--methods", "nosuch"], "unknown method 'nosuch'"),
        (["--seeds", "a"], "--seeds 'a'"),
        (["--root", str(tmp_path / "missing")], "is not a folder"),
        (["--datasets", "nosuchset"], "unknown data set 'nosuchset'"),
        (["--pairs", "p7"], "--pairs: p7 not in the selected data set"),
        (["--method-args", "oops"], "--method-args 'oops' is not key=value"),
    ]
    for extra, msg in bad:
        args = _cli_args(tmp_path, manifest, root, log)
        for i in range(0, len(extra), 2):
            if extra[i] in args:
                args[args.index(extra[i]) + 1] = extra[i + 1]
            else:
                args += extra[i : i + 2]
        r = _run(args)
        assert r.returncode == 2, (extra, r.stderr)
        assert msg in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    r = _run([sys.executable, "-m", "splice", "bench", "--out", str(out)])
    assert r.returncode == 2 and "needs --methods, --datasets, --root" in r.stderr
