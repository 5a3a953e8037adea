"""The run-store factory of the tests: jobs written as a runner would write them (no method is run).

Every record goes through :func:`splice.core.record.make_record`, the one function that builds job
records, so tests see exactly the schema the suite writes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from splice.core.atomic import atomic_save_image, atomic_write_json
from splice.core.record import JobKey, make_record
from splice.core.resources import Measurement
from splice.core.store import RunStore


def write_job(
    root: Path,
    dataset: str,
    pair_id: str,
    method: str,
    *,
    status: str = "ok",
    seed: int = 0,
    config_hash: str = "abc123",
    config: dict | None = None,
    output: Image.Image | None = None,
    geometry: dict | None = None,
    structure: str = "s.png",
    appearance: str = "a.png",
    inputs: dict | None = None,
    random_weights: bool = False,
    weights: dict | None = None,
    seconds: float | None = 1.0,
    peak_memory_mb: float | None = 100.0,
    device: str = "cpu",
    error: str | None = None,
    error_type: str | None = None,
    metrics: dict[str, dict[str, Any]] | None = None,
    save_output=None,  # (path, image) -> None; default: a plain atomic PNG
) -> JobKey:
    """One job of the run store at ``root``: output (unless failed), metric records, then the record."""
    store = RunStore(root)
    key = JobKey(dataset=dataset, pair_id=pair_id, method=method, seed=seed, config_hash=config_hash)
    store.job_dir(key).mkdir(parents=True, exist_ok=True)
    if status == "ok":
        image = output if output is not None else Image.new("RGB", (64, 64), (10, 20, 30))
        (save_output or atomic_save_image)(store.output_path(key), image)
    for name, rec in (metrics or {}).items():
        atomic_write_json(store.metrics_dir(key) / f"{name}.json", rec)
    m = Measurement(device=device, kind="test", seconds=seconds or 0.0, peak_memory_mb=peak_memory_mb)
    record = make_record(
        key, status=status, pair={"pair_id": pair_id, "dataset": dataset, "structure": structure,
                                  "appearance": appearance},
        inputs=inputs, config=config or {"method": method}, settings={"preset": "smoke", "seed": seed},
        output="output.png", geometry=geometry, info={"random_weights": random_weights, "weights": weights},
        measurement=m if seconds is not None else None, device=device, error=error if status != "ok" else None,
        error_type=error_type if status != "ok" else None,
    )  # fmt: skip
    if seconds is None:
        record.peak_memory_mb = peak_memory_mb
    store.write_record(key, record)
    return key


def add_job(root: Path, dataset: str, pair_id: str, method: str, *, iou: dict | None = None, vit: dict | None = None,
            status: str = "ok", **kw) -> JobKey:  # fmt: skip
    """A job with optional ``iou`` / ``vit`` metric records (protocol 1 fields added)."""
    metrics = {}
    if iou is not None:
        metrics["iou"] = {"metric": "iou", "protocol_version": "1", **iou}
    if vit is not None:
        metrics["vit"] = {"metric": "vit", "protocol_version": "1", **vit}
    return write_job(root, dataset, pair_id, method, status=status, metrics=metrics,
                     error=kw.pop("error", None if status == "ok" else "boom"), **kw)  # fmt: skip


def iou_rec(value: float | None, excluded: bool = False, matched: float | None = None, random: bool = False) -> dict:
    return {
        "detector": "maskrcnn_resnet50_fpn_v2",
        "weights": {"spec": "random"},
        "random_weights": random,
        "score_threshold": 0.5,
        "mask_threshold": 0.5,
        "excluded": excluded,
        "exclusion_reason": "no detection in the structure image" if excluded else None,
        "iou": None if excluded else value,
        "matched_iou": None if excluded else (value if matched is None else matched),
        "per_class": {},
        "n_structure": 0 if excluded else 1,
        "n_output": 1,
    }


def vit_rec(structure: float, appearance: float, cosine: float, random: bool = False) -> dict:
    return {
        "backbone": "dino_vits8",
        "weights": {"spec": "random"},
        "random_weights": random,
        "structure_distance": structure,
        "appearance_distance": appearance,
        "appearance_cosine": cosine,
        "aligned": "identity",
    }


def dead_pid() -> int:
    """The pid of a process that has ended (a claim held by it is stale)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid
