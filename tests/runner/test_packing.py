"""Jobs packed by memory: the packer's arithmetic on stand-in devices and memory figures, and the local
launcher running several jobs at once on a stand-in GPU, lowering its concurrency after an OOM."""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

import pytest

from splice.core.errors import ConfigError
from splice.core.store import RunStore
from splice.data.manifests import load_manifest
from splice.runner import LaunchOptions, PlanRequest, bench, plan_jobs
from splice.runner.cost import wall_time
from splice.runner.local import run_local
from splice.runner.packing import (
    AUTO_CAP,
    CONTEXT_MB,
    Packer,
    Packing,
    PackingPolicy,
    device_memory_mb,
    fixed_policy_for_workers,
    parse_jobs_per_device,
)
from tests.support.dummies import events, make_dataset


@dataclass(frozen=True)
class J:
    """A stand-in job: a name and its memory estimate (MB, None = unknown)."""

    key: str
    mb: float | None = 2000.0


def memory_of(job, device):
    return job.mb


def packer(capacity, policy=PackingPolicy(auto=True, cap=AUTO_CAP)):
    return Packer(list(capacity), policy, capacity, memory_of)


def fill(p: Packer, queue: deque, device: str) -> list[str]:
    started = []
    while (job := p.pick(queue, device)) is not None:
        p.start(job, device)
        started.append(job.key)
    return started


def test_parse_jobs_per_device():
    assert parse_jobs_per_device(None) is None
    assert parse_jobs_per_device("auto") == PackingPolicy(auto=True, cap=AUTO_CAP)
    assert parse_jobs_per_device("AUTO:12") == PackingPolicy(auto=True, cap=12)
    assert parse_jobs_per_device("3") == PackingPolicy(auto=False, cap=3)
    for bad in ("0", "auto:0", "many", "2:3", "-1"):
        with pytest.raises(ConfigError, match=f"--jobs-per-device '{bad}': use auto"):
            parse_jobs_per_device(bad)


def test_auto_packs_as_many_as_fit_in_each_device():
    # each job: 2000 MB x 1.2 (margin) = 2400, plus a 500 MB CUDA context per worker = 2900 MB
    assert CONTEXT_MB["cuda"] == 500.0
    p = packer({"cuda:0": 10000.0, "cuda:1": 4000.0})
    queue = deque(J(f"j{i}") for i in range(6))
    assert fill(p, queue, "cuda:0") == ["j0", "j1", "j2"]  # 3 x 2900 = 8700 <= 10000; a 4th would be 11600
    assert fill(p, queue, "cuda:1") == ["j3"]  # 2 x 2900 = 5800 > 4000
    assert p.used("cuda:0") == pytest.approx(8700.0)
    p.finish(J("j1"), "cuda:0")  # its worker stays: the next job reuses it (no new context)
    assert p.used("cuda:0") == pytest.approx(2 * 2400 + 3 * 500)
    assert fill(p, queue, "cuda:0") == ["j4"]
    assert [j.key for j in queue] == ["j5"]


def test_the_cap_and_a_fixed_number_per_device():
    p = packer({"cuda:0": 1e9}, PackingPolicy(auto=True, cap=4))
    queue = deque(J(f"j{i}") for i in range(9))
    assert len(fill(p, queue, "cuda:0")) == 4  # memory for hundreds; never more than the cap
    fixed = packer({"cuda:0": None}, PackingPolicy(auto=False, cap=2))
    queue = deque(J(f"j{i}", mb=None) for i in range(5))
    assert fill(fixed, queue, "cuda:0") == ["j0", "j1"]  # N per device, memory unknown or not
    assert fixed_policy_for_workers(["cuda:0", "cuda:1"], 3) == (["cuda:0", "cuda:1"], {"cuda:0": 2, "cuda:1": 1})
    assert fixed_policy_for_workers(["cpu"], None) == (["cpu"], {"cpu": 1})


def test_jobs_that_cannot_share_run_alone_with_the_ladder_and_the_device_drains_for_them():
    p = packer({"cuda:0": 10000.0})
    small, unknown, huge = J("small"), J("unknown", mb=None), J("huge", mb=9000.0)  # 9000 x 1.2 + 500 > 10000
    assert not p.must_run_alone(small, "cuda:0")
    assert p.must_run_alone(unknown, "cuda:0") and p.must_run_alone(huge, "cuda:0")
    queue = deque([small, huge, J("after")])
    assert p.pick(queue, "cuda:0") is small and p.start(small, "cuda:0") is False  # shares: no ladder
    assert p.pick(queue, "cuda:0") is None  # huge waits for the device to drain; "after" does not jump it
    p.finish(small, "cuda:0")
    assert p.pick(queue, "cuda:0") is huge and p.start(huge, "cuda:0") is True  # alone: the OOM ladder is on
    assert p.pick(queue, "cuda:0") is None  # nothing joins a job that runs alone
    p.finish(huge, "cuda:0")
    assert p.pick(queue, "cuda:0").key == "after"
    # a device whose memory is unknown runs one job at a time under auto
    q = packer({"mps": None})
    queue = deque([J("a"), J("b")])
    assert fill(q, queue, "mps") == ["a"]


def test_an_oom_lowers_the_device_concurrency_and_the_job_runs_again_alone():
    p = packer({"cuda:0": 10000.0})
    queue = deque(J(f"j{i}") for i in range(5))
    assert fill(p, queue, "cuda:0") == ["j0", "j1", "j2"]
    p.oom(J("j1"), "cuda:0")
    queue.appendleft(J("j1"))
    assert p.limit["cuda:0"] == 2
    assert p.events == [{"device": "cuda:0", "job": "j1", "limit": 2, "why": "out of memory with 3 jobs running"}]
    assert p.pick(queue, "cuda:0") is None  # j1 must run alone: the device drains
    p.finish(J("j0"), "cuda:0")
    p.finish(J("j2"), "cuda:0")
    assert p.pick(queue, "cuda:0").key == "j1" and p.start(J("j1"), "cuda:0") is True
    p.finish(J("j1"), "cuda:0")
    assert fill(p, queue, "cuda:0") == ["j3", "j4"]  # two at once from now on, not three


def test_wall_time_schedules_as_the_launcher_would():
    jobs = [J(f"j{i}") for i in range(4)]
    ten = lambda job, device: 10.0  # noqa: E731
    assert wall_time(jobs, ten, packer({"cuda:0": 1e5}, PackingPolicy(auto=False, cap=1))) == 40.0
    assert wall_time(jobs, ten, packer({"cuda:0": 1e5, "cuda:1": 1e5}, PackingPolicy(auto=False, cap=1))) == 20.0
    assert wall_time(jobs, ten, packer({"cuda:0": 6000.0})) == 20.0  # two fit at once (2 x 2900)
    uneven = lambda job, device: {"j0": 30.0}.get(job.key, 10.0)  # noqa: E731
    assert wall_time(jobs, uneven, packer({"cuda:0": 6000.0})) == 30.0  # j1, j2, j3 run beside j0


def test_device_memory_stand_ins(monkeypatch):
    assert device_memory_mb(["cuda:0", "cuda:1"], memory_gb=80) == {"cuda:0": 81920.0, "cuda:1": 81920.0}
    import splice.runner.packing as packing

    monkeypatch.setattr(packing, "_probe_cuda_free_mb", lambda: {"cuda:0": 1000.0})
    monkeypatch.setattr(packing, "_meminfo_available_mb", lambda: 5000.0)
    assert device_memory_mb(["cuda:0", "cuda:1", "cpu", "mps"]) == {"cuda:0": 1000.0, "cuda:1": None,
                                                                     "cpu": 5000.0, "mps": None}  # fmt: skip


# --------------------------------------------------------------------------------------
# the launcher, with worker processes on a stand-in GPU
# --------------------------------------------------------------------------------------
@pytest.fixture
def toy(tmp_path, dummies):
    root, manifest = make_dataset(tmp_path, 4)
    return root, load_manifest(manifest), tmp_path / "events.log"


@pytest.mark.timeout(120)
def test_launcher_packs_jobs_on_a_stand_in_gpu_and_reruns_an_oom_alone(toy, tmp_path):
    root, manifest, log = toy
    req = PlanRequest(methods=["dummy"], manifests=[manifest], root=root, preset="smoke",
                      options={"dummy": {"log": str(log), "block_on": "p0", "oom_once": "p1"}})  # fmt: skip
    jobs = plan_jobs(req)
    # 2 x (2000 x 1.2 + 500) = 5800 fit in 6000 MB: p0 and p1 start together on "cuda:0" (the dummy runs anywhere)
    packing = Packing(PackingPolicy(auto=True, cap=4), {"cuda:0": 6000.0}, lambda job, device: 2000.0)
    handled = threading.Event()  # the launcher has dealt with p1's out-of-memory error

    class Seen(logging.Handler):
        def emit(self, record):
            if "out of memory beside other jobs" in record.getMessage():
                handled.set()

    def release_p0():  # p0 holds the device until the launcher has handled p1's OOM
        handled.wait(timeout=90)
        (tmp_path / "events.log.go").write_text("go")

    seen = Seen()
    logging.getLogger("splice.runner.local").addHandler(seen)
    helper = threading.Thread(target=release_p0, daemon=True)
    helper.start()
    try:
        outcomes = run_local(jobs, RunStore(tmp_path / "run"), ["cuda:0"], packing=packing)
    finally:
        logging.getLogger("splice.runner.local").removeHandler(seen)
        handled.set()
    helper.join(timeout=5)
    assert sorted(o.state for o in outcomes) == ["done"] * 4  # the oom is not an outcome: the job ran again
    assert packing.events == [{"device": "cuda:0", "job": str(jobs[1].key), "limit": 1,
                               "why": "out of memory with 2 jobs running"}]  # fmt: skip
    ev = events(log)
    assert ev.index(("start", "p1")) < ev.index(("end", "p0"))  # packed: p1 started beside the running p0
    assert [e for e in ev if e[1] == "p1"] == [("start", "p1"), ("oom", "p1"), ("start", "p1"), ("end", "p1")]
    assert ev[ev.index(("end", "p0")):] == [("end", "p0"), ("start", "p1"), ("end", "p1"), ("start", "p2"),
                                            ("end", "p2"), ("start", "p3"), ("end", "p3")]  # alone, then one at a time
    store = RunStore(tmp_path / "run")
    assert all(store.read_record(j.key).ok for j in jobs)
    assert store.read_record(jobs[1].key).device == "cuda:0"


@pytest.mark.timeout(120)
def test_bench_with_jobs_per_device_records_the_estimate_and_the_packing(toy, tmp_path):
    root, manifest, log = toy
    req = PlanRequest(methods=["dummy"], manifests=[manifest], root=root, preset="smoke",
                      options={"dummy": {"log": str(log)}})  # fmt: skip
    launch = LaunchOptions(out=tmp_path / "run", devices=["cpu"], progress=False,
                           jobs_per_device=PackingPolicy(auto=False, cap=2))  # fmt: skip
    summary = bench(req, launch)
    assert summary.done == 4 and summary.packing_events == []
    assert summary.estimate["unknown_jobs"] == 4  # no record, no reference figure for the dummy yet
    assert "--jobs-per-device 2" in summary.estimate["schedule"]
    from splice.runner.runlog import read_invocations

    settings = read_invocations(tmp_path / "run")[-1]["settings"]
    assert settings["packing"]["jobs_per_device"] == 2 and settings["estimate"]["methods"][0]["jobs"] == 4
    pids = {line.split()[2] for line in log.read_text().splitlines()}
    assert len(pids) == 2  # two workers on one device
