"""Dummy methods for the runner's tests (registered at test time, never in splice.core.registry).

``dummy`` returns the structure image (resized to ``max_side`` when set) and is steered by its
typed options (:class:`DummyOptions`): ``log`` (append "start/end <pair> <pid>" lines), ``sleep``
(seconds), ``block_on`` (a pair id that waits until ``<log>.go`` exists), ``fail_on`` (pair ids that raise),
``oom_above`` (raise torch.OutOfMemoryError while the effective max_side is above it, or native
when -1), ``die_on`` (pair ids whose process SIGKILLs itself), ``oom_once`` (pair ids that raise
torch.OutOfMemoryError on their first attempt only, logged as "oom <pair>": a job that ran out of
memory beside others), ``scratch`` (write a 1000-byte ``checkpoint.pt`` into the job's work folder,
as a method that checkpoints does). ``nomaxside`` is the same method without ``supports_max_side``;
``picky`` declares per-data-set settings: ``sleep=0.01`` on ``toy``, not applicable to ``wild``.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from splice.core.geometry import Geometry
from splice.core.imageio import load_rgb
from splice.core.method import Method, MethodResult, NotApplicable, Pair, RunSettings
from splice.core.registry import methods

TESTS = Path(__file__).resolve().parents[1]
PROJECT = TESTS.parent


@dataclass(frozen=True)
class DummyOptions:
    log: str | None = None
    sleep: float = 0.0
    block_on: str | None = None
    fail_on: tuple[str, ...] = ()
    oom_above: int | None = None
    die_on: tuple[str, ...] = ()
    oom_once: tuple[str, ...] = ()
    scratch: bool = False


def _log(o: DummyOptions, event: str, pair: Pair) -> None:
    if o.log:
        fd = os.open(o.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{event} {pair.pair_id} {os.getpid()}\n".encode())
        finally:
            os.close(fd)


class Dummy(Method):
    name = "dummy"
    paper = "-"
    summary = "Test method steered by its options."
    supports_max_side = True
    in_benchmark = False
    Options = DummyOptions

    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:
        o = self.options(settings)
        _log(o, "start", pair)
        if pair.pair_id in o.die_on:
            os.kill(os.getpid(), signal.SIGKILL)
        if pair.pair_id in o.oom_once and settings.workdir is not None:
            marker = Path(settings.workdir) / "oom-once"
            if not marker.exists():
                import torch

                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text("x")
                _log(o, "oom", pair)
                raise torch.OutOfMemoryError("CUDA out of memory (beside other jobs)")
        if o.block_on == pair.pair_id:
            go = Path(str(o.log) + ".go")
            while not go.exists():
                time.sleep(0.02)
        if o.scratch and settings.workdir is not None:
            Path(settings.workdir).mkdir(parents=True, exist_ok=True)
            (Path(settings.workdir) / "checkpoint.pt").write_bytes(b"\0" * 1000)
        if o.sleep:
            time.sleep(o.sleep)
        if pair.pair_id in o.fail_on:
            raise RuntimeError(f"dummy failure on {pair.pair_id}\nsecond line")
        s = load_rgb(pair.structure, role="structure image", min_side=0)
        load_rgb(pair.appearance, role="appearance image", min_side=0)
        if o.oom_above is not None:
            import torch

            effective = settings.max_side or min(s.size)
            if o.oom_above < 0 or effective > o.oom_above:
                raise torch.OutOfMemoryError(f"CUDA out of memory (max_side {settings.max_side})")
        geom = Geometry.identity(s.size)
        image = s.image.copy()
        if settings.max_side and min(s.size) > settings.max_side:
            geom = Geometry.resize_short_side(s.size, settings.max_side)
            image = geom.apply(image)
        _log(o, "end", pair)
        return MethodResult(image=image, geometry=geom,
                            info={"inputs": {"structure": s.record()}, "random_weights": True,
                                  "weights": {"spec": "random"}, "pid": os.getpid(),
                                  "workdir": str(settings.workdir)})  # fmt: skip


class NoMaxSide(Dummy):
    name = "nomaxside"
    supports_max_side = False


class CudaOnly(Dummy):
    name = "cudaonly"
    devices = ("cuda",)


class CpuOnly(Dummy):
    name = "cpuonly"
    devices = ("cpu",)


class Picky(Dummy):
    name = "picky"
    datasets = {"toy": {"sleep": 0.01}, "wild": NotApplicable("no model for wild images")}


def register() -> None:
    """Make the dummies resolvable by name (tests call this; workers re-register from the job's target)."""
    for name, cls in (("dummy", "Dummy"), ("nomaxside", "NoMaxSide"), ("cudaonly", "CudaOnly"),
                      ("cpuonly", "CpuOnly"), ("picky", "Picky")):
        if name not in methods:
            methods.register(name, f"tests.support.dummies:{cls}")


def ensure_importable(monkeypatch) -> None:
    """``tests.support.dummies`` must import in worker, submitit and SLURM processes too."""
    monkeypatch.syspath_prepend(str(PROJECT))
    parts = [str(PROJECT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(dict.fromkeys(parts)))


def make_dataset(tmp_path: Path, n: int = 4, name: str = "toy", big: tuple[int, ...] = ()) -> tuple[Path, Path]:
    """A data root with ``n`` small pairs (p0, p1, ...) and its manifest; pairs in ``big`` get a 1200x900 structure."""
    from tests.support.images import make_image

    root = tmp_path / "data"
    lines = ["# version: 1", f"# name: {name}", "pair_id,structure,appearance"]
    for i in range(n):
        d = root / name / f"p{i}"
        d.mkdir(parents=True, exist_ok=True)
        size = (1200, 900) if i in big else (96, 80)
        make_image(*size, seed=i).save(d / "structure.png")
        make_image(72, 72, seed=50 + i).save(d / "appearance.png")
        lines.append(f"p{i},{name}/p{i}/structure.png,{name}/p{i}/appearance.png")
    manifest = tmp_path / f"{name}.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return root, manifest


def events(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(line.split()[:2]) for line in log.read_text().splitlines() if line.strip()]
