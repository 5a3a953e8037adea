"""Importing outputs that already exist (e.g. the Splice authors' own) into a run store.

Each stored output becomes a benchmark job of the registered ``precomputed`` method, run by the
runner (:func:`splice.runner.execute.execute`), so its ``output.png`` and ``record.json`` are
exactly those of a fresh run (claims, atomic writes, a ``failed`` record for a pair without an
output); jobs already imported are skipped. The jobs are filed under a method name of their own
(``label``, e.g. ``paper-ours``) so that tables and reports show them beside fresh runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splice.core.errors import ConfigError
from splice.core.method import RunSettings, config_hash
from splice.core.record import JobKey
from splice.core.registry import methods as registry
from splice.core.store import RunStore
from splice.data.manifests import Manifest
from splice.runner.execute import execute
from splice.runner.jobs import Job, ensure_registered

PRECOMPUTED = "precomputed"


@dataclass
class Imported:
    pair_id: str
    dataset: str
    method: str
    state: str
    job_dir: str
    error: str | None = None


def import_outputs(source: Path, manifest: Manifest, out: Path, method_dir: str, label: str | None = None,
                   data_root: Path | None = None, geometry: str | None = None, file_glob: str | None = None,
                   seed: int = 0) -> list[Imported]:  # fmt: skip
    """Import every pair of ``manifest`` stored under ``source`` (``<key>/A``, ``<key>/B``,
    ``<key>/<method_dir>``; matched by SHA-256) into the run store ``out`` as method ``label``."""
    source = Path(source)
    if not source.is_dir():
        raise ConfigError(f"--from {source} is not a folder")
    method_cls = registry.get_class(PRECOMPUTED)
    found = method_cls.pairs_from_folder(source, manifest, data_root)
    if not found:
        raise ConfigError(f"no folder under {source} holds A/ and B/ images of a pair of {manifest.path}")
    label = label or f"paper-{method_dir}"
    target = registry.target(PRECOMPUTED)
    ensure_registered(label, target)  # the label is the method's name in the store, tables and reports
    options: dict[str, Any] = {"root": str(source.absolute()), "method_dir": method_dir, "geometry": geometry,
                               "file": file_glob, "label": label}  # fmt: skip
    options = {k: v for k, v in options.items() if v}
    method = method_cls()
    rs = RunSettings(options=options)
    config = method.config(rs)
    settings = {"preset": "paper", "preset_resolved": "paper", "seed": seed, "weights": None,
                "allow_random_weights": False, "max_side": None, "options": method.typed_overrides(rs)}  # fmt: skip
    store = RunStore(out)
    rows = []
    for item in found:
        pair = item.pair
        key = JobKey(
            dataset=pair.dataset, pair_id=pair.pair_id, method=label, seed=seed, config_hash=config_hash(config)
        )
        meta = {"name": manifest.name, "version": manifest.version, "line": item.line, "path": str(manifest.path)}
        job = Job(key=key, pair=pair, method_target=target, settings=settings, config=config, manifest=meta)
        outcome = execute(job, store, device="cpu")
        rows.append(Imported(pair.pair_id, pair.dataset, label, outcome.state, str(store.job_dir(key)), outcome.error))
    return rows
