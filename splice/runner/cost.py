"""What a benchmark will cost before it runs: each job's expected seconds and peak memory, and the wall time.

A job's estimate comes from, in this order:

1. **this store's records**: ``ok`` records of the same method on the same kind of device (``cuda``,
   ``cpu``, ``mps``): those of the job's configuration when there are any, else those whose
   configuration differs only in what the shape scales (steps, working size, ``max_side``; a smoke
   run's records say nothing about a paper run's). Each record is scaled to the job by the method's
   *shape* (:data:`SHAPES`: how its time grows with the steps and the image size): seconds by the
   median of ``record / shape(record)``, memory by the largest (packing must not under-estimate);
2. **the reference table** shipped with the suite (:data:`REFERENCE`), scaled the same way; every
   row says where its figures come from (measured with which command, or estimated how);
3. otherwise the job's cost is unknown, and the totals say how many jobs they leave out.

Shapes: ``seconds = fixed + per_step * steps * (share + (1 - share) * pixels / reference pixels)``
(``share``: the part of a step that does not grow with the image, e.g. Splice's ViT, whose input is
resized to 224 px) and ``memory = memory + per_mpx * (pixels - reference pixels)``. ``steps`` is
read from the job's configuration (Splice's ``steps``, STROTSS's ``iters_per_scale * scales``, ...).
``pixels`` are those the method works on: for methods that work at the image's resolution (Splice,
colour transfer) the structure image's (from its header, else the size its manifest lists) after
the configuration's ``resize`` (shorter side) and the job's ``max_side`` cap; for the others the
working size their configuration fixes (STROTSS's ``long_side``, WCT2's ``image_size``, SinCUT's crops).

The wall time schedules the jobs on the devices given with the launcher's own
:class:`~splice.runner.packing.Packer` in simulated time (one job per device, ``--workers``,
or ``--jobs-per-device``), or on ``--slurm-array-parallelism`` GPUs for SLURM (queue waits excluded).
"""

from __future__ import annotations

import heapq
import statistics
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from splice.core.record import JobRecord
from splice.core.store import RunStore
from splice.runner.jobs import Job
from splice.runner.packing import Packer, PackingPolicy, device_kind, fixed_policy_for_workers


# --------------------------------------------------------------------------------------
# how a method's cost grows
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """How a method's cost grows: with ``steps(config)``, and with the pixels it works on: the structure
    image's (``native``) or a working size its configuration fixes (``working(config)``, else constant)."""

    steps: Callable[[dict[str, Any]], float] = lambda config: 1.0
    native: bool = False  # works at the structure image's resolution
    working: Callable[[dict[str, Any]], float] | None = None  # pixels of a fixed working size (not native)
    keys: frozenset[str] = frozenset()  # the configuration keys ``steps`` and ``working`` read

    def comparable(self, a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Two configurations that differ only in what the shape scales (its keys, the size caps, the preset's
        name): one's records predict the other's cost. Any other difference (a backbone, a precision) does not."""
        ignore = self.keys | SCALED_KEYS
        return all(a.get(k) == b.get(k) for k in (set(a) | set(b)) - ignore)

    def pixels(self, image_pixels: int, config: dict[str, Any], reference: float) -> float:
        if self.native:
            return float(image_pixels)
        return float(self.working(config)) if self.working is not None else float(reference)


def _num(config: dict[str, Any], key: str, default: float) -> float:
    try:
        return float(config.get(key, default))
    except (TypeError, ValueError):
        return float(default)


#: configuration keys every shape scales by (working_pixels) or that do not change the computation
SCALED_KEYS = frozenset({"resize", "max_side", "preset"})

SHAPES: dict[str, Shape] = {
    "splice": Shape(lambda c: _num(c, "steps", 2000), native=True, keys=frozenset({"steps"})),
    "identity": Shape(native=True),
    "reinhard": Shape(native=True),
    "histogram": Shape(native=True),
    "strotss": Shape(lambda c: _num(c, "iters_per_scale", 200) * _num(c, "scales", 4),
                     working=lambda c: _num(c, "long_side", 512) ** 2,
                     keys=frozenset({"iters_per_scale", "scales", "long_side"})),
    "wct2": Shape(working=lambda c: _num(c, "image_size", 512) ** 2, keys=frozenset({"image_size"})),
    # structural-analogy's pyramid has 11 scales at its defaults (19 ... 220 px, measured); each trains niter steps
    "structural-analogy": Shape(lambda c: _num(c, "niter", 20000) * 11,
                                working=lambda c: _num(c, "img_size", 220) ** 2, keys=frozenset({"niter", "img_size"})),
    "sincut": Shape(lambda c: (_num(c, "n_epochs", 8) + _num(c, "n_epochs_decay", 8)) *
                    _num(c, "iters_per_epoch", 6250),
                    working=lambda c: _num(c, "crop_size", 64) ** 2 * _num(c, "batch_size", 16),
                    keys=frozenset({"n_epochs", "n_epochs_decay", "iters_per_epoch", "crop_size", "batch_size"})),
    "swapping-autoencoder": Shape(),
    "cross-image-attention": Shape(),
    "eye-for-an-eye": Shape(),
    "precomputed": Shape(),
    "external": Shape(),
}


@dataclass(frozen=True)
class Reference:
    """A method's cost on one kind of device at ``pixels`` working pixels and its ``paper`` steps."""

    seconds_fixed: float  # per job, whatever the size and steps (loading models, writing the output)
    seconds_per_step: float  # at ``pixels``
    memory_mb: float  # peak at ``pixels`` (what PeakMemory reads: CUDA tensors, or the process's RSS on a CPU)
    memory_per_mpx: float = 0.0  # growth of the peak per million working pixels
    pixels: int = 512 * 512
    source: str = "estimate"
    step_fixed_share: float = 0.0  # the share of a step at ``pixels`` that does not grow with them (Splice's ViT)
    #: the configuration the figures were measured with, in what the shape does not scale (a backbone, the
    #: network widths): a job whose configuration differs there gets no estimate from this row
    applies: tuple[tuple[str, Any], ...] = ()

    def mismatch(self, config: dict[str, Any]) -> str | None:
        """None when the row describes ``config``; else which setting differs, for the "unknown" reason."""
        for key, value in self.applies:
            if config.get(key, value) != value:
                return f"{key}={config.get(key)}, the reference figure is for {key}={value}"
        return None

    def seconds(self, steps: float, pixels: float) -> float:
        share = self.step_fixed_share
        return self.seconds_fixed + self.seconds_per_step * steps * (share + (1 - share) * pixels / self.pixels)

    def memory(self, pixels: float) -> float:
        return max(1.0, self.memory_mb + self.memory_per_mpx * (pixels - self.pixels) / 1e6)


#: How the CPU rows were measured (this project's machine: 2 cores of a Xeon with AVX-512, PyTorch 2.14.1,
#: shared with other work: load average 7-9 during the runs, so these are upper bounds, about 4x the figures
#: of a quiet run; README "Speed"). Splice: ViT-B/8, fp32, random weights, 512x512 and 1920x1080, by
#: ``splice perf --device cpu --backbones S/8,B/8 --sizes 512,hd --modes reference,fp32,bf16 --steps 3``; the
#: baselines by ``splice bench --methods M --datasets demo --root datasets --pairs giraffe_zebra --preset paper
#: --devices cpu --allow-random-weights``, with fewer steps by --method-args.
MEASURED_CPU = "measured on a loaded 2-core CPU"
#: How the CUDA rows were estimated (:data:`CUDA_ESTIMATE`), until measured: Splice's FLOPs per step
#: (counted by `splice perf` with torch.utils.flop_counter: 847 GFLOP for a 512 px crop step with ViT-B/8)
#: at an ASSUMED 10 TFLOP/s sustained (half an A100's fp32 peak), the share of a step that does not grow
#: with the image and the full-image steps as measured on the CPU; the baselines: their CPU seconds times
#: Splice's CUDA/CPU ratio (0.0013, measured under the same load, so the load cancels; small networks use a
#: GPU less well: read them as lower bounds); memory: the CPU peak less the 724 MB a process holds once
#: torch, timm and torchvision are imported (measured).
CUDA_ESTIMATE = "CUDA estimate: FLOPs at an assumed 10 TFLOP/s"
_CPU_TO_CUDA = 0.08508 / 65.21  # Splice B/8 512 px seconds per step: estimated CUDA / measured CPU
_LIBS_MB = 724.0  # RSS of a process with torch, timm and torchvision imported (the CPU peaks include it)


def _cuda_from_cpu(ref: "Reference", gpu: bool = True) -> "Reference":
    """The CUDA estimate of a CPU row (see :data:`CUDA_ESTIMATE`); ``gpu=False``: a method with no GPU work
    (colour transfer runs on the CPU, identity copies): the same seconds, no GPU memory."""
    if not gpu:
        return Reference(ref.seconds_fixed, ref.seconds_per_step, 0.0, 0.0, ref.pixels,
                         "no GPU work, " + ref.source, ref.step_fixed_share, ref.applies)  # fmt: skip
    return Reference(ref.seconds_fixed * _CPU_TO_CUDA, ref.seconds_per_step * _CPU_TO_CUDA,
                     max(1.0, ref.memory_mb - _LIBS_MB), ref.memory_per_mpx, ref.pixels, CUDA_ESTIMATE,
                     ref.step_fixed_share, ref.applies)  # fmt: skip


#: what the paper-preset rows were measured with, beyond what the shapes scale
_SPLICE_B8 = (("backbone", "vit_base_patch8_224"), ("vit_short_side", 224))
_SA_DEFAULT = (("nfc", 32), ("min_nfc", 32), ("nfc_max", 128), ("min_size", 18))
#: the smoke preset's rows (``make benchmark-smoke``: S/16 at 112 px; structural-analogy's 8-channel nets on 32 px)
_SPLICE_SMOKE = (("backbone", "vit_small_patch16_224"), ("vit_short_side", 112))
_SA_SMOKE = (("nfc", 8), ("min_nfc", 8), ("nfc_max", 16), ("min_size", 16))
#: how the smoke rows were measured: ``splice bench --methods M --datasets demo --root datasets --preset smoke
#: --devices cpu --allow-random-weights`` (2 pairs; 12 steps for splice, niter=10 for structural-analogy), means
#: of 2 runs; the first job of a process pays about 15 s more than the next
BENCH_SMOKE = "smoke runs on a loaded 2-core CPU"


_CPU: dict[str, Reference] = {
    # 65.21 s per step at 512 px (64.91 s crop steps, 87.69 s every 75th, full-image), 109.47 s at HD, so 90%
    # of a 512 px step does not grow with the image; peak 3471 MB at 512 px, 7180 MB at HD
    "splice": Reference(0.0, 65.21, 3471.0, 2047.5, 512 * 512, MEASURED_CPU, step_fixed_share=0.902,
                        applies=_SPLICE_B8),
    "identity": Reference(0.0, 0.255, 53.0, 0.0, 512 * 512, MEASURED_CPU),
    "reinhard": Reference(0.0, 0.684, 92.7, 0.0, 512 * 512, MEASURED_CPU),
    "histogram": Reference(0.0, 0.162, 55.3, 0.0, 512 * 512, MEASURED_CPU),
    "wct2": Reference(0.0, 217.5, 2460.6, 0.0, 512 * 512, MEASURED_CPU),
    # 473.0 s for iters_per_scale=5 (20 steps) at long side 512
    "strotss": Reference(0.0, 23.65, 2255.4, 0.0, 512 * 512, MEASURED_CPU),
    # 1544.9 s for niter=3 (33 steps over 11 scales) at 220 px
    "structural-analogy": Reference(0.0, 46.81, 7221.9, 0.0, 220 * 220, MEASURED_CPU, applies=_SA_DEFAULT),
    # 1304.2 s for 20 iterations (n_epochs=1, n_epochs_decay=0, iters_per_epoch=20), crops 16 x 64x64
    "sincut": Reference(0.0, 65.21, 3646.4, 0.0, 64 * 64 * 16, MEASURED_CPU),
    "precomputed": Reference(0.0, 0.10, 60.0, 0.0, 512 * 512, "measured by make benchmark-smoke"),
}

# measured: splice 18.6 s and 2.8 s (first and second job), 87.4 s and 3.8 s in a busier run: about 8 s fixed
# (averaged over a process's jobs) and 0.2 s per step at 128 px; structural-analogy 17.1/34.3 s and 5.8/3.4 s
# for its 110 steps at 32 px; peaks (process RSS) about 1 GB
_CPU_SMOKE: dict[str, Reference] = {
    "splice": Reference(8.0, 0.2, 1010.0, 0.0, 128 * 128, BENCH_SMOKE, applies=_SPLICE_SMOKE),
    "structural-analogy": Reference(0.0, 0.138, 1040.0, 0.0, 32 * 32, BENCH_SMOKE,
                                    applies=_SA_SMOKE),
}

#: (method, device kind) -> reference costs, the first that applies to a job's configuration
#: (:meth:`Reference.mismatch`). After a run, the store's own records replace these.
REFERENCE: dict[tuple[str, str], Reference | tuple[Reference, ...]] = {
    **{(m, "cpu"): ref for m, ref in _CPU.items()},
    **{(m, "cuda"): _cuda_from_cpu(ref, gpu=m not in ("reinhard", "histogram", "identity", "precomputed"))
       for m, ref in _CPU.items()},  # fmt: skip
    # Splice's own CUDA row from its FLOPs rather than through the ratio (the same figures, by construction)
    ("splice", "cuda"): Reference(0.0, 0.08508, 3471.0 - _LIBS_MB, 2047.5, 512 * 512, CUDA_ESTIMATE,
                                  step_fixed_share=0.902, applies=_SPLICE_B8),
}
for (_m, _kind), _ref in list(REFERENCE.items()):
    if _m in _CPU_SMOKE:
        smoke = _CPU_SMOKE[_m] if _kind == "cpu" else _cuda_from_cpu(_CPU_SMOKE[_m])
        REFERENCE[(_m, _kind)] = (_ref, smoke)


# --------------------------------------------------------------------------------------
# one job
# --------------------------------------------------------------------------------------
def working_pixels(size: tuple[int, int], config: dict[str, Any], max_side: int | None) -> int:
    """Pixels of the structure image as the method works on it: ``resize`` (shorter side) then the ``max_side`` cap."""
    w, h = int(size[0]), int(size[1])
    short = min(w, h)
    target = short
    resize = config.get("resize")
    if isinstance(resize, (int, float)) and not isinstance(resize, bool) and resize > 0:
        target = int(resize)
    if max_side and target > max_side:
        target = int(max_side)
    if target == short:
        return w * h
    scale = target / short
    return max(1, round(w * scale)) * max(1, round(h * scale))


_SIZES: dict[str, tuple[int, int] | None] = {}


def image_size(path: Path) -> tuple[int, int] | None:
    """(W, H) from the image's header, or None when it cannot be read (cached per path)."""
    key = str(path)
    if key not in _SIZES:
        try:
            from PIL import Image

            with Image.open(path) as im:
                _SIZES[key] = tuple(im.size)
        except Exception:
            _SIZES[key] = None
    return _SIZES[key]


_MANIFEST_SIZES: dict[str, dict[str, tuple[int, int]]] = {}


def manifest_size(job: Job) -> tuple[int, int] | None:
    """(W, H) of the job's structure image as its manifest states it (data sets list their sizes), or None."""
    path = (job.manifest or {}).get("path")
    if not path:
        return None
    if path not in _MANIFEST_SIZES:
        sizes: dict[str, tuple[int, int]] = {}
        try:
            from splice.data.manifests import load_manifest

            for row in load_manifest(path).rows:
                if row.structure.width and row.structure.height:
                    sizes[row.pair_id] = (int(row.structure.width), int(row.structure.height))
        except Exception:  # an unreadable manifest only means the size is not known from it
            pass
        _MANIFEST_SIZES[path] = sizes
    return _MANIFEST_SIZES[path].get(job.key.pair_id)


def _record_pixels(rec: JobRecord) -> int | None:
    size = (rec.inputs.get("structure") or {}).get("size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2):
        return None
    return working_pixels((size[0], size[1]), rec.config, rec.max_side)


@dataclass
class Estimate:
    seconds: float | None
    memory_mb: float | None
    source: str  # "records (N)", "reference (...)", "unknown"
    size_assumed: bool = False  # neither the image nor its manifest gave its size: the reference size was assumed


class CostModel:
    """Expected seconds and peak memory of jobs, from a store's records and the reference table."""

    def __init__(self, records: Iterable[JobRecord] = (), reference: dict[tuple[str, str], Reference] | None = None,
                 shapes: dict[str, Shape] | None = None):  # fmt: skip
        self.reference = REFERENCE if reference is None else reference
        self.shapes = SHAPES if shapes is None else shapes
        self.records: dict[tuple[str, str], list[JobRecord]] = {}
        for rec in records:
            if rec.ok and rec.seconds is not None and rec.device:
                self.records.setdefault((rec.job.method, device_kind(rec.device)), []).append(rec)
        self._cache: dict[tuple[Any, str], Estimate] = {}

    @classmethod
    def from_store(cls, store: RunStore | str | Path, **kw) -> "CostModel":
        store = store if isinstance(store, RunStore) else RunStore(store)
        return cls((rec for _, rec in store.iter_records()), **kw)

    def _reference(self, method: str, kind: str, config: dict[str, Any]) -> tuple[Reference | None, str]:
        """The reference row that describes a job of ``config`` (None, and why not, when none does)."""
        rows = self.reference.get((method, kind))
        if rows is None:
            return None, "no record, no reference figure"
        rows = rows if isinstance(rows, tuple) else (rows,)
        reasons = []
        for row in rows:
            why = row.mismatch(config)
            if why is None:
                return row, ""
            reasons.append(why)
        return None, "no record, and no reference figure for this configuration (" + "; ".join(reasons) + ")"

    # -- the shape: seconds and memory as functions of (pixels, steps) ---------------------------
    def _seconds_shape(self, method: str, kind: str, pixels: int, config: dict[str, Any]) -> float:
        shape = self.shapes.get(method, Shape())
        ref, _ = self._reference(method, kind, config)
        steps = shape.steps(config)
        if ref is None:
            return steps * shape.pixels(pixels, config, 1e6) / 1e6
        return ref.seconds(steps, shape.pixels(pixels, config, ref.pixels))

    def _memory_shape(self, method: str, kind: str, pixels: int, config: dict[str, Any]) -> float:
        shape = self.shapes.get(method, Shape())
        ref, _ = self._reference(method, kind, config)
        return 1.0 if ref is None else ref.memory(shape.pixels(pixels, config, ref.pixels))

    def estimate(self, job: Job, device: str) -> Estimate:
        kind = device_kind(device)
        cache_key = (job.key, kind)
        if cache_key in self._cache:
            return self._cache[cache_key]
        method = job.key.method
        ref, why_not = self._reference(method, kind, job.config)
        size = image_size(job.pair.structure) or manifest_size(job)  # the image's header, else its manifest's
        assumed = size is None
        if size is None:
            side = int((ref.pixels if ref else 512 * 512) ** 0.5)
            size = (side, side)
        pixels = working_pixels(size, job.config, job.settings.get("max_side"))
        recs = self.records.get((method, kind), [])
        same = [r for r in recs if r.job.config_hash == job.key.config_hash]
        shape = self.shapes.get(method, Shape())
        recs = same or [r for r in recs if shape.comparable(r.config, job.config)]
        if recs:
            ratios_s, ratios_m = [], []
            for r in recs:
                px = _record_pixels(r) or pixels
                ratios_s.append(r.seconds / max(self._seconds_shape(method, kind, px, r.config), 1e-12))
                if r.peak_memory_mb is not None:
                    ratios_m.append(r.peak_memory_mb / self._memory_shape(method, kind, px, r.config))
            seconds = statistics.median(ratios_s) * self._seconds_shape(method, kind, pixels, job.config)
            memory = max(ratios_m) * self._memory_shape(method, kind, pixels, job.config) if ratios_m else (
                self._memory_shape(method, kind, pixels, job.config) if ref else None)  # fmt: skip
            how = "same configuration" if same else "scaled by steps and size"
            est = Estimate(seconds, memory, f"{len(recs)} record(s) of this store, {how}", assumed)
        elif ref is not None:
            est = Estimate(self._seconds_shape(method, kind, pixels, job.config),
                           self._memory_shape(method, kind, pixels, job.config), f"reference table ({ref.source})",
                           assumed)  # fmt: skip
        else:
            est = Estimate(None, None, f"unknown: {why_not}", assumed)
        self._cache[cache_key] = est
        return est

    def memory_of(self, job: Job, device: str) -> float | None:
        return self.estimate(job, device).memory_mb


# --------------------------------------------------------------------------------------
# the plan: per method, and the wall time
# --------------------------------------------------------------------------------------
@dataclass
class MethodCost:
    method: str
    jobs: int = 0
    seconds: float = 0.0  # sum over the jobs whose cost is known
    memory_mb: float | None = None  # the largest job's peak
    unknown: int = 0
    size_assumed: int = 0
    sources: set[str] = field(default_factory=set)

    @property
    def seconds_per_job(self) -> float | None:
        known = self.jobs - self.unknown
        return self.seconds / known if known else None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "jobs": self.jobs, "seconds_per_job": self.seconds_per_job,
                "seconds": self.seconds, "memory_mb": self.memory_mb, "unknown": self.unknown,
                "size_assumed": self.size_assumed, "sources": sorted(self.sources)}  # fmt: skip


@dataclass
class CostPlan:
    methods: list[MethodCost]
    wall_seconds: float
    devices: list[str]
    how: str  # how the wall time was scheduled
    unknown_jobs: int = 0

    @property
    def job_seconds(self) -> float:
        return sum(m.seconds for m in self.methods)

    def to_dict(self) -> dict[str, Any]:
        return {"methods": [m.to_dict() for m in self.methods], "job_seconds": self.job_seconds,
                "wall_seconds": self.wall_seconds, "devices": self.devices, "schedule": self.how,
                "unknown_jobs": self.unknown_jobs}  # fmt: skip

    def table(self) -> str:
        head = ["method", "jobs", "s/job", "job time", "peak memory", "from"]
        rows = []
        for m in self.methods:
            per = m.seconds_per_job
            rows.append([m.method, str(m.jobs), "?" if per is None else f"{per:.1f}",
                         format_duration(m.seconds) + (f" (+{m.unknown} unknown)" if m.unknown else ""),
                         "?" if m.memory_mb is None else f"{m.memory_mb:.0f} MB",
                         "; ".join(sorted(m.sources)) + (f"; {m.size_assumed} image size(s) assumed"
                                                         if m.size_assumed else "")])  # fmt: skip
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
        tail = (f"expected wall time: {format_duration(self.wall_seconds)} on {', '.join(self.devices)} "
                f"({self.how}); job time {format_duration(self.job_seconds)}")  # fmt: skip
        if self.unknown_jobs:
            tail += f"; {self.unknown_jobs} job(s) of unknown cost not counted"
        return "\n".join(lines + [tail])


def format_duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.0f} s" if seconds >= 1 or seconds == 0 else f"{seconds:.2f} s"
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d} min"


def wall_time(jobs: list[Job], seconds_of: Callable[[Job, str], float | None], packer: Packer) -> float:
    """When the last job ends if ``packer`` schedules ``jobs`` (in order) and each takes ``seconds_of``."""
    queue = deque(jobs)
    running: list[tuple[float, int, str, Job]] = []
    now, n = 0.0, 0
    while queue or running:
        for device in packer.devices:
            while queue:
                job = packer.pick(queue, device)
                if job is None:
                    break
                packer.start(job, device)
                n += 1
                heapq.heappush(running, (now + (seconds_of(job, device) or 0.0), n, device, job))
        if not running:  # nothing can start anywhere: cannot happen (an idle device takes any job)
            break
        now, _, device, job = heapq.heappop(running)
        packer.finish(job, device)
    return now


def estimate_plan(jobs: list[Job], model: CostModel, devices: list[str], *, workers: int | None = None,
                  policy: PackingPolicy | None = None, capacity_mb: dict[str, float | None] | None = None,
                  slurm_tasks: int | None = None, slurm_kind: str = "cuda") -> CostPlan:  # fmt: skip
    """Per method, the jobs to run with their expected seconds and memory; the expected wall time.

    ``slurm_tasks``: the jobs run as a SLURM array, at most that many at once on ``slurm_kind`` devices
    (queue waits not included); otherwise on ``devices`` as the local launcher would (``workers`` or
    ``policy`` with each device's ``capacity_mb``).
    """
    if slurm_tasks:
        n = max(1, min(slurm_tasks, len(jobs) or 1))
        devices = [f"{slurm_kind}:{i}" for i in range(n)]
        how = f"a SLURM array, {n} task(s) at once, one job each, queue waits not included"
        packer = Packer(devices, PackingPolicy(auto=False, cap=1), {}, lambda j, d: None)
        shown = [f"{n} x {slurm_kind}"]
    elif policy is not None:
        capacity = capacity_mb or {}
        packer = Packer(devices, policy, capacity, model.memory_of)
        mem = ", ".join(f"{d}: {'?' if capacity.get(d) is None else f'{capacity[d] / 1024:.0f} GB'}" for d in devices)
        how = (f"--jobs-per-device {'auto' if policy.auto else policy.cap}, at most {policy.cap} per device"
               + (f", memory {mem}" if policy.auto else ""))  # fmt: skip
        shown = devices
    else:
        used, per = fixed_policy_for_workers(devices, workers if workers != 0 else 1)
        packer = Packer(used, PackingPolicy(auto=False, cap=max(per.values())), {}, lambda j, d: None)
        packer.limit.update(per)
        how = "one job per device at a time" if workers is None else f"{max(1, workers)} worker(s)"
        shown = used
    by_method: dict[str, MethodCost] = {}
    unknown = 0
    for job in jobs:
        est = model.estimate(job, packer.devices[0])
        m = by_method.setdefault(job.key.method, MethodCost(job.key.method))
        m.jobs += 1
        m.sources.add(est.source)
        m.size_assumed += est.size_assumed
        if est.seconds is None:
            m.unknown += 1
            unknown += 1
        else:
            m.seconds += est.seconds
        if est.memory_mb is not None:
            m.memory_mb = max(m.memory_mb or 0.0, est.memory_mb)
    wall = wall_time(jobs, lambda j, d: model.estimate(j, d).seconds, packer)
    return CostPlan(list(by_method.values()), wall, shown, how, unknown)
