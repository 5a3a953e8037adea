"""splice-bench: Splice (Tumanyan et al., CVPR 2022) as a library, and the harness that
benchmarks it against other appearance-transfer methods.

Public API (imported on first use, so ``import splice`` stays light)::

    from splice import SpliceConfig, train_splice, run_pair, load_vit, ViTExtractor
    from splice import methods, get_method, Method, MethodResult, Pair, RunSettings, Geometry
    from splice import RunStore, JobKey, JobRecord, load_rgb, UserError

The package is laid out by floors, arrows pointing down only (``tests/core/test_floors.py``):
``splice.cli`` (commands) > ``splice.runner`` (jobs, workers, SLURM, imports) > ``splice.data``
(manifests) and ``splice.model`` (the Splice method) > ``splice.core`` (the method interface and
registry, options, geometry, image I/O, the run store and its job record). ``baselines`` and
``eval`` import ``splice.core`` (and ``eval`` the ViT of ``splice.model``), never the runner or the CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "SpliceConfig": "splice.model.config",
    "train_splice": "splice.model.train",
    "run_pair": "splice.model.pipeline",
    "load_vit": "splice.model.vit",
    "ViTExtractor": "splice.model.vit",
    "methods": "splice.core.registry",
    "get_method": "splice.core.registry",
    "Method": "splice.core.method",
    "MethodResult": "splice.core.method",
    "Pair": "splice.core.method",
    "RunSettings": "splice.core.method",
    "Geometry": "splice.core.geometry",
    "RunStore": "splice.core.store",
    "JobKey": "splice.core.record",
    "JobRecord": "splice.core.record",
    "load_rgb": "splice.core.imageio",
    "UserError": "splice.core.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'splice' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
