"""``splice score --out runs/NAME``: score every finished job of a run, resumably.

For each job whose record says ``ok`` (and whose output exists) this writes
``<job dir>/metrics/iou.json`` (Mask R-CNN layout IoU, :mod:`eval.layout`) and/or
``<job dir>/metrics/vit.json`` (ViT distances, :mod:`eval.vit_metrics`) atomically,
following PROTOCOL.md (the Splice paper, Tumanyan et al. CVPR 2022, Table 2, and the
ViT losses it is built on).

Resumable like the runner: a job whose metric record exists with the same
``settings_hash`` (protocol version, model identity, settings) is skipped; another
model or threshold rescores it; ``force`` rescores everything. A job that cannot be
scored (missing input image, geometry that does not fit) is reported and left without
a record, and the others continue. Models are loaded only when some job needs them,
and every image goes through the content-hash cache.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from splice.core.atomic import atomic_write_json, read_json
from splice.core.errors import ConfigError, UserError
from splice.core.imageio import load_rgb
from splice.core.record import JobKey, JobRecord
from splice.core.store import RunStore

from .cache import FeatureCache, resolve_cache_dir
from .detector import DEFAULT_DETECTOR, load_detector

log = logging.getLogger(__name__)

ALL_METRICS = ("iou", "vit")


@dataclass
class ScoreOptions:
    """What ``splice score`` run mode does (CLI options map one to one)."""

    metrics: tuple[str, ...] = ALL_METRICS
    methods: list[str] | None = None
    datasets: list[str] | None = None
    force: bool = False
    device: str = "cpu"
    allow_random_weights: bool = False
    cache_dir: str | None = None
    # Mask R-CNN
    detector: str = DEFAULT_DETECTOR
    detector_weights: str | None = None
    detector_size: int | None = None
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    batch_size: int = 2
    # ViT
    backbone: str | None = None
    weights: str | None = None
    # relative input paths in records are resolved against this folder (default: cwd)
    root: str | None = None

    def __post_init__(self):
        bad = [m for m in self.metrics if m not in ALL_METRICS]
        if bad or not self.metrics:
            raise ConfigError(f"unknown metric(s) {', '.join(bad) or '(none)'}; use --metrics {','.join(ALL_METRICS)}")


@dataclass
class ScoreSummary:
    jobs: int = 0
    scored: dict[str, int] = field(default_factory=lambda: {m: 0 for m in ALL_METRICS})
    skipped: dict[str, int] = field(default_factory=lambda: {m: 0 for m in ALL_METRICS})
    excluded: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    model_calls: dict[str, int] = field(default_factory=lambda: {m: 0 for m in ALL_METRICS})
    cache: dict[str, dict[str, int]] = field(default_factory=dict)
    random_weights: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_jobs(store: RunStore, methods: Iterable[str] | None = None,
                datasets: Iterable[str] | None = None) -> list[tuple[JobKey, JobRecord]]:  # fmt: skip
    """Finished jobs (status ok, output present) of ``store``, optionally filtered."""
    methods = set(methods) if methods else None
    datasets = set(datasets) if datasets else None
    out = []
    for key, rec in store.iter_records():
        if methods is not None and key.method not in methods:
            continue
        if datasets is not None and key.dataset not in datasets:
            continue
        if not rec.ok or not rec.output:
            continue
        if not (store.job_dir(key) / rec.output).is_file():
            continue
        out.append((key, rec))
    return out


def _existing_hash(path: Path) -> str | None:
    try:
        return read_json(path).get("settings_hash")
    except (OSError, ValueError, AttributeError):
        return None


def _input_path(value: str | None, role: str, root: str | None, where: str) -> Path:
    if not value:
        raise UserError(f"{where}: the job record names no {role}; re-run the job")
    p = Path(value).expanduser()
    if not p.is_absolute():
        p = Path(root or os.getcwd()) / p
    return p


class _Models:
    """Models built on first need (a fully skipped run loads nothing)."""

    def __init__(self, opts: ScoreOptions, cache_root: Path):
        self.opts = opts
        self.cache_root = cache_root
        self._det = None
        self._vit = None

    @property
    def detector(self):
        if self._det is None:
            from .layout import cached_detector

            o = self.opts
            det = load_detector(o.detector, o.detector_weights, device=o.device, allow_random=o.allow_random_weights,
                                score_threshold=o.score_threshold, mask_threshold=o.mask_threshold,
                                min_size=o.detector_size, batch_size=o.batch_size)  # fmt: skip
            self._det = cached_detector(det, str(self.cache_root))
        return self._det

    @property
    def vit(self):
        if self._vit is None:
            from splice.model.vit import load_vit

            from .vit_metrics import CachedViT

            o = self.opts
            kwargs: dict[str, Any] = {"weights": o.weights, "device": o.device, "allow_random": o.allow_random_weights}
            if o.backbone:
                kwargs["backbone"] = o.backbone
            ext = load_vit(**kwargs)
            vit = CachedViT(ext, FeatureCache(self.cache_root, "vit", "vit"))
            ident = vit.key_identity
            vit.cache.model = f"{vit.backbone}-{(ident.get('sha256') or ident.get('spec') or 'x')[:12]}"
            self._vit = vit
        return self._vit


def _loaded(models: Any, metric: str):
    """The metric's model wrapper if it was loaded (never loads one)."""
    if isinstance(models, _Models):
        return models._det if metric == "iou" else models._vit
    return getattr(models, "detector" if metric == "iou" else "vit", None)


def score_run(
    run_dir: str | os.PathLike,
    opts: ScoreOptions | None = None,
    *,
    progress: bool = False,
    models: Any = None,
    on_job: Callable[[JobKey], None] | None = None,
) -> ScoreSummary:
    """Score every finished job of the run store at ``run_dir`` (module docstring).

    Args:
        run_dir: the run store (``--out``).
        opts: metrics, models and filters.
        progress: show a tqdm bar on stderr.
        models: an object with ``detector`` / ``vit`` attributes (a :class:`eval.layout.CachedDetector`,
            a :class:`eval.vit_metrics.CachedViT`) to use instead of loading them (tests).
    """
    opts = opts or ScoreOptions()
    root = Path(run_dir)
    if not (root / "outputs").is_dir():
        raise UserError(f"no run store at {root} (no outputs/ folder); run `splice bench --out {root}` first")
    store = RunStore(root)
    jobs = select_jobs(store, opts.methods, opts.datasets)
    summary = ScoreSummary(jobs=len(jobs))
    if not jobs:
        log.warning("no finished jobs to score in %s", root)
        return summary
    models = models or _Models(opts, resolve_cache_dir(opts.cache_dir))

    # The settings hash of each metric decides what is already done; getting it may load the model.
    want: dict[str, str] = {}
    for metric in opts.metrics:
        m = models.detector if metric == "iou" else models.vit
        want[metric] = m.settings_hash()
        summary.random_weights |= bool(m.record_base()["random_weights"])

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="scoring", unit="job", dynamic_ncols=True)
    try:
        for key, rec in jobs:
            if on_job:
                on_job(key)
            job_dir = store.job_dir(key)
            todo = [m for m in opts.metrics
                    if opts.force or _existing_hash(job_dir / "metrics" / f"{m}.json") != want[m]]  # fmt: skip
            for m in opts.metrics:
                if m not in todo:
                    summary.skipped[m] += 1
            if todo:
                _score_job(store, key, rec, todo, models, opts, summary)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"errors={len(summary.errors)}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    for metric, kind in (("iou", "masks"), ("vit", "vit")):
        wrapper = _loaded(models, metric) if metric in opts.metrics else None
        if wrapper is not None:
            summary.model_calls[metric] = wrapper.model_calls
            summary.cache[kind] = wrapper.cache.stats()
    return summary


def _score_job(store: RunStore, key: JobKey, rec: JobRecord, todo: list[str], models: Any, opts: ScoreOptions,
               summary: ScoreSummary) -> None:  # fmt: skip
    job_dir = store.job_dir(key)
    where = str(key)
    pair = rec.pair
    try:
        structure = load_rgb(_input_path(pair.get("structure"), "structure image", opts.root, where),
                             role="structure image", min_side=0).image  # fmt: skip
        output = load_rgb(job_dir / rec.output, role="output image", min_side=0).image
        appearance = None
        if "vit" in todo:
            appearance = load_rgb(_input_path(pair.get("appearance"), "appearance image", opts.root, where),
                                  role="appearance image", min_side=0).image  # fmt: skip
    except UserError as e:
        summary.errors.append({"job": where, "error": str(e)})
        log.error("%s: %s", where, e)
        return
    geometry = rec.geometry
    for metric in todo:
        try:
            if metric == "iou":
                from .layout import score_layout

                record = score_layout(structure, output, models.detector, geometry, where=where)
                summary.excluded += bool(record["excluded"])
            else:
                from .vit_metrics import score_vit

                record = score_vit(structure, appearance, output, models.vit, geometry, where=where)
        except UserError as e:
            summary.errors.append({"job": where, "metric": metric, "error": str(e)})
            log.error("%s: %s", where, e)
            continue
        except Exception as e:  # a failure becomes an error entry; the run continues (STYLE.md)
            summary.errors.append({"job": where, "metric": metric, "error": f"{type(e).__name__}: {e}"})
            log.exception("%s: scoring %s failed", where, metric)
            continue
        record["job"] = key.to_dict()
        atomic_write_json(job_dir / "metrics" / f"{metric}.json", record)
        summary.scored[metric] += 1
