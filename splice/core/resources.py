"""What a piece of work cost and what ran it: seconds, peak memory, package versions, host.

The one place that measures these; the job record (:mod:`splice.core.record`) stores them.

Peak memory (:class:`PeakMemory`):

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (the tensors the
  process held before are the baseline);
- CPU on Linux: the process's peak resident set (``VmHWM``), reset by writing ``5`` to
  ``/proc/self/clear_refs``, so that each job of a long-lived worker gets its own figure (the
  baseline is what the process already held: imported libraries, caches);
- elsewhere: the process-lifetime ``ru_maxrss``, never reset (an upper bound; its ``kind`` says so).
"""

from __future__ import annotations

import platform
import resource
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

#: the distributions whose versions every record lists (distribution names, as pip knows them)
VERSIONED = ("splice-bench", "torch", "torchvision", "timm", "numpy", "pillow", "transformers")


class PeakMemory:
    """Peak memory of one piece of work in MiB (see the module docstring for what is measured)."""

    def __init__(self, device: str = "cpu"):
        self.device = str(device)
        self.baseline_mb: float | None = None
        torch = sys.modules.get("torch")
        if self.device.startswith("cuda") and torch is not None and torch.cuda.is_available():
            self.kind = "cuda_max_allocated"
        elif Path("/proc/self/clear_refs").exists():
            self.kind = "rss_peak"
        else:
            self.kind = "ru_maxrss_process"

    def reset(self) -> None:
        if self.kind == "cuda_max_allocated":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_mb = torch.cuda.memory_allocated(self.device) / 2**20
        elif self.kind == "rss_peak":
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM to the current RSS
                self.baseline_mb = _status_mb("VmRSS:")
            except OSError:
                self.kind = "ru_maxrss_process"

    def read_mb(self) -> float | None:
        """The peak since :meth:`reset`, or None when it cannot be read (measuring never fails a job)."""
        try:
            if self.kind == "cuda_max_allocated":
                import torch

                return torch.cuda.max_memory_allocated(self.device) / 2**20
            if self.kind == "rss_peak":
                return _status_mb("VmHWM:")
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, kB on Linux
        except Exception:
            return None


def _status_mb(field: str) -> float | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return None


@dataclass
class Measurement:
    """Seconds and peak memory of the body of :func:`measure` (filled when the body ends)."""

    device: str
    kind: str = "none"
    seconds: float = 0.0
    peak_memory_mb: float | None = None
    baseline_mb: float | None = None


@contextmanager
def measure(device: str = "cpu") -> Iterator[Measurement]:
    """Time the body and read its peak memory on ``device``, also when it raises."""
    mem = PeakMemory(device)
    mem.reset()
    m = Measurement(device=str(device), kind=mem.kind, baseline_mb=mem.baseline_mb)
    t0 = time.perf_counter()
    try:
        yield m
    finally:
        m.seconds = time.perf_counter() - t0
        m.peak_memory_mb = mem.read_mb()
        m.kind = mem.kind


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Python, the platform and the versions of :data:`VERSIONED` that are installed."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def host() -> str:
    return socket.gethostname()


def now() -> str:
    """Local time with its UTC offset, ISO 8601 to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
