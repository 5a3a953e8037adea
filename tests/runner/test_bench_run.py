"""Running jobs in-process: records, failure isolation, the OOM ladder, claims, atomic writes, skipping."""

from __future__ import annotations

import json
import mmap
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from PIL import Image

from splice.core.claims import Claim, _boot_id, pid_alive, stale_reason
from splice.core.store import RunStore
from splice.data.manifests import load_manifest
from splice.runner import LaunchOptions, PlanRequest, bench, execute, plan_jobs, run_job
from splice.runner.execute import next_rung
from splice.runner.status import scan
from tests.support.dummies import PROJECT, TESTS, events, make_dataset, register
from tests.support.store import dead_pid


@pytest.fixture(autouse=True)
def _dummies(monkeypatch):
    from tests.support.dummies import ensure_importable

    ensure_importable(monkeypatch)
    register()


def _jobs(tmp_path, n=3, methods=("dummy",), big=(), **options):
    root, manifest = make_dataset(tmp_path, n, big=big)
    log = tmp_path / "events.log"
    req = PlanRequest(methods=list(methods), manifests=[load_manifest(manifest)], root=root, preset="smoke",
                      options={m: {"log": str(log), **options} for m in methods})  # fmt: skip
    return req, plan_jobs(req), log


def test_run_job_writes_output_then_a_complete_record(tmp_path):
    _, jobs, _ = _jobs(tmp_path, 1)
    store = RunStore(tmp_path / "run")
    rec = run_job(jobs[0], store, "cpu", invocation={"id": "inv-1", "git": {"sha": "abc", "dirty": False}})
    job_dir = store.job_dir(jobs[0].key)
    assert job_dir == tmp_path / "run" / "outputs" / "toy" / "p0" / "dummy" / f"s0-{jobs[0].key.config_hash}"
    on_disk = json.loads((job_dir / "record.json").read_text())
    assert on_disk["status"] == "ok" and rec.status == "ok" and store.is_done(jobs[0].key)
    assert on_disk["job"] == jobs[0].key.to_dict() and on_disk["schema"] == 2
    assert on_disk["output"] == "output.png"
    assert Image.open(job_dir / "output.png").size == (96, 80)
    assert on_disk["geometry"] == {"kind": "identity", "source": [96, 80], "box": [0, 0, 96, 80], "output": [96, 80]}
    assert on_disk["random_weights"] is True and on_disk["weights"] == {"spec": "random"}
    assert on_disk["inputs"]["structure"]["size"] == [96, 80]
    assert len(on_disk["inputs"]["appearance"]["sha256"]) == 64
    assert on_disk["config"] == jobs[0].config and on_disk["settings"]["device"] == "cpu"
    assert on_disk["peak_memory_mb"] > 1 and on_disk["peak_memory_kind"] in ("rss_peak", "ru_maxrss_process")
    assert on_disk["seconds"] >= 0 and on_disk["max_side"] is None
    assert [a["max_side"] for a in on_disk["attempts"]] == [None]
    assert on_disk["invocation"] == "inv-1" and on_disk["git"]["sha"] == "abc"
    assert on_disk["error"] is None and on_disk["host"] == socket.gethostname()
    assert on_disk["pair"]["manifest"]["name"] == "toy" and on_disk["pair"]["manifest"]["line"] == 4
    assert not (job_dir / "claim.json").exists()


def test_peak_memory_is_reset_per_job(tmp_path):
    """A job that allocates 200 MB reports it; the next small job in the same process does not."""
    from splice.core.resources import PeakMemory

    mem = PeakMemory("cpu")
    if mem.kind != "rss_peak":
        pytest.skip("no /proc/self/clear_refs here")
    mem.reset()
    block = mmap.mmap(-1, 200 * 2**20)  # fresh pages (malloc could reuse memory that is already resident)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    big = mem.read_mb()
    block.close()
    mem.reset()
    small = mem.read_mb()
    assert big - small > 150 and mem.baseline_mb is not None and abs(mem.baseline_mb - small) < 20


def test_failures_are_isolated_and_one_line(tmp_path):
    req, jobs, log = _jobs(tmp_path, 4, fail_on="p1")
    (tmp_path / "data" / "toy" / "p2" / "appearance.png").write_bytes(b"\x89PNG broken")
    summary = bench(req, LaunchOptions(out=tmp_path / "run", workers=0, progress=False))
    assert (summary.done, summary.failed) == (2, 2)
    store = RunStore(tmp_path / "run")
    recs = {j.key.pair_id: store.read_record(j.key) for j in jobs}
    assert recs["p1"].status == "failed" and recs["p1"].error_type == "RuntimeError"
    assert recs["p1"].error == "RuntimeError: dummy failure on p1 second line"
    assert recs["p1"].output is None and not store.output_path(jobs[1].key).exists()
    assert "Traceback" in (store.job_dir(jobs[1].key) / "traceback.txt").read_text()
    assert recs["p2"].error_type == "ImageError" and "appearance image" in recs["p2"].error
    assert recs["p2"].error == f"appearance image is not an image Pillow can read: {jobs[2].pair.appearance}"
    assert recs["p0"].status == recs["p3"].status == "ok"
    assert [e for e in events(log) if e[0] == "end"] == [("end", "p0"), ("end", "p3")]


def test_ok_jobs_are_skipped_failed_ones_only_with_retry(tmp_path):
    req, jobs, log = _jobs(tmp_path, 3, fail_on="p1")
    out = tmp_path / "run"
    first = bench(req, LaunchOptions(out=out, workers=0, progress=False))
    assert (first.done, first.failed, first.skipped) == (2, 1, 0)
    n_events = len(events(log))
    second = bench(req, LaunchOptions(out=out, workers=0, progress=False))
    assert (second.done, second.failed, second.skipped, second.failed_before) == (0, 0, 2, 1)
    assert second.failed_total == 1 and len(events(log)) == n_events  # nothing ran again
    third = bench(req, LaunchOptions(out=out, workers=0, retry_failed=True, progress=False))
    assert (third.done, third.failed, third.skipped) == (0, 1, 2)
    assert events(log)[n_events:] == [("start", "p1")]  # only the failed job ran again (and failed again)
    inv = json.loads((out / "run.json").read_text())["invocations"]
    assert len(inv) == 3 and inv[2]["settings"]["retry_failed"] is True and inv[2]["summary"]["failed"] == 1
    assert inv[0]["command"] and inv[0]["manifests"][0]["name"] == "toy" and inv[0]["finished"]
    rows = (out / "jobs.csv").read_text().splitlines()
    assert rows[0].startswith("dataset,pair_id,method,seed,config_hash,state")
    assert sorted(r.split(",")[5] for r in rows[1:]) == ["done", "done", "failed"]


def test_config_change_makes_new_jobs_beside_the_old(tmp_path):
    req, jobs, _ = _jobs(tmp_path, 2)
    out = tmp_path / "run"
    bench(req, LaunchOptions(out=out, workers=0, progress=False))
    req.options["dummy"]["sleep"] = 0.01
    again = bench(req, LaunchOptions(out=out, workers=0, progress=False))
    assert (again.done, again.skipped) == (2, 0)
    variants = sorted(p.name for p in (out / "outputs" / "toy" / "p0" / "dummy").iterdir())
    assert len(variants) == 2 and all(v.startswith("s0-") for v in variants)
    assert len(scan(RunStore(out))) == 4


# --------------------------------------------------------------------------------------
# the OOM ladder
# --------------------------------------------------------------------------------------
def test_ladder_rungs():
    assert next_rung(None, 2000) == 1024
    assert next_rung(None, 900) == 768
    assert next_rung(768, 900) == 512
    assert next_rung(384, 900) is None
    assert next_rung(None, 300) is None
    assert next_rung(1024, None) == 768


def test_oom_on_an_accelerator_retries_lower_and_records_the_resolution(tmp_path):
    pytest.importorskip("torch")
    _, jobs, _ = _jobs(tmp_path, 1, big=(0,), oom_above=512)
    store = RunStore(tmp_path / "run")
    rec = run_job(jobs[0], store, device="cuda:0")  # the dummy ignores the device; the ladder keys on it
    assert rec.status == "ok" and rec.max_side == 512
    assert [a["max_side"] for a in rec.attempts] == [None, 768, 512]  # 1024 >= the 900 px short side: skipped
    assert "CUDA out of memory" in rec.attempts[0]["error"] and rec.attempts[2]["error"] is None
    assert Image.open(store.output_path(jobs[0].key)).size == (683, 512)
    assert rec.geometry["output"] == [683, 512] and rec.geometry["source"] == [1200, 900]
    assert rec.info["workdir"] == str(store.job_dir(jobs[0].key) / "work" / "max_side-512")


def test_oom_exhausted_unsupported_and_on_cpu(tmp_path):
    pytest.importorskip("torch")
    _, jobs, _ = _jobs(tmp_path, 1, big=(0,), oom_above=-1)
    store = RunStore(tmp_path / "run")
    rec = run_job(jobs[0], store, device="cuda")
    assert rec.status == "failed" and rec.error_type == "OutOfMemoryError"
    assert [a["max_side"] for a in rec.attempts] == [None, 768, 512, 384]
    assert "out of memory at every rung of the ladder" in rec.error
    cpu = run_job(jobs[0], RunStore(tmp_path / "cpu"), device="cpu")
    assert cpu.status == "failed" and len(cpu.attempts) == 1  # no ladder on the CPU
    _, nojobs, _ = _jobs(tmp_path / "n", 1, methods=("nomaxside",), big=(0,), oom_above=512)
    rec = run_job(nojobs[0], RunStore(tmp_path / "n" / "run"), device="cuda:1")
    assert rec.status == "failed" and "supports_max_side=False" in rec.error and len(rec.attempts) == 1


def test_a_method_that_cannot_run_on_the_device_fails_cleanly(tmp_path):
    _, jobs, _ = _jobs(tmp_path, 1, methods=("cudaonly",))
    rec = run_job(jobs[0], RunStore(tmp_path / "run"), device="cpu")
    assert rec.status == "failed" and "does not run on cpu" in rec.error


def test_a_cpu_only_method_on_a_gpu_worker_runs_on_the_cpu(tmp_path):
    """`--devices auto` on a GPU box gives every worker a GPU; reinhard and histogram run on its CPU."""
    _, jobs, _ = _jobs(tmp_path, 1, methods=("cpuonly",))
    rec = run_job(jobs[0], RunStore(tmp_path / "run"), device="cuda:0")
    assert rec.ok and rec.device == "cpu" and rec.settings["device"] == "cpu"


# --------------------------------------------------------------------------------------
# claims
# --------------------------------------------------------------------------------------
def test_stale_rules():
    me = socket.gethostname()
    now = time.time()
    assert stale_reason({"host": me, "pid": os.getpid()}, now) is None
    assert "is not running" in stale_reason({"host": me, "pid": dead_pid()}, now)
    if _boot_id():
        assert "rebooted" in stale_reason({"host": me, "pid": os.getpid(), "boot_id": "other"}, now)
    ticks = open(f"/proc/{os.getpid()}/stat").read().rsplit(")", 1)[1].split()[19] if os.path.exists("/proc") else None
    if ticks:
        recycled = {"host": me, "pid": os.getpid(), "start_ticks": int(ticks) + 1}  # the pid of another process
        assert "is not running" in stale_reason(recycled, now)
    other = {"host": "elsewhere", "pid": 1}
    assert stale_reason(other, now - 10, timeout=600) is None
    assert "no heartbeat" in stale_reason(other, now - 601, timeout=600)
    assert stale_reason(None, now) is None and "unreadable" in stale_reason(None, now - 120)
    assert not pid_alive(dead_pid())


def test_claims_exclude_and_stale_claims_are_taken_over(tmp_path):
    job_dir = tmp_path / "job"
    a, b = Claim(job_dir), Claim(job_dir)
    assert a.acquire() and not b.acquire()
    assert b.blocked_by["pid"] == os.getpid()
    a.release()
    assert b.acquire() and b.owned
    b.release()
    # a dead runner's claim on this host is taken over at once
    (job_dir / "claim.json").write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid(), "token": "x"}))
    c = Claim(job_dir)
    assert c.acquire() and c.took_over["token"] == "x"
    assert json.loads((job_dir / "claim.json").read_text())["took_over"]["pid"] == c.took_over["pid"]
    c.release()
    # another host: only after the heartbeat timeout
    (job_dir / "claim.json").write_text(json.dumps({"host": "node-7", "pid": 123, "token": "y"}))
    assert not Claim(job_dir, timeout=600).acquire()
    old = time.time() - 700
    os.utime(job_dir / "claim.json", (old, old))
    d = Claim(job_dir, timeout=600)
    assert d.acquire()
    # a runner that lost its claim (taken over as stale) never removes the new owner's
    (job_dir / "claim.json").write_text(json.dumps({"host": "node-8", "pid": 1, "token": "z"}))
    d.release()
    assert json.loads((job_dir / "claim.json").read_text())["token"] == "z"


def test_many_threads_racing_for_one_stale_claim_one_wins(tmp_path):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "claim.json").write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid(), "token": "x"}))
    claims = [Claim(job_dir) for _ in range(8)]
    won = []
    barrier = threading.Barrier(len(claims))

    def go(c):
        barrier.wait()
        if c.acquire():
            won.append(c)

    threads = [threading.Thread(target=go, args=(c,)) for c in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and won[0].owned


def test_heartbeat_touches_the_claim(tmp_path):
    c = Claim(tmp_path / "job")
    assert c.acquire()
    old = time.time() - 1000
    os.utime(c.path, (old, old))
    with c.heartbeat(interval=0.05):
        time.sleep(0.3)
    assert time.time() - c.path.stat().st_mtime < 5
    c.release()


def test_execute_skips_a_job_claimed_by_a_live_runner(tmp_path):
    _, jobs, log = _jobs(tmp_path, 1)
    store = RunStore(tmp_path / "run")
    holder = Claim(store.job_dir(jobs[0].key))
    assert holder.acquire()
    out = execute(jobs[0], store)
    assert out.state == "claimed" and out.holder == f"{socket.gethostname()}:{os.getpid()}"
    assert events(log) == [] and store.read_record(jobs[0].key) is None
    holder.release()
    assert execute(jobs[0], store).state == "done"
    assert execute(jobs[0], store).state == "skipped"


# --------------------------------------------------------------------------------------
# atomic writes: a job killed while writing leaves no ok record
# --------------------------------------------------------------------------------------
KILL_DURING_WRITE = r"""
import os, signal, sys
sys.path[:0] = [{tests!r}, {project!r}]
import tests.support.dummies as d; d.register()
import splice.core.atomic as atomic
from splice.runner import Job, execute
from splice.core.store import RunStore
import json
real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    if os.readlink(f"/proc/self/fd/{{fd}}").split("/")[-1].startswith({target!r}):
        os.kill(os.getpid(), signal.SIGKILL)   # after the temporary file is complete, before the rename
atomic.os.fsync = fsync
execute(Job.from_dict(json.loads(sys.argv[1])), RunStore(sys.argv[2]))
"""


@pytest.mark.parametrize("target", [".record.json.", ".output.png."])
def test_kill_during_a_write_leaves_no_ok_record(tmp_path, target):
    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc")
    _, jobs, _ = _jobs(tmp_path, 1)
    out = tmp_path / "run"
    script = KILL_DURING_WRITE.format(tests=str(TESTS), project=str(PROJECT), target=target)
    r = subprocess.run([sys.executable, "-c", script, json.dumps(jobs[0].to_dict()), str(out)], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == -9, r.stderr
    store = RunStore(out)
    job_dir = store.job_dir(jobs[0].key)
    assert not (job_dir / "record.json").exists() and not store.is_done(jobs[0].key)
    assert list(job_dir.glob(".*.tmp"))  # the complete temporary file that was never renamed
    assert (job_dir / "output.png").exists() == (target == ".record.json.")
    assert scan(store)[0].state == "stale"  # the dead runner's claim
    # the next runner takes the job over, runs it and cleans the leftovers
    assert execute(jobs[0], store).state == "done"
    assert store.is_done(jobs[0].key) and not list(job_dir.glob(".*.tmp")) and not (job_dir / "claim.json").exists()
