"""``splice gpu-check`` (``make gpu-check``): every CUDA path of the suite, end to end, in a few minutes.

Each check runs one ``splice`` command line in its own process, as a user would, on the demo data
(``datasets/demo``) with random weights allowed: ``splice run`` in fp32, bf16 and with the generator
compiled; ``splice bench`` of the smoke methods with two jobs at once on one GPU; ``splice score``
with the detector, the ViT and (when the suite has it) the segmenter; and ``splice perf``. A check
passes when its command exits 0 and what it wrote says it ran on the GPU. The summary is one JSON
document: per check what ran, seconds, peak memory and pass/fail with a one-line reason. The exit
code is 0 only when every check passed; with no CUDA GPU here it says so in one line and exits 0.

Peak memory of a check: the largest of ``torch.cuda.max_memory_allocated`` in the command's own
process (read at its exit) and the peaks its records hold (bench workers, perf children).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click

from splice.cli import options as opt

#: the demo pair every check runs on (512x512, embedded in the repository)
DEMO_PAIR = "giraffe_zebra"
CHECK_TIMEOUT = 240  # seconds per check (the whole check is meant to take under 5 minutes on one GPU)


@dataclass
class Check:
    """One command line of the check and how to tell that it did its job."""

    name: str
    argv: list[str]  # after ``splice``
    verify: Callable[[], str] = lambda: "ok"  # reads what the command wrote; returns a one-line reason (ok ...)
    peaks: Callable[[], list[float]] = lambda: []  # peak memory figures of what it wrote (MB)

    @property
    def command(self) -> str:
        return shlex.join(["splice", *self.argv])


@dataclass
class CheckResult:
    name: str
    command: str
    passed: bool
    seconds: float
    peak_memory_mb: float | None
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "command": self.command, "passed": self.passed, "seconds": round(self.seconds, 1),
                "peak_memory_mb": None if self.peak_memory_mb is None else round(self.peak_memory_mb, 1),
                "reason": self.reason}  # fmt: skip


class CheckFailed(Exception):
    """What a check's ``verify`` raises: the one-line reason it failed."""


# --------------------------------------------------------------------------------------
# reading what a command wrote
# --------------------------------------------------------------------------------------
def _records(folder: Path) -> list:
    from splice.core.store import RunStore

    return [rec for _, rec in RunStore(folder).iter_records()]


def _on(device: str, where: str | None) -> bool:
    return bool(where) and str(where).split(":")[0] == device.split(":")[0]


def _verify_run(out: Path, device: str) -> str:
    from splice.core.atomic import read_json

    path = out / "record.json"
    if not path.exists():
        raise CheckFailed(f"no {path}")
    rec = read_json(path)
    if rec.get("status") != "ok":
        raise CheckFailed(f"record status {rec.get('status')}: {rec.get('error')}")
    if not _on(device, rec.get("device")):
        raise CheckFailed(f"ran on {rec.get('device')}, not {device}")
    info = rec.get("info") or {}
    return f"ok: {info.get('steps', '?')} steps on {rec.get('device')}, {info.get('seconds_per_step', 0):.3f} s/step"


def _cpu_only(method: str) -> bool:
    """A method that runs on the CPU only (colour transfer) runs there beside the GPU jobs."""
    from splice.core.registry import methods

    try:
        return tuple(methods.get_class(method).devices) == ("cpu",)
    except Exception:  # noqa: BLE001 - an unknown method is not excused
        return False


def _verify_bench(out: Path, device: str, jobs_per_device: int) -> str:
    recs = _records(out)
    if not recs:
        raise CheckFailed(f"no job records in {out}")
    bad = [r for r in recs if not r.ok]
    if bad:
        raise CheckFailed(f"{len(bad)} of {len(recs)} jobs failed, e.g. {bad[0].job}: {bad[0].error}")
    elsewhere = [r for r in recs if not _on(device, r.device) and not _cpu_only(r.job.method)]
    if elsewhere:
        raise CheckFailed(f"{len(elsewhere)} jobs ran on {elsewhere[0].device}, not {device}, "
                          f"e.g. {elsewhere[0].job}")  # fmt: skip
    workers = {r.pid for r in recs}
    if len(workers) < jobs_per_device:
        raise CheckFailed(f"{len(recs)} jobs ran in {len(workers)} worker process(es), not {jobs_per_device}")
    return f"ok: {len(recs)} jobs, {len({r.job.method for r in recs})} methods, {len(workers)} workers on {device}"


def _verify_score(out: Path, metric: str) -> str:
    from splice.core.store import RunStore

    store = RunStore(out)
    recs = [r for r in _records(out) if r.ok]
    missing = [r.job for r in recs if not (store.metrics_dir(r.job) / f"{metric}.json").exists()]
    if not recs:
        raise CheckFailed(f"no finished jobs in {out} to score (the bench check must pass first)")
    if missing:
        raise CheckFailed(f"{len(missing)} of {len(recs)} jobs have no metrics/{metric}.json, e.g. {missing[0]}")
    return f"ok: {len(recs)} jobs scored ({metric})"


def _verify_perf(dest: Path) -> str:
    from splice.core.atomic import read_json

    path = dest / "perf.json"
    if not path.exists():
        raise CheckFailed(f"no {path}")
    rows = read_json(path).get("rows", [])
    bad = [r for r in rows if "error" in r]
    if bad:
        raise CheckFailed(f"{bad[0]['backbone']} {bad[0]['size']} {bad[0]['mode']}: {bad[0]['error']}")
    best = min(rows, key=lambda r: r["seconds_per_step"]) if rows else None
    return f"ok: {len(rows)} configurations" + (f", fastest {best['mode']} {best['seconds_per_step']:.3f} s/step"
                                                if best else "")  # fmt: skip


def _record_peak(path: Path) -> list[float]:
    from splice.core.atomic import read_json

    try:
        v = read_json(path).get("peak_memory_mb")
        return [float(v)] if v is not None else []
    except (OSError, ValueError):
        return []


def _perf_peaks(path: Path) -> list[float]:
    from splice.core.atomic import read_json

    try:
        return [float(r["peak_memory_mb"]) for r in read_json(path).get("rows", []) if r.get("peak_memory_mb")]
    except (OSError, ValueError, KeyError):
        return []


# --------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------
def score_options() -> set[str]:
    """The long options ``splice score`` takes here (the segmenter check runs only when it exists)."""
    from splice.cli.score import command as score

    return {o for p in score.params for o in getattr(p, "opts", []) if o.startswith("--")}


def plan_checks(device: str, work: Path, datasets: Path) -> list[Check]:
    """The checks in order (later ones read what earlier ones wrote: score scores the bench's store)."""
    pair = datasets / "demo" / DEMO_PAIR
    s, a = str(pair / "structure.png"), str(pair / "appearance.png")
    checks: list[Check] = []
    # splice run: the paper's ViT-B/8 at the pair's 512 px, 76 steps (step 75 is a full-image step)
    for name, extra in (("run-fp32", ["--precision", "fp32"]), ("run-bf16", ["--precision", "bf16"]),
                        ("run-compile", ["--precision", "fp32", "--compile"])):  # fmt: skip
        out = work / name
        checks.append(Check(name, ["run", s, a, "-o", str(out), "--preset", "paper", "--steps", "76",
                                   "--device", device, "--allow-random-weights", "--no-progress", *extra],
                            verify=lambda out=out: _verify_run(out, device),
                            peaks=lambda out=out: _record_peak(out / "record.json")))  # fmt: skip
    one_gpu = device if ":" in device else f"{device}:0"
    store = work / "bench"
    checks.append(Check("bench", ["bench", "--methods", "smoke", "--datasets", "demo", "--root", str(datasets),
                                  "--out", str(store), "--preset", "smoke", "--devices", one_gpu,
                                  "--jobs-per-device", "2", "--allow-random-weights", "--no-progress"],
                        verify=lambda: _verify_bench(store, one_gpu, 2),
                        peaks=lambda: [r.peak_memory_mb for r in _records(store) if r.peak_memory_mb]))  # fmt: skip
    # (name, --metrics, the metric record each job gets, more options)
    scoring = [("score-detector", "iou", "iou", []), ("score-vit", "vit", "vit", [])]
    options = score_options()
    if "--segmenter" in options:  # the COCO-panoptic segmenter (objects and stuff)
        scoring[0][3].extend(["--segmenter", "maskrcnn"])
        size = ["--panoptic-size", "320"] if "--panoptic-size" in options else []
        scoring.insert(1, ("score-segmenter", "iou", "panoptic", ["--segmenter", "panoptic", *size]))
    for name, metrics, record, extra in scoring:
        checks.append(Check(name, ["score", "--out", str(store), "--metrics", metrics, "--device", one_gpu,
                                   "--allow-random-weights", "--detector-size", "320", "--no-progress", *extra],
                            verify=lambda record=record: _verify_score(store, record)))  # fmt: skip
    dest = work / "perf"
    checks.append(Check("perf", ["perf", "--device", one_gpu, "--backbones", "B/8", "--sizes", "512",
                                 "--modes", "reference,fp32,bf16,compile", "--steps", "2", "--dest", str(dest),
                                 "--json"],
                        verify=lambda: _verify_perf(dest), peaks=lambda: _perf_peaks(dest / "perf.json")))  # fmt: skip
    return checks


# --------------------------------------------------------------------------------------
# running them
# --------------------------------------------------------------------------------------
@dataclass
class Ran:
    """What a check's process did: exit code, stderr, seconds, the CUDA peak of its own process."""

    returncode: int | None  # None = timed out
    stderr: str
    seconds: float
    peak_memory_mb: float | None = None


def run_in_process(argv: list[str], sidecar: Path, timeout: float) -> Ran:
    """``splice ARGV`` in a fresh process whose CUDA peak is written to ``sidecar`` when it exits."""
    cmd = [sys.executable, "-m", "splice.cli.gpucheck", str(sidecar), *argv]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        code, err = r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        code = None
    seconds = time.perf_counter() - t0
    peak = None
    try:
        peak = json.loads(sidecar.read_text()).get("peak_memory_mb")
    except (OSError, ValueError):
        pass
    return Ran(code, err, seconds, peak)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in reversed(lines):  # the one-line error of a splice command, else the exception line
        if line.startswith("error:") or "Error" in line.split(":")[0]:
            return line[:300]
    return lines[-1][:300] if lines else "no message"


def run_checks(checks: list[Check], work: Path, timeout: float = CHECK_TIMEOUT,
               runner: Callable[[list[str], Path, float], Ran] | None = None,
               report: Callable[[CheckResult], None] = lambda r: None) -> list[CheckResult]:  # fmt: skip
    """Run every check (``runner``: default :func:`run_in_process`); a failed one does not stop the others
    (a score check after a failed bench says why)."""
    runner = runner or run_in_process
    results = []
    for c in checks:
        ran = runner(c.argv, work / f"{c.name}.peak.json", timeout)
        if ran.returncode is None:
            passed, reason = False, f"timed out after {timeout:.0f} s"
        elif ran.returncode != 0:
            passed, reason = False, f"exit code {ran.returncode}: {_last_line(ran.stderr)}"
        else:
            try:
                passed, reason = True, c.verify()
            except CheckFailed as e:
                passed, reason = False, str(e)
            except Exception as e:  # noqa: BLE001 - a check that cannot read its outputs fails, with why
                passed, reason = False, f"{type(e).__name__}: {e}"
        try:
            peaks = [p for p in c.peaks() if p is not None]
        except Exception:  # noqa: BLE001
            peaks = []
        if ran.peak_memory_mb is not None:
            peaks.append(float(ran.peak_memory_mb))
        result = CheckResult(c.name, c.command, passed, ran.seconds, max(peaks) if peaks else None, reason)
        results.append(result)
        report(result)
    return results


def gpu_description(device: str) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        props = torch.cuda.get_device_properties(device)
        out.update(gpu=torch.cuda.get_device_name(device), memory_gb=round(props.total_memory / 2**30, 1))
    except Exception as e:  # noqa: BLE001 - describing the GPU never stops the check
        out["gpu"] = f"unknown ({type(e).__name__})"
    return out


def summary(results: list[CheckResult], described: dict[str, Any], seconds: float) -> dict[str, Any]:
    passed = sum(r.passed for r in results)
    return {"gpu_check": "passed" if passed == len(results) else "failed", **described,
            "seconds": round(seconds, 1), "passed": passed, "failed": len(results) - passed,
            "checks": [r.to_dict() for r in results]}  # fmt: skip


def no_gpu_line() -> str:
    import torch

    built = torch.version.cuda or "none (a CPU-only build)"
    return json.dumps({"gpu_check": "skipped", "reason": f"no CUDA GPU here (torch {torch.__version__}, CUDA build "
                       f"{built}); nothing was run", "checks": []})  # fmt: skip


@click.command("gpu-check")
@opt.device("cuda")
@click.option("--checks", "only", default=None, metavar="A,B",
              help="Run only these checks: run-fp32, run-bf16, run-compile, bench, score-detector, score-vit, "
                   "score-segmenter (when present), perf. Score checks read the bench check's store.")  # fmt: skip
@opt.dest("Keep the checks' outputs here [default: a temporary folder, removed when every check passed].")
@click.option("--timeout", type=click.IntRange(min=1), default=CHECK_TIMEOUT, show_default=True,
              help="Seconds per check.")
def command(device, only, dest, timeout) -> None:
    """Exercise every CUDA path end to end and print one JSON summary (exit 0 only if all passed).

    splice run (fp32, bf16, --compile) on a demo pair, splice bench of the smoke methods with two
    jobs at once on one GPU, splice score (detector, ViT, segmenter) and splice perf, each in its
    own process, with random weights allowed. Without a CUDA GPU it says so in one line and exits 0.

    \b
    Examples:
      splice gpu-check                       # make gpu-check
      splice gpu-check --device cuda:1 --dest gpu-check-out
      splice gpu-check --checks run-bf16,perf
    """
    import shutil
    import tempfile

    import torch

    from splice.core.devices import resolve_device
    from splice.core.paths import ensure_writable_dir

    if device.split(":")[0] in ("cuda", "auto") and not torch.cuda.is_available():
        click.echo(no_gpu_line())
        return
    dev = resolve_device(device)
    datasets = Path(__file__).resolve().parents[2] / "datasets"
    if not (datasets / "demo" / DEMO_PAIR / "structure.png").exists():
        raise click.UsageError(f"the demo data is not at {datasets / 'demo'}; run from a clone of splice-bench")
    work = Path(ensure_writable_dir(dest, "--dest")) if dest else Path(tempfile.mkdtemp(prefix="splice-gpu-check-"))
    checks = plan_checks(dev, work, datasets)
    if only:
        names = [c.name for c in checks]
        wanted = opt.split(only) or []
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise click.UsageError(f"--checks {only!r}: {', '.join(unknown)} unknown; use {', '.join(names)}")
        checks = [c for c in checks if c.name in wanted]

    def report(r: CheckResult) -> None:
        mem = "" if r.peak_memory_mb is None else f", peak {r.peak_memory_mb:.0f} MB"
        click.echo(f"{'PASS' if r.passed else 'FAIL'} {r.name} ({r.seconds:.0f} s{mem}): {r.reason}", err=True)

    t0 = time.perf_counter()
    results = run_checks(checks, work, timeout, report=report)
    result = summary(results, gpu_description(dev), time.perf_counter() - t0)
    if dest or result["failed"]:
        result["outputs"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    click.echo(json.dumps(result, indent=1))
    if result["failed"]:
        raise SystemExit(1)


def _child(sidecar: str, argv: list[str]) -> None:
    """``splice ARGV`` in this process; at exit, its CUDA peak goes to ``sidecar`` (run_in_process)."""
    import atexit

    def write_peak() -> None:
        torch = sys.modules.get("torch")
        peak = None
        try:
            if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
                peak = max(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count())) / 2**20
        except Exception:  # noqa: BLE001 - the peak is a nicety; the check's verdict does not depend on it
            peak = None
        Path(sidecar).write_text(json.dumps({"peak_memory_mb": peak}))

    atexit.register(write_peak)
    from splice.cli import main

    main(argv)


if __name__ == "__main__":  # one check's command, in a child process of run_checks (not a user command line)
    _child(sys.argv[1], sys.argv[2:])
