"""A killed and broken run (tests/support/broken.py): `bench status` names every state with its path and fix,
the next `bench` sets broken records aside (never overwrites them) and finishes the rest, finished jobs keep
only what a user needs, and Ctrl-C says how to continue."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from splice.cli import cli
from splice.core.health import STATES
from splice.core.store import RunStore
from splice.data.manifests import load_manifest
from splice.runner import LaunchOptions, PlanRequest, bench
from splice.runner.status import scan
from tests.support.broken import broken_run
from tests.support.dummies import PROJECT, make_dataset, register


@pytest.fixture(autouse=True)
def _dummies(monkeypatch):
    from tests.support.dummies import ensure_importable

    ensure_importable(monkeypatch)
    register()


def test_status_names_every_broken_job_with_its_path_and_fix(tmp_path):
    b = broken_run(tmp_path)
    r = CliRunner().invoke(cli, ["bench", "status", "--out", str(b.out), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["counts"] == {**dict.fromkeys(STATES, 0), "done": 1, "failed": 1, "stale": 1, "pending": 3,
                              "corrupt": 1, "output-missing": 1}  # fmt: skip
    assert data["size_bytes"] > 0 and data["work_bytes"] == 0
    rows = {(j["method"], j["pair_id"]): j for j in data["jobs"]}
    fix = " ".join(b.argv)
    assert rows[("dummy", "p0")]["state"] == "corrupt" and rows[("dummy", "p0")]["fix"].endswith(fix)
    assert rows[("dummy", "p3")]["fix"].endswith(fix + " --retry-failed")
    assert rows[("nomaxside", "p2")]["state"] == "pending" and rows[("dummy", "p2")]["fix"] is None

    text = CliRunner().invoke(cli, ["bench", "status", "--out", str(b.out)]).stdout
    head = text.splitlines()[0].split()
    assert head == ["dataset", "method", "jobs", *STATES, "seconds"]
    assert [line.split()[:11] for line in text.splitlines()[1:3]] == [
        ["toy", "dummy", "4", "1", "1", "0", "0", "0", "1", "1", "0"],
        ["toy", "nomaxside", "4", "0", "0", "0", "1", "3", "0", "0", "0"]]  # a method with no finished job
    assert f"store {b.out}: " in text and " kB" in text
    assert f"to fix, run the bench again: {fix}\n" in text
    assert "1 corrupt record: the bench command sets record.json aside (record.corrupt-<time>.json)" in text
    assert f"  {b.job_dir('dummy', 'p0') / 'record.json'}  (record.json is not JSON" in text
    assert "1 output missing: the bench command sets the record aside" in text
    assert f"  {b.job_dir('dummy', 'p1') / 'output.png'}  (the record says ok but the output file is gone)" in text
    assert "3 pending: the bench command runs them" in text and "1 stale claim: the bench command takes over" in text
    assert "1 failed: the bench command with --retry-failed runs it again" in text and "dummy failure on p3" in text
    csv = (b.out / "jobs.csv").read_text().splitlines()
    assert csv[0].endswith(",log,fix") and sum(",corrupt," in line for line in csv) == 1


def test_the_next_bench_sets_broken_records_aside_and_finishes_the_rest(tmp_path):
    b = broken_run(tmp_path)
    p0, p1 = b.job_dir("dummy", "p0"), b.job_dir("dummy", "p1")
    truncated = (p0 / "record.json").read_bytes()
    req = PlanRequest(methods=["dummy", "nomaxside"], manifests=[load_manifest(b.manifest)], root=b.root,
                      preset="smoke", options={"dummy": {"fail_on": "p3"}})  # fmt: skip
    summary = bench(req, LaunchOptions(out=b.out, devices=["cpu"], workers=0, progress=False))
    assert summary.done == 6 and summary.failed_total == 1  # p0, p1 again; nomaxside p0-p3; p3 failed before
    [aside] = p0.glob("record.corrupt-*.json")
    assert aside.read_bytes() == truncated  # kept as it was, for inspection
    [orphan] = p1.glob("record.output-missing-*.json")
    assert json.loads(orphan.read_text())["status"] == "ok"
    assert RunStore(b.out).is_done(b.key("dummy", "p0")) and RunStore(b.out).is_done(b.key("dummy", "p1"))
    states = {(s.key.method, s.key.pair_id): s.state for s in scan(RunStore(b.out))}
    assert sorted(states.values()) == ["done"] * 7 + ["failed"]


def test_finished_jobs_keep_only_output_record_and_log(tmp_path):
    root, manifest = make_dataset(tmp_path, 2)
    req = PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke",
                      options={"dummy": {"scratch": "true", "fail_on": "p1"}})  # fmt: skip
    out = tmp_path / "run"
    bench(req, LaunchOptions(out=out, devices=["cpu"], workers=0, progress=False))
    store = RunStore(out)
    done, failed = (store.job_dir(s.key) for s in sorted(scan(store), key=lambda s: s.key.pair_id))
    assert sorted(p.name for p in done.iterdir()) == ["job.json", "output.png", "record.json"]
    assert (failed / "work" / "checkpoint.pt").is_file()  # a failed job keeps its work for a retry
    kept = tmp_path / "kept"
    bench(req, LaunchOptions(out=kept, devices=["cpu"], workers=0, progress=False, keep_work=True))
    assert len(list(kept.rglob("work/checkpoint.pt"))) == 2
    assert json.loads((kept / "run.json").read_text())["invocations"][0]["settings"]["keep_work"] is True
    text = CliRunner().invoke(cli, ["bench", "status", "--out", str(kept)]).stdout
    assert "2.0 kB in work/ folders" in text


def test_ctrl_c_in_bench_says_how_to_continue(tmp_path):
    root, manifest = make_dataset(tmp_path, 2)
    log = tmp_path / "events.log"
    code = (f"import sys; sys.path[:0] = [{str(PROJECT)!r}]; import tests.support.dummies as d; d.register(); "
            "from splice.cli import main; main(sys.argv[1:])")  # fmt: skip
    argv = ["bench", "--methods", "dummy", "--datasets", str(manifest), "--root", str(root), "--out",
            str(tmp_path / "run"), "--preset", "smoke", "--devices", "cpu", "--workers", "0", "--no-progress",
            "--method-args", f"log={log}", "--method-args", "block_on=p0"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=PROJECT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (log.exists() and "start p0" in log.read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted; finished jobs are kept, running ones resume from their checkpoints: "
                           "splice bench --methods dummy")  # fmt: skip
    assert "Traceback" not in err


def test_a_corrupt_run_log_is_set_aside_and_said(tmp_path, caplog):
    from splice.runner.runlog import append_invocation

    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"schema": 1, "invocations": [{"id": "a"')  # truncated
    with caplog.at_level("WARNING"):
        append_invocation(out, {"id": "b"})
    [aside] = out.glob("run.corrupt-*.json")
    assert aside.read_text() == '{"schema": 1, "invocations": [{"id": "a"'  # kept as it was
    assert json.loads((out / "run.json").read_text())["invocations"] == [{"id": "b"}]
    assert f"is not readable JSON; set aside as {aside.name}, and a new run log begins" in caplog.text
