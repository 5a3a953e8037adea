"""splice.core.health: one classifier of every expected job, the commands that fix them, filters that match nothing."""

from __future__ import annotations

import json
import os
import socket

import pytest

from splice.core.atomic import atomic_write_json
from splice.core.claims import identity
from splice.core.errors import ConfigError
from splice.core.health import (
    JOB_SPEC,
    STATES,
    Fixer,
    attention,
    attention_lines,
    check_selection,
    counts,
    job_health,
    summary_text,
    survey,
)
from splice.core.record import JobKey
from splice.core.store import RunStore, human_size
from tests.support.store import dead_pid, write_job


def _spec(store: RunStore, key: JobKey, **extra) -> None:
    atomic_write_json(store.job_dir(key) / JOB_SPEC, {"key": key.to_dict(), "pair": {"pair_id": key.pair_id,
                      "structure": "s.png", "appearance": "a.png"}, **extra})  # fmt: skip


@pytest.fixture
def store(tmp_path) -> RunStore:
    """One job in every state (pair id = the state)."""
    root = tmp_path / "run"
    s = RunStore(root)
    write_job(root, "d", "done", "m")
    write_job(root, "d", "failed", "m", status="failed", error="boom")
    write_job(root, "d", "not-applicable", "m", status="not-applicable", error="no model for d")
    _spec(s, JobKey("d", "pending", "m", 0, "abc123"))
    _spec(s, JobKey("d", "planned-na", "m", 0, "abc123"), not_applicable="no model for d")
    running = JobKey("d", "running", "m", 0, "abc123")
    _spec(s, running)
    (s.job_dir(running) / "claim.json").write_text(json.dumps(identity()))  # this very process: alive
    stale = JobKey("d", "stale", "m", 0, "abc123")
    _spec(s, stale)
    (s.job_dir(stale) / "claim.json").write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid()}))
    corrupt = write_job(root, "d", "corrupt", "m")
    s.record_path(corrupt).write_text('{"schema": 2, "status": "ok", "jo')  # truncated mid-write
    gone = write_job(root, "d", "output-missing", "m")
    os.unlink(s.output_path(gone))
    orphan = JobKey("d", "claim-only", "m", 3, "abc123")  # no plan, no record: the path says the key
    s.job_dir(orphan).mkdir(parents=True)
    (s.job_dir(orphan) / "claim.json").write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid()}))
    return s


def test_every_state_is_named_once(store):
    jobs = {j.key.pair_id: j for j in survey(store)}
    assert {p: j.state for p, j in jobs.items()} == {
        "done": "done", "failed": "failed", "not-applicable": "not-applicable", "pending": "pending",
        "planned-na": "not-applicable", "running": "running", "stale": "stale", "corrupt": "corrupt",
        "output-missing": "output-missing", "claim-only": "stale"}  # fmt: skip
    assert jobs["claim-only"].key.seed == 3
    assert jobs["corrupt"].why.startswith("record.json is not JSON") and jobs["corrupt"].path.name == "record.json"
    assert jobs["output-missing"].path.name == "output.png" and jobs["failed"].why == "boom"
    assert jobs["stale"].why.startswith("process ") and jobs["running"].why.startswith("claimed by ")
    assert jobs["not-applicable"].why == jobs["planned-na"].why == "no model for d"
    assert jobs["pending"].pair["structure"] == "s.png"  # from the plan
    c = counts(jobs.values())
    assert list(c) == list(STATES) and sum(c.values()) == 10 and c["stale"] == 2
    assert summary_text(jobs.values()) == ("1 done, 1 failed, 1 running, 2 stale claim, 1 pending, 1 corrupt record, "
                                           "1 output missing, 2 not applicable")  # fmt: skip
    # the record store agrees: a corrupt record is not a result, and neither is an ok record without output
    assert store.load_record(jobs["corrupt"].key)[0] is None and not store.is_done(jobs["output-missing"].key)
    assert job_health(store, jobs["done"].key).ok


def test_fix_commands_come_from_the_bench_that_planned_the_job(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixer = Fixer(store)
    jobs = {j.key.pair_id: j for j in survey(store)}
    # no run.json: a command spelled from the job
    assert fixer.command(jobs["pending"]) == f"splice bench --methods m --datasets d --root DATA --out {store.root}"
    other = {"methods": ["x"], "datasets": ["d"], "root": "data", "out": str(store.root)}
    typed = ["splice", "bench", "--methods", "m", "--datasets", "d", "--root", "data", "--out", "run"]
    # recorded by a test harness, not the splice command: rebuilt from the recorded settings
    rebuilt = {"methods": ["m", "n"], "datasets": ["d"], "root": "data", "out": "run", "preset": "smoke",
               "seeds": [0, 1], "allow_random_weights": True, "options": {"m": {"steps": 3}}}  # fmt: skip
    atomic_write_json(store.root / "run.json", {"invocations": [
        {"command": typed, "cwd": str(tmp_path), "settings": {**other, "methods": ["m"]}},
        {"command": ["pytest", "-q"], "cwd": str(tmp_path), "settings": rebuilt},
        {"command": ["splice", "bench", "--methods", "x"], "cwd": str(tmp_path / "elsewhere"), "settings": other},
    ]})  # fmt: skip
    fixer = Fixer(store)
    assert fixer.command(jobs["pending"]) == ("splice bench --methods m,n --datasets d --root data --out run "
                                              "--preset smoke --seeds 0,1 --allow-random-weights "
                                              "--method-args m.steps=3")  # fmt: skip
    assert fixer.command(jobs["failed"]).endswith(" --retry-failed")
    assert fixer.command(jobs["done"]) is None and fixer.command(jobs["running"]) is None
    assert fixer.command(jobs["not-applicable"]) is None
    x = JobKey("d", "p", "x", 0, "h")  # planned by the last bench, run from another folder
    assert fixer.bench_command(x) == f"cd {tmp_path / 'elsewhere'} && splice bench --methods x"
    # a run folder copied or moved since its bench ran is fixed where it is now
    moved = {"command": typed[:-1] + ["runs/old"], "cwd": str(tmp_path), "settings": {**other, "methods": ["m"]}}
    atomic_write_json(store.root / "run.json", {"invocations": [moved]})
    expected = f"splice bench --methods m --datasets d --root data --out {store.root}"
    assert Fixer(store).command(jobs["pending"]) == expected
    moved["command"] = typed[:-2] + ["--out=runs/old"]
    atomic_write_json(store.root / "run.json", {"invocations": [moved]})
    assert Fixer(store).command(jobs["pending"]).endswith(f" --out={store.root}")
    # opened by a relative path from elsewhere: the command cds to the bench's folder, so --out is absolute
    elsewhere = tmp_path / "copies"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    moved["command"] = typed
    moved["cwd"] = str(tmp_path / "bench-was-here")
    atomic_write_json(store.root / "run.json", {"invocations": [moved]})
    assert Fixer(RunStore(os.path.relpath(store.root))).command(jobs["pending"]) == (
        f"cd {tmp_path / 'bench-was-here'} && splice bench --methods m --datasets d --root data --out {store.root}")
    monkeypatch.chdir(tmp_path)
    groups = attention(survey(store), fixer)
    assert [g.state for g in groups] == ["failed", "running", "stale", "pending", "corrupt", "output-missing"]
    corrupt = next(g for g in groups if g.state == "corrupt")
    assert "sets record.json aside (record.corrupt-<time>.json) and runs the job again" in corrupt.advice
    lines = attention_lines(groups, store.root, limit=1)
    assert lines[0].startswith("to fix, run the bench again: splice bench --methods m,n --datasets d")
    assert "2 stale claim: the bench command takes over the dead runner's claims and continues from work/" in lines
    assert any(line.startswith("  ... and 1 more") for line in lines)
    assert any(str(jobs["corrupt"].path) in line for line in lines)


def test_a_filter_that_matches_nothing_is_one_line():
    check_selection("--methods", None, ["a"], "run r")
    check_selection("--methods", ["a"], ["a", "b"], "run r")
    with pytest.raises(ConfigError) as e:
        check_selection("--methods", ["a", "nosuch"], ["b", "a"], "run runs/x")
    assert str(e.value) == "--methods nosuch: not in run runs/x; it holds: a, b"
    with pytest.raises(ConfigError, match=r"it holds: nothing"):
        check_selection("--datasets", ["d"], [], "run r")


def test_set_aside_never_overwrites_and_sizes(tmp_path):
    root = tmp_path / "run"
    key = write_job(root, "d", "p", "m")
    store = RunStore(root)
    first = store.set_aside_record(key, "corrupt")
    write_job(root, "d", "p", "m")
    second = store.set_aside_record(key, "corrupt")
    assert first != second and first.exists() and second.exists() and not store.record_path(key).exists()
    assert first.name.startswith("record.corrupt-") and first.suffix == ".json"
    assert store.set_aside_record(key, "corrupt") is None  # nothing left to set aside
    assert [k for k, _ in store.iter_records()] == []  # set-aside records are no results
    work = store.job_dir(key) / "work"
    work.mkdir()
    (work / "checkpoint.pt").write_bytes(b"\0" * 2500)
    os.link(work / "checkpoint.pt", store.job_dir(key) / "hardlink.pt")  # counted once
    assert store.work_usage() == 2500 and 2500 < store.disk_usage() < 2500 + 100_000
    assert human_size(999) == "999 B" and human_size(12_600_000) == "12.6 MB" and human_size(2.5e12) == "2.5 TB"
