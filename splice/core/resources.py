"""Peak memory of a piece of work, on an accelerator or on the CPU.

CUDA: ``torch.cuda.max_memory_allocated`` after a reset. CPU (Linux): the process's peak
resident set size (``VmHWM``), reset by writing ``5`` to ``/proc/self/clear_refs`` so that
each job in a long-lived worker process gets its own figure. Elsewhere: ``ru_maxrss``
(never reset; an upper bound).
"""

from __future__ import annotations

import os
import resource
import sys


def _is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def reset_peak_memory(device: str = "cpu") -> None:
    if _is_cuda(device):
        import torch

        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_memory_mb(device: str = "cpu") -> float:
    """Peak memory in MiB since the last :func:`reset_peak_memory` (see module docstring)."""
    if _is_cuda(device):
        import torch

        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def package_versions() -> dict[str, str]:
    import platform

    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "timm", "numpy", "PIL"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except ImportError:
            pass
    try:
        from splice import __version__

        out["splice-bench"] = __version__
    except ImportError:  # pragma: no cover
        pass
    out["host"] = os.uname().nodename if hasattr(os, "uname") else ""
    return out
