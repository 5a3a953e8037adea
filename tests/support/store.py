"""Builds small synthetic run stores for the eval tests (no method, no model is run)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from splice.core.atomic import atomic_write_json
from splice.core.store import JobKey, RunStore


def add_job(
    root: Path,
    dataset: str,
    pair_id: str,
    method: str,
    *,
    status: str = "ok",
    seed: int = 0,
    config_hash: str = "abc123",
    iou: dict | None = None,
    vit: dict | None = None,
    seconds: float = 1.0,
    random_weights: bool = False,
    output: Image.Image | None = None,
    structure: str = "s.png",
    appearance: str = "a.png",
    geometry: dict | None = None,
) -> JobKey:
    """Write one job (record, output image unless failed, metric records) into ``root``."""
    store = RunStore(root)
    key = JobKey(dataset=dataset, pair_id=pair_id, method=method, seed=seed, config_hash=config_hash)
    job = store.job_dir(key)
    job.mkdir(parents=True, exist_ok=True)
    if status == "ok":
        (output or Image.new("RGB", (64, 64), (10, 20, 30))).save(job / "output.png")
    if iou is not None:
        atomic_write_json(job / "metrics" / "iou.json", {"metric": "iou", "protocol_version": "1", **iou})
    if vit is not None:
        atomic_write_json(job / "metrics" / "vit.json", {"metric": "vit", "protocol_version": "1", **vit})
    store.write_record(
        key,
        {
            "status": status,
            "pair": {"pair_id": pair_id, "dataset": dataset, "structure": structure, "appearance": appearance},
            "output": "output.png" if status == "ok" else None,
            "geometry": geometry,
            "random_weights": random_weights,
            "seconds": seconds,
            "peak_memory_mb": 100.0,
            "error": None if status == "ok" else "boom",
        },
    )
    return key


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
