"""A run store as one pandas table: one row per job, job fields plus its metric records.

Reports, tables and the 2AFC study read results only through :func:`load_results`, so
they never re-run a method or a model (ARCHITECTURE.md, "How data flows"). Metric
records are those ``splice score`` writes beside each output (``metrics/iou.json``,
``metrics/panoptic.json``, ``metrics/vit.json``; PROTOCOL.md for what they measure, after the Splice paper,
Tumanyan et al. CVPR 2022).

Columns (missing values are ``None`` for objects, ``NaN`` for numbers):

=========================  =====================================================================
dataset, pair_id, method   the job key
seed, config_hash
status                     ``ok``, ``failed`` or ``not-applicable`` (the job record's status); None for an
                           expected job without a readable record (``expected=True``)
state                      the job's state (:mod:`splice.core.health`): done, failed, running, stale,
                           pending, corrupt, output-missing or not-applicable
job_dir                    the job folder (str)
output                     path of the output image (str), or None when absent
structure, appearance      the input images (str, as recorded)
geometry                   the recorded geometry dict, or None
seconds, peak_memory_mb    as recorded by the harness
device                     where the job ran (the record's device), or None
random_weights             the method used randomly initialised weights
error                      the one-line error of a failed job, else None
iou, matched_iou           Mask R-CNN layout IoU numbers, ``iou.json`` (NaN when excluded or not scored)
iou_excluded               the structure image had no detection (False when not scored)
iou_exclusion_reason       why, or None
panoptic_iou,              COCO-panoptic layout mIoU and pixel accuracy, ``panoptic.json`` (NaN when
pixel_accuracy             excluded or not scored)
panoptic_excluded,         the structure image had no labelled pixel; why
panoptic_exclusion_reason
iou_scored, panoptic_scored, vit_scored   that metric record exists
structure_distance,        ViT metrics (NaN when not scored)
appearance_distance,
appearance_cosine
<measure>, <measure>_scored  every other metric of the registry (``lpips_vgg``, ``clip``, ...): its
                           ``value``, and whether the job has its record
metrics_random_weights     some metric record of the job was made with random weights
<record>_random            that metric record was made with random weights (e.g. ``lpips_vgg_random``)
detector, panoptic_model,  model names of the metric records, or None
backbone
=========================  =====================================================================

The metric columns are made from the registry (:data:`eval.scorers.SPECS`): for each record, a column per
number (:attr:`eval.scorers.Number.column`; NaN when the job is excluded or has no record), ``<record>_scored``,
``<record>_excluded`` and ``<record>_exclusion_reason`` when the record can exclude a job, and its model
column when it declares one. A metric added to the registry gets its columns here with no change.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from splice.core.atomic import read_json
from splice.core.errors import UserError
from splice.core.health import JobHealth, survey
from splice.core.record import JobRecord
from splice.core.store import RunStore

from .scorers import SPECS

log = logging.getLogger(__name__)

JOB_COLUMNS = ["dataset", "pair_id", "method", "seed", "config_hash", "status", "job_dir", "output", "structure",
               "appearance", "geometry", "seconds", "peak_memory_mb", "random_weights", "error"]  # fmt: skip
HEALTH_COLUMNS = ["state", "device"]


def _metric_columns() -> tuple[list[str], list[str], list[str], list[str]]:
    """(every metric column, the float ones, the boolean ones, the object ones), from the registry."""
    cols, floats, flags, objects = [], [], [], []
    for spec in SPECS.values():
        floats += [n.column for n in spec.numbers]
        flags.append(f"{spec.name}_scored")
        cols += [n.column for n in spec.numbers]
        if spec.excludable:
            cols += [f"{spec.name}_excluded", f"{spec.name}_exclusion_reason"]
            flags.append(f"{spec.name}_excluded")
            objects.append(f"{spec.name}_exclusion_reason")
        cols += [f"{spec.name}_scored", f"{spec.name}_random"]
        flags.append(f"{spec.name}_random")
        if spec.model_column:
            cols.append(spec.model_column[0])
            objects.append(spec.model_column[0])
    return cols + ["metrics_random_weights"], floats, flags + ["metrics_random_weights"], objects


_METRIC_COLUMNS, _METRIC_FLOATS, _METRIC_FLAGS, _METRIC_OBJECTS = _metric_columns()
COLUMNS = JOB_COLUMNS + _METRIC_COLUMNS + HEALTH_COLUMNS
OBJECT_COLUMNS = ["dataset", "pair_id", "method", "config_hash", "status", "job_dir", "output", "structure",
                  "appearance", "geometry", "error", *_METRIC_OBJECTS, *HEALTH_COLUMNS]  # fmt: skip
FLOAT_COLUMNS = ["seconds", "peak_memory_mb", *_METRIC_FLOATS]
BOOL_COLUMNS = ["random_weights", *_METRIC_FLAGS]

NAN = float("nan")


def _float(value: Any) -> float:
    if value is None:
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def read_metric_record(job_dir: Path, metric: str) -> dict[str, Any] | None:
    """``<job_dir>/metrics/<metric>.json`` or None when absent or unreadable (an unreadable
    record counts as not scored, so ``splice score`` writes it again)."""
    path = Path(job_dir) / "metrics" / f"{metric}.json"
    if not path.exists():
        return None
    try:
        rec = read_json(path)
    except (OSError, ValueError):
        log.warning("unreadable metric record %s: treated as not scored", path)
        return None
    return rec if isinstance(rec, dict) else None


def job_row(store: RunStore, key, rec: JobRecord) -> dict[str, Any]:
    """The row of one job record (see the module docstring)."""
    job_dir = store.job_dir(key)
    pair = rec.pair
    out_name = rec.output
    out_path = job_dir / out_name if out_name else None
    row: dict[str, Any] = {
        "dataset": key.dataset,
        "pair_id": key.pair_id,
        "method": key.method,
        "seed": key.seed,
        "config_hash": key.config_hash,
        "status": rec.status,
        "job_dir": str(job_dir),
        "output": str(out_path) if out_path is not None and out_path.exists() else None,
        "structure": pair.get("structure"),
        "appearance": pair.get("appearance"),
        "geometry": rec.geometry,
        "seconds": _float(rec.seconds),
        "peak_memory_mb": _float(rec.peak_memory_mb),
        "device": rec.device,
        "random_weights": rec.random_weights,
        "error": rec.error,
    }
    random = False
    for spec in SPECS.values():
        metric = read_metric_record(job_dir, spec.name)
        excluded = bool(metric.get("excluded", False)) if metric else False
        for n in spec.numbers:
            row[n.column] = NAN if excluded or not metric else _float(metric.get(n.key))
        row[f"{spec.name}_scored"] = metric is not None
        if spec.excludable:
            row[f"{spec.name}_excluded"] = excluded
            row[f"{spec.name}_exclusion_reason"] = (metric or {}).get("exclusion_reason")
        if spec.model_column:
            row[spec.model_column[0]] = (metric or {}).get(spec.model_column[1])
        row[f"{spec.name}_random"] = bool((metric or {}).get("random_weights", False))
        random = random or row[f"{spec.name}_random"]
    row["metrics_random_weights"] = random
    return row


def expected_row(store: RunStore, job: JobHealth) -> dict[str, Any]:
    """The row of an expected job without a readable record (pending, running, stale, corrupt): its key,
    state and inputs (from its plan); every result column empty."""
    row: dict[str, Any] = {c: None for c in COLUMNS}
    pair = job.pair
    row.update(dataset=job.key.dataset, pair_id=job.key.pair_id, method=job.key.method, seed=job.key.seed,
               config_hash=job.key.config_hash, job_dir=str(job.job_dir), structure=pair.get("structure"),
               appearance=pair.get("appearance"), error=job.why, state=job.state)  # fmt: skip
    for col in BOOL_COLUMNS:
        row[col] = False
    for col in FLOAT_COLUMNS:
        row[col] = NAN
    return row


def load_results(run_dir: str | os.PathLike, expected: bool = False,
                 jobs: list[JobHealth] | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per job record of the run store at ``run_dir`` (columns: module docstring), each with its
    state (:func:`splice.core.health.survey`).

    With ``expected``, also one row per expected job that has no readable record (pending, running, stale,
    corrupt: ``status`` None), so that tables and reports show what is missing, not only what finished.
    Rows are sorted by dataset, pair, method, seed and configuration hash. An empty store gives an empty
    frame with the same columns. ``jobs``: the store's :func:`~splice.core.health.survey` when the caller
    already has it (each survey reads every record).
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise UserError(f"run store not found: {root}; create it with `splice bench --out {root}` or check --out")
    store = RunStore(root)
    rows = []
    for job in survey(store) if jobs is None else jobs:
        if job.record is not None:
            rows.append({**job_row(store, job.key, job.record), "state": job.state})
        elif expected:
            rows.append(expected_row(store, job))
    df = pd.DataFrame(rows, columns=COLUMNS)
    if rows:
        df = df.sort_values(["dataset", "pair_id", "method", "seed", "config_hash"], kind="stable")
        df = df.reset_index(drop=True)
    for col in FLOAT_COLUMNS:
        df[col] = df[col].astype(float)
    for col in BOOL_COLUMNS:
        df[col] = df[col].astype(bool)
    df["seed"] = df["seed"].astype("int64")
    # pandas >= 3 infers a string dtype that turns None into NaN; the documented contract is None.
    for col in OBJECT_COLUMNS:
        values = df[col].astype(object)
        df[col] = values.where(values.notna(), None)
    return df
