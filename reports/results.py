"""What a report is built from: a run's job rows, its settings, and the models and weights behind them.

Reads only the run store (``run.json``, job records, metric records; layout in :mod:`splice.core.store`) through
:func:`eval.aggregate.load_results`, so a report never re-runs a method or a model (ARCHITECTURE.md). PROTOCOL.md
asks every report to state the models, weights and settings it was made with and to say so loudly when any
came from randomly initialised models; :class:`RunResults` collects exactly that, and every job the run
expects with its state (:mod:`splice.core.health`), so that a report of an unfinished or broken run says
what is missing and what fixes it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from splice.core.atomic import read_json
from splice.core.errors import UserError
from splice.core.health import DONE, FAILED, NOT_APPLICABLE, Fixer, JobHealth, check_selection, select, survey
from splice.core.record import JobRecord

log = logging.getLogger(__name__)

#: fields of a metric record that identify how it was made (the rest are per-job numbers)
METRIC_IDENTITY_KEYS = ("protocol_version", "segmenter", "backbone", "detector", "model", "weights", "random_weights",
                        "score_threshold", "mask_threshold", "detector_size", "size", "max_size",
                        "settings", "versions", "settings_hash")  # fmt: skip


@dataclass
class MethodModels:
    """How one method's jobs were made: weights, configurations, devices (from its job records)."""

    method: str
    n_jobs: int = 0  # jobs with a record
    n_failed: int = 0
    random_weights: bool = False
    weights: list[Any] = field(default_factory=list)  # distinct weights identities, as recorded
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # config hash -> resolved configuration
    devices: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)


@dataclass
class MetricModels:
    """How one metric's records were made: model, weights, thresholds (from ``metrics/<name>.json``)."""

    metric: str
    n_records: int = 0
    random_weights: bool = False
    identities: dict[str, int] = field(default_factory=dict)  # compact JSON of METRIC_IDENTITY_KEYS -> count


@dataclass
class RunResults:
    run_dir: Path
    df: pd.DataFrame
    datasets: list[str]
    methods: list[str]
    run_info: Any = None  # the parsed run.json, or None
    run_info_text: str | None = None  # run.json as stored
    method_models: list[MethodModels] = field(default_factory=list)
    metric_models: list[MetricModels] = field(default_factory=list)
    health: list[JobHealth] = field(default_factory=list)  # every expected job of the selection, with its state
    fixer: Fixer | None = None  # the command that fixes a job that is not done

    @property
    def random_weights(self) -> bool:
        """Any result of the report came from a randomly initialised model (method or metric)."""
        return bool(self.random_sources())

    def random_sources(self) -> list[str]:
        """One phrase per source of random weights, e.g. ``"method splice (4 of 4 jobs)"``."""
        out = []
        df = self.df
        for m in self.methods:
            sub = df[df["method"] == m]
            n = int(sub["random_weights"].sum())
            if n:
                out.append(f"method {m} ({n} of {len(sub)} jobs)")
        for mm in self.metric_models:
            if mm.random_weights:
                out.append(f"metric {mm.metric}")
        n_metric = int(df["metrics_random_weights"].sum()) if "metrics_random_weights" in df else 0
        if n_metric and not any(mm.random_weights for mm in self.metric_models):
            out.append(f"metric records of {n_metric} jobs")
        return out

    @property
    def failed(self) -> pd.DataFrame:
        """Jobs whose record says ``failed``."""
        return self.df[self.df["state"] == FAILED]

    @property
    def incomplete(self) -> list[JobHealth]:
        """Expected jobs without a result: failed, pending, running, stale, corrupt, output missing."""
        return [j for j in self.health if j.state not in (DONE, NOT_APPLICABLE)]


def _split(values: tuple[str, ...] | list[str] | None) -> list[str] | None:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``; None or empty -> None."""
    if not values:
        return None
    out = [v.strip() for item in values for v in str(item).split(",") if v.strip()]
    return out or None


def method_order(names: list[str]) -> list[str]:
    """Registry order (Splice first) for registered methods, then the others alphabetically."""
    try:
        from splice.core.registry import METHODS

        known = list(METHODS)
    except ImportError:  # pragma: no cover - the registry is part of the core
        known = []
    rank = {n: i for i, n in enumerate(known)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _compact(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(", ", ": "))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        rec = read_json(path)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _read_record(path: Path) -> JobRecord | None:
    data = _read(path)
    try:
        return JobRecord.from_dict(data) if data is not None else None
    except (KeyError, TypeError, ValueError):
        return None


def collect_models(df: pd.DataFrame, methods: list[str], records: dict[str, JobRecord] | None = None
                   ) -> tuple[list[MethodModels], list[MetricModels]]:  # fmt: skip
    """Weights, configurations and metric models of the jobs in ``df``, from their records (``records``: job
    folder -> record, when the caller has read them already; else read here)."""
    by_method = {m: MethodModels(m) for m in methods}
    by_metric: dict[str, MetricModels] = {}
    for row in df.itertuples(index=False):
        mm = by_method.setdefault(row.method, MethodModels(row.method))
        if row.status is None:  # an expected job without a record: nothing to say about how it was made
            continue
        mm.n_jobs += 1
        mm.n_failed += int(row.state == FAILED)
        mm.random_weights = mm.random_weights or bool(row.random_weights)
        if int(row.seed) not in mm.seeds:
            mm.seeds.append(int(row.seed))
        job_dir = Path(row.job_dir)
        rec = records.get(str(job_dir)) if records is not None else _read_record(job_dir / "record.json")
        weights = rec.weights if rec else None
        if weights is None and rec is not None:
            weights = rec.info.get("weights")
        if weights is not None and weights not in mm.weights:
            mm.weights.append(weights)
        if rec is not None and rec.config:
            mm.configs.setdefault(str(row.config_hash), rec.config)
        device = rec.device if rec else None
        if device and device not in mm.devices:
            mm.devices.append(str(device))
        metrics_dir = job_dir / "metrics"
        if metrics_dir.is_dir():
            for path in sorted(metrics_dir.glob("*.json")):
                mrec = _read(path)
                if mrec is None:
                    continue
                name = str(mrec.get("metric") or path.stem)
                entry = by_metric.setdefault(name, MetricModels(name))
                entry.n_records += 1
                entry.random_weights = entry.random_weights or bool(mrec.get("random_weights", False))
                ident = _compact({k: mrec[k] for k in METRIC_IDENTITY_KEYS if k in mrec})
                entry.identities[ident] = entry.identities.get(ident, 0) + 1
    for mm in by_method.values():
        mm.seeds.sort()
    return [by_method[m] for m in by_method], [by_metric[k] for k in sorted(by_metric)]


def load_run(run_dir: str | Path, datasets: list[str] | tuple[str, ...] | None = None,
             methods: list[str] | tuple[str, ...] | None = None) -> RunResults:  # fmt: skip
    """Read the run store at ``run_dir``, keeping only ``datasets`` and ``methods`` (comma lists allowed).

    Raises :class:`~splice.core.errors.UserError` for a missing run, an empty run, or names the run does not hold.
    """
    from eval.aggregate import load_results

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}; pass the --out folder of `splice bench`")
    from splice.core.store import RunStore

    store = RunStore(run_dir)
    everything = survey(store)  # once: the frame, the job states and the records of the provenance all come from it
    df = load_results(run_dir, expected=True, jobs=everything)
    if df.empty:
        raise UserError(f"no job records under {run_dir / 'outputs'}; run `splice bench --out {run_dir}` first")
    want_ds, want_m = _split(datasets), _split(methods)
    all_ds = sorted(df["dataset"].unique())
    all_m = method_order(list(df["method"].unique()))
    check_selection("--datasets", want_ds, all_ds, f"run {run_dir}")
    check_selection("--methods", want_m, all_m, f"run {run_dir}")
    if want_ds:
        df = df[df["dataset"].isin(want_ds)]
    if want_m:
        df = df[df["method"].isin(want_m)]
    df = df.reset_index(drop=True)
    if df.empty:
        raise UserError(f"run {run_dir} has no job of methods {', '.join(want_m or all_m)} on data sets "
                        f"{', '.join(want_ds or all_ds)}; check --datasets and --methods")  # fmt: skip
    present = set(df["dataset"])
    datasets_ = [d for d in (want_ds or all_ds) if d in present]
    methods_ = list(want_m) if want_m else all_m

    run_info, run_text = None, None
    run_json = run_dir / "run.json"
    if run_json.is_file():
        try:
            run_text = run_json.read_text(encoding="utf-8")
            run_info = json.loads(run_text)
        except (OSError, ValueError) as e:
            log.warning("unreadable %s (%s): the report shows no run settings", run_json, e)
            run_info = None
    health = select(everything, methods_, datasets_)
    records = {str(store.job_dir(j.key)): j.record for j in health if j.record is not None}
    method_models, metric_models = collect_models(df, methods_, records)
    return RunResults(run_dir=run_dir, df=df, datasets=datasets_, methods=methods_, run_info=run_info,
                      run_info_text=run_text, method_models=method_models, metric_models=metric_models,
                      health=health, fixer=Fixer(store))  # fmt: skip
