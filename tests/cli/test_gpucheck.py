"""``splice gpu-check``: one line and exit 0 without a GPU; with a faked GPU, every check's command line is
one the CLI accepts, and the summary, the reasons and the exit code follow what the commands did."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from splice.cli import cli
from splice.cli import gpucheck as gc
from tests.support.dummies import PROJECT
from tests.support.store import write_job

DATASETS = PROJECT / "datasets"


def test_without_a_gpu_one_line_and_exit_0():
    r = subprocess.run([sys.executable, "-m", "splice", "gpu-check"], capture_output=True, text=True, timeout=120,
                       cwd=PROJECT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    said = json.loads(lines[0])
    assert said["gpu_check"] == "skipped" and said["reason"].startswith("no CUDA GPU here") and said["checks"] == []


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch sees one 24 GB GPU (nothing ever runs on it: the checks' processes are stand-ins too)."""
    import torch

    class Props:
        total_memory = 24 * 2**30

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Stand-in GPU")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: Props())


def _parse(argv: list[str]) -> None:
    """Parse ``splice ARGV`` with the real commands (options, choices, types), without running it."""
    cmd: click.Command = cli
    ctx = cmd.make_context("splice", list(argv), resilient_parsing=False)
    while isinstance(cmd, click.Group):
        with warnings.catch_warnings():  # click 8.2 deprecates protected_args (9.0 keeps everything in args)
            warnings.simplefilter("ignore", DeprecationWarning)
            rest = [*ctx.protected_args, *ctx.args]
        if not rest:
            break
        sub = cmd.get_command(ctx, rest[0])
        if sub is None:  # a group that runs itself (bench, score) was given options only
            break
        cmd, ctx = sub, sub.make_context(rest[0], rest[1:], parent=ctx)


def test_every_check_is_a_command_line_the_cli_accepts(tmp_path):
    checks = gc.plan_checks("cuda", tmp_path, DATASETS)
    names = [c.name for c in checks]
    assert names[:5] == ["run-fp32", "run-bf16", "run-compile", "bench", "score-detector"]
    assert names[-1] == "perf" and "score-vit" in names
    assert ("score-segmenter" in names) == ("--segmenter" in gc.score_options())
    if "score-segmenter" in names:
        seg = next(c for c in checks if c.name == "score-segmenter")
        assert seg.argv[seg.argv.index("--segmenter") + 1] == "panoptic"
    for c in checks:
        _parse(c.argv)  # raises click's UsageError / NoSuchOption on a bad flag or value
    bench = next(c for c in checks if c.name == "bench")
    assert bench.argv[bench.argv.index("--devices") + 1] == "cuda:0"  # one GPU ...
    assert bench.argv[bench.argv.index("--jobs-per-device") + 1] == "2"  # ... two jobs at once
    assert "--compile" in checks[2].argv and Path(checks[0].argv[1]).exists()


def _write_outputs(work: Path, name: str, fail: str | None) -> None:
    """What each command would have written on a GPU."""
    if name.startswith("run-"):
        rec = {"status": "ok", "device": "cuda", "peak_memory_mb": 3000.0 + len(name),
               "info": {"steps": 76, "seconds_per_step": 0.05}}  # fmt: skip
        (work / name).mkdir(parents=True, exist_ok=True)
        (work / name / "record.json").write_text(json.dumps(rec))
    elif name == "bench":
        for i, (pair, method, device) in enumerate((("a", "splice", "cuda:0"), ("b", "strotss", "cuda:0"),
                                                    ("c", "reinhard", "cpu"))):  # colour transfer: CPU only
            key = write_job(work / "bench", "demo", pair, method, device=device, peak_memory_mb=100.0 * (i + 1))
            rec = json.loads((work / "bench" / key.relpath() / "record.json").read_text())
            rec["pid"] = 1000 + i % 2  # two worker processes
            (work / "bench" / key.relpath() / "record.json").write_text(json.dumps(rec))
    elif name.startswith("score-"):
        metric = {"score-vit": "vit", "score-segmenter": "panoptic"}.get(name, "iou")
        for p in (work / "bench" / "outputs").glob("*/*/*/*"):
            (p / "metrics").mkdir(exist_ok=True)
            (p / "metrics" / f"{metric}.json").write_text("{}")
    elif name == "perf":
        (work / "perf").mkdir(parents=True, exist_ok=True)
        rows = [{"backbone": "vit_base_patch8_224", "size": "512", "mode": m, "seconds_per_step": s,
                 "peak_memory_mb": 5000.0} for m, s in (("reference", 0.3), ("bf16", 0.08))]  # fmt: skip
        (work / "perf" / "perf.json").write_text(json.dumps({"rows": rows}))


def fake_runner(work: Path, fail: dict[str, tuple[int | None, str]] | None = None):
    fail = fail or {}
    calls = []

    def run(argv, sidecar, timeout):
        name = sidecar.name.split(".")[0]
        calls.append(name)
        if name in fail:
            code, err = fail[name]
            return gc.Ran(code, err, 1.5, None)
        _write_outputs(work, name, None)
        return gc.Ran(0, "", 2.0, 1234.0 if name.startswith("score") else None)

    return run, calls


def test_with_a_faked_gpu_all_checks_pass_and_the_summary_says_so(fake_gpu, tmp_path, monkeypatch):
    runner, calls = fake_runner(tmp_path / "work")
    monkeypatch.setattr(gc, "run_in_process", runner)
    r = CliRunner().invoke(cli, ["gpu-check", "--dest", str(tmp_path / "work")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["gpu_check"] == "passed" and out["gpu"] == "Stand-in GPU" and out["memory_gb"] == 24.0
    assert out["failed"] == 0 and out["passed"] == len(out["checks"]) == len(calls)
    by = {c["name"]: c for c in out["checks"]}
    assert by["run-bf16"]["reason"] == "ok: 76 steps on cuda, 0.050 s/step"
    assert by["run-bf16"]["peak_memory_mb"] == 3008.0  # from the record
    assert by["bench"]["reason"] == "ok: 3 jobs, 3 methods, 2 workers on cuda:0"
    assert by["bench"]["peak_memory_mb"] == 300.0  # the largest of the records'
    assert by["score-vit"]["peak_memory_mb"] == 1234.0  # the command's own process
    assert by["perf"]["reason"] == "ok: 2 configurations, fastest bf16 0.080 s/step" and by["perf"]["seconds"] == 2.0
    assert all(c["command"].startswith("splice ") for c in out["checks"])


def test_with_a_faked_gpu_a_failure_is_one_line_and_exit_1(fake_gpu, tmp_path, monkeypatch):
    runner, calls = fake_runner(tmp_path / "work", {
        "run-compile": (1, "Traceback (most recent call last):\n  ...\ntorch._dynamo.exc.BackendCompilerFailed: "
                           "backend='inductor' raised: no C compiler\n"),
        "bench": (None, ""),
    })  # fmt: skip
    monkeypatch.setattr(gc, "run_in_process", runner)
    r = CliRunner().invoke(cli, ["gpu-check", "--dest", str(tmp_path / "work")])
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    by = {c["name"]: c for c in out["checks"]}
    assert out["gpu_check"] == "failed" and out["failed"] == 2 + (len(out["checks"]) - 5)  # the score checks too
    assert by["run-compile"]["reason"] == ("exit code 1: torch._dynamo.exc.BackendCompilerFailed: backend='inductor' "
                                           "raised: no C compiler")  # fmt: skip
    assert by["bench"]["reason"] == f"timed out after {gc.CHECK_TIMEOUT} s"
    assert by["score-vit"]["reason"].startswith("no finished jobs")  # said why, after the bench failed
    assert by["run-fp32"]["passed"] and by["perf"]["passed"]
    assert out["outputs"] == str(tmp_path / "work")


def test_checks_subset_and_unknown_names(fake_gpu, tmp_path, monkeypatch):
    runner, calls = fake_runner(tmp_path / "work")
    monkeypatch.setattr(gc, "run_in_process", runner)
    r = CliRunner().invoke(cli, ["gpu-check", "--dest", str(tmp_path / "work"), "--checks", "run-bf16,perf"])
    assert r.exit_code == 0 and calls == ["run-bf16", "perf"]
    r = CliRunner().invoke(cli, ["gpu-check", "--checks", "run-fp16"])
    assert r.exit_code == 2 and "--checks 'run-fp16': run-fp16 unknown; use run-fp32" in r.output


def test_the_child_process_writes_its_peak(tmp_path):
    sidecar = tmp_path / "peak.json"
    r = gc.run_in_process(["--version"], sidecar, timeout=120)
    assert r.returncode == 0 and r.peak_memory_mb is None  # no CUDA here: nothing to read
    assert json.loads(sidecar.read_text()) == {"peak_memory_mb": None}
