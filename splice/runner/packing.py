"""Jobs packed by memory: how many jobs run at once on each device (``splice bench --jobs-per-device``).

``--jobs-per-device N`` runs up to N jobs at once on every device. ``auto`` runs as many as fit:
a job may start on a device when the memory of the jobs already running there, plus its own, fits
in the device's memory. A job's memory is its estimate (:mod:`splice.runner.cost`: the peak
measured in earlier records of the store, else the reference table) times ``1 + margin``, and each
worker process on an accelerator adds its runtime context (:data:`CONTEXT_MB`). Never more than
``cap`` jobs per device (``auto:CAP``; default :data:`AUTO_CAP`).

A job runs alone, with the out-of-memory ladder (:mod:`splice.runner.execute`), when it cannot
share: its estimate does not fit beside anything, nobody knows its memory, or it already ran out
of memory once beside other jobs. A job that shares runs without the ladder: if it runs out of
memory, :meth:`Packer.oom` lowers the device's concurrency to one less than were running and
the job goes back to the head of the queue, to run again alone (resuming from its checkpoint).

:class:`Packer` is pure bookkeeping (no processes, no clock): the local launcher
(:mod:`splice.runner.local`) asks it in real time and the cost estimate (:func:`splice.runner.cost.wall_time`)
in simulated time, so the estimate schedules exactly as the run will.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable

from splice.core.errors import ConfigError

#: jobs per device at most, for ``auto`` without an explicit cap
AUTO_CAP = 8
#: the share added to every job's memory estimate (allocator slack, a larger image than the records')
MARGIN = 0.2
#: memory a worker process holds on a device beyond its tensors (MB): the CUDA context and kernels.
#: An estimate (CUDA contexts take about 300-600 MB depending on the GPU and the CUDA version); the
#: CPU's figure is in the peaks themselves (records measure the process's resident set).
CONTEXT_MB: dict[str, float] = {"cuda": 500.0, "mps": 0.0, "cpu": 0.0}


def device_kind(device: str) -> str:
    """``cuda:1`` -> ``cuda``."""
    return str(device).split(":")[0]


@dataclass(frozen=True)
class PackingPolicy:
    """``auto`` (memory decides, at most ``cap``) or a fixed number of jobs per device."""

    auto: bool
    cap: int
    margin: float = MARGIN

    def to_dict(self) -> dict[str, Any]:
        return {"jobs_per_device": "auto" if self.auto else self.cap, "cap": self.cap, "margin": self.margin}


def parse_jobs_per_device(value: str | int | None, option: str = "--jobs-per-device") -> PackingPolicy | None:
    """``auto`` / ``auto:12`` / ``3`` -> a policy; None -> None (one worker per device, as ``--workers``)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    head, _, cap = text.partition(":")
    try:
        if head == "auto":
            n = int(cap) if cap else AUTO_CAP
            if n >= 1:
                return PackingPolicy(auto=True, cap=n)
        elif not cap and int(text) >= 1:
            return PackingPolicy(auto=False, cap=int(text))
    except ValueError:
        pass
    raise ConfigError(f"{option} {value!r}: use auto (as many as fit, at most {AUTO_CAP}), auto:CAP, or a number >= 1")


class Packer:
    """Which job may start on which device now; what an out-of-memory error changes.

    Args:
        devices: the devices (``cuda:0``, ``cpu``, ...).
        policy: :class:`PackingPolicy`.
        capacity_mb: memory of each device in MB (None = unknown: then ``auto`` runs one job at a time there).
        memory_of: a job's expected peak memory in MB on a device, or None when unknown.
        key: a job's identity (hashable), default ``job.key``.
    """

    def __init__(self, devices: list[str], policy: PackingPolicy, capacity_mb: dict[str, float | None],
                 memory_of: Callable[[Any, str], float | None],
                 key: Callable[[Any], Hashable] | None = None):  # fmt: skip
        self.devices = list(devices)
        self.policy = policy
        self.capacity = {d: capacity_mb.get(d) for d in self.devices}
        self.memory_of = memory_of
        self.key = key or (lambda job: job.key)
        self.limit = {d: policy.cap for d in self.devices}
        self.running: dict[str, dict[Hashable, float]] = {d: {} for d in self.devices}
        self.solo: dict[str, bool] = {d: False for d in self.devices}  # a job that must run alone holds it
        self.workers: dict[str, int] = {d: 0 for d in self.devices}  # worker processes alive (contexts held)
        self.alone: set[Hashable] = set()  # jobs that ran out of memory beside others
        self.events: list[dict[str, Any]] = []  # what changed and why (logged, kept in the summary)

    # -- what a job needs ------------------------------------------------------------------------
    def footprint(self, job: Any, device: str) -> float | None:
        """The job's memory with the margin (MB), or None when unknown."""
        m = self.memory_of(job, device)
        return None if m is None else m * (1 + self.policy.margin)

    def must_run_alone(self, job: Any, device: str) -> bool:
        """Alone (and with the OOM ladder): it ran out of memory beside others, or, for ``auto``, its
        memory is unknown or does not fit beside anything on this device."""
        if self.key(job) in self.alone:
            return True
        if not self.policy.auto:
            return False
        cap = self.capacity[device]
        need = self.footprint(job, device)
        if cap is None or need is None:
            return True
        return need + CONTEXT_MB.get(device_kind(device), 0.0) > cap

    def used(self, device: str) -> float:
        return sum(self.running[device].values()) + self.workers[device] * CONTEXT_MB.get(device_kind(device), 0.0)

    def can_start(self, job: Any, device: str) -> bool:
        busy = self.running[device]
        if not busy:
            return True
        if self.solo[device] or len(busy) >= self.limit[device] or self.must_run_alone(job, device):
            return False
        if not self.policy.auto:
            return True
        idle_worker = self.workers[device] > len(busy)
        extra = 0.0 if idle_worker else CONTEXT_MB.get(device_kind(device), 0.0)
        return self.used(device) + self.footprint(job, device) + extra <= self.capacity[device]

    def pick(self, queue: deque, device: str) -> Any | None:
        """The first job of ``queue`` (in order) that may start on ``device`` now, removed from it.

        A job that must run alone and waits for a busy device stops the scan there: the device drains
        for it instead of being kept busy by the jobs behind it."""
        for i, job in enumerate(queue):
            if self.can_start(job, device):
                del queue[i]
                return job
            if self.running[device] and self.must_run_alone(job, device):
                return None
        return None

    # -- what happened ---------------------------------------------------------------------------
    def start(self, job: Any, device: str) -> bool:
        """Book ``job`` on ``device``; True when it may use the OOM ladder (it runs alone by design)."""
        alone = self.must_run_alone(job, device)
        if not self.running[device] and self.workers[device] == 0:
            self.workers[device] = 1
        elif len(self.running[device]) >= self.workers[device]:
            self.workers[device] += 1
        self.running[device][self.key(job)] = self.footprint(job, device) or 0.0
        self.solo[device] = alone
        return alone or self.limit[device] == 1

    def finish(self, job: Any, device: str) -> None:
        self.running[device].pop(self.key(job), None)
        if not self.running[device]:
            self.solo[device] = False

    def oom(self, job: Any, device: str) -> None:
        """``job`` ran out of memory beside others on ``device``: one fewer there from now on; it runs alone next."""
        beside = len(self.running[device])
        self.finish(job, device)
        self.alone.add(self.key(job))
        new = max(1, min(self.limit[device], beside - 1))
        if new < self.limit[device]:
            self.events.append({"device": device, "job": str(self.key(job)), "limit": new,
                                "why": f"out of memory with {beside} jobs running"})  # fmt: skip
        self.limit[device] = new


def fixed_policy_for_workers(devices: list[str], workers: int | None) -> tuple[list[str], dict[str, int]]:
    """``--workers`` as the packer sees it: N workers over the devices in turn -> jobs per device."""
    n = len(devices) if workers is None else max(1, workers)
    per: dict[str, int] = {}
    for i in range(n):
        d = devices[i % len(devices)]
        per[d] = per.get(d, 0) + 1
    return list(per), per


# --------------------------------------------------------------------------------------
# device memory
# --------------------------------------------------------------------------------------
def _meminfo_available_mb() -> float | None:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


_PROBE = ("import json, torch\n"
          "print(json.dumps({f'cuda:{i}': torch.cuda.mem_get_info(i)[0] / 2**20 "
          "for i in range(torch.cuda.device_count())}))")  # fmt: skip


def _probe_cuda_free_mb() -> dict[str, float]:
    """Free memory of every CUDA device, read in a short-lived process (the launcher holds no CUDA context)."""
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "CUDA_MODULE_LOADING": "LAZY"})  # fmt: skip
        if r.returncode != 0:
            return {}
        return {k: float(v) for k, v in json.loads(r.stdout.strip().splitlines()[-1]).items()}
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return {}


def device_memory_mb(devices: Iterable[str], memory_gb: float | None = None) -> dict[str, float | None]:
    """Memory each device offers to jobs, in MB: ``memory_gb`` when given (the same for every device), else
    the free memory of each CUDA device and the available memory of the CPU, measured now; None when unknown."""
    devices = list(devices)
    if memory_gb is not None:
        return {d: memory_gb * 1024 for d in devices}
    out: dict[str, float | None] = {}
    cuda = {}
    if any(device_kind(d) == "cuda" for d in devices):
        cuda = _probe_cuda_free_mb()
    for d in devices:
        kind = device_kind(d)
        if kind == "cuda":
            out[d] = cuda.get(d if ":" in d else "cuda:0")
        elif kind == "cpu":
            out[d] = _meminfo_available_mb()
        else:
            out[d] = None
    return out


@dataclass
class Packing:
    """What the local launcher needs to pack jobs: the policy, each device's memory, each job's estimate."""

    policy: PackingPolicy
    capacity_mb: dict[str, float | None]
    memory_of: Callable[[Any, str], float | None]
    events: list[dict[str, Any]] = field(default_factory=list)  # filled by the launcher: concurrency lowered, why

    def packer(self, devices: list[str]) -> Packer:
        return Packer(devices, self.policy, self.capacity_mb, self.memory_of)

    def describe(self) -> dict[str, Any]:
        return {**self.policy.to_dict(), "capacity_mb": {d: None if v is None else round(v)
                                                         for d, v in self.capacity_mb.items()}}  # fmt: skip
