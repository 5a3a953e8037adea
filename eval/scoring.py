"""``splice score --out runs/NAME``: score every finished job of a run, resumably, tied to image content.

For each job whose record says ``ok`` this writes one record per selected metric into ``<job dir>/metrics/``
(atomically), following PROTOCOL.md (version 2; the Splice paper, Tumanyan et al. CVPR 2022, Table 2, and
the ViT losses it is built on). Metrics come from the registry :mod:`eval.scorers`:

- ``--metrics iou`` writes the layout record of the job's segmenter: ``iou.json`` (``maskrcnn``, objects)
  or ``panoptic.json`` (``panoptic``, objects and stuff). ``--segmenter`` chooses; without it each data set
  uses its default (:data:`eval.segmenter.DEFAULT_BY_DATASET`: Mountains ``panoptic``, others ``maskrcnn``).
- ``--metrics vit`` writes ``vit.json``.
- ``--metrics NAME`` writes ``NAME.json`` for any other registered metric (``splice metrics`` lists them: the
  measures of :mod:`eval.measures`, LPIPS, DISTS, CLIP, DINO, ...); ``--metrics all`` writes every family.
  The measures share one feature store (:mod:`eval.measures.features`): each image meets each model once.

Every metric record stores the sha256 of each image file it read (``images``: structure, appearance,
output). A stored record is kept only when its ``settings_hash`` (protocol version, metric, model identity,
settings) is the one wanted **and** every image it read still has the same sha256; otherwise the job is
rescored and the summary says why (``new``, ``settings changed``, ``output image changed``, ...). Models run
only on images the content-hash cache has not seen. ``force`` rescores everything (from the cache).

An ``ok`` job whose output file is missing is listed by name (``missing_outputs``), not skipped silently;
a job that cannot be scored (missing input image, geometry that does not fit) is an error entry; the others
continue either way. Which jobs are finished is :mod:`splice.core.health`'s decision: the others (failed,
pending, running, stale, a corrupt record, an output gone) are counted per state (``not_scored``) so that
the command can name them; a ``--methods`` or ``--datasets`` name the store does not hold is an error.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from splice.core.atomic import atomic_write_json
from splice.core.errors import ConfigError, ImageError, UserError
from splice.core.health import DONE, NOT_APPLICABLE, OUTPUT_MISSING, JobHealth, check_selection, select, survey
from splice.core.imageio import load_rgb, sha256_file
from splice.core.record import JobKey, JobRecord
from splice.core.store import RunStore

from . import scorers
from .aggregate import read_metric_record
from .cache import resolve_cache_dir
from .detector import DEFAULT_DETECTOR
from .scorers import DEFAULT_METRICS, SPECS, check_metrics, records_of
from .segmenter import check_segmenter, default_segmenter

log = logging.getLogger(__name__)

ROLES = ("structure", "appearance", "output")


@dataclass
class ScoreOptions:
    """What ``splice score`` run mode does (CLI options map one to one)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS  # families, record names, or "all"
    methods: list[str] | None = None
    datasets: list[str] | None = None
    force: bool = False
    device: str = "cpu"
    allow_random_weights: bool = False
    cache_dir: str | None = None
    segmenter: str | None = None  # None: each data set's default
    # Mask R-CNN
    detector: str = DEFAULT_DETECTOR
    detector_weights: str | None = None
    detector_size: int | None = None
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    batch_size: int = 2
    # panoptic
    panoptic_model: str = "auto"
    panoptic_weights: str | None = None
    panoptic_size: int | None = None
    # ViT
    backbone: str | None = None
    weights: str | None = None
    # the measures of eval.measures: their preset (paper or smoke) and options ({metric: {option: text}})
    preset: str = "paper"
    metric_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    # relative input paths in records are resolved against this folder (default: cwd)
    root: str | None = None

    def __post_init__(self):
        self.metrics = check_metrics(self.metrics)
        check_segmenter(self.segmenter)
        unknown = sorted(set(self.metric_args) - set(self.metrics))
        if unknown:
            raise ConfigError(f"--metric-args for {', '.join(unknown)}, which --metrics does not select")

    def segmenter_for(self, dataset: str) -> str:
        return self.segmenter or default_segmenter(dataset)

    def records_for(self, dataset: str) -> list[str]:
        """The metric records a job of ``dataset`` gets (``iou`` or ``panoptic``, then ``vit``, ...)."""
        return list(dict.fromkeys(scorers.record_name(m, self.segmenter_for(dataset)) for m in self.metrics))

    @property
    def records(self) -> list[str]:
        """Every record these options may write (both layout records when the ``iou`` family is selected)."""
        return records_of(self.metrics)


def _counts() -> dict[str, int]:
    return {name: 0 for name in SPECS}


def _zeros(names: Iterable[str]) -> dict[str, int]:
    return {n: 0 for n in names}


@dataclass
class ScoreSummary:
    """What a scoring run did, per metric record (``iou``, ``panoptic``, ``vit``)."""

    jobs: int = 0
    scored: dict[str, int] = field(default_factory=_counts)
    skipped: dict[str, int] = field(default_factory=_counts)  # up to date
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)  # record -> why it was (re)scored -> count
    excluded: dict[str, int] = field(default_factory=_counts)
    errors: list[dict[str, str]] = field(default_factory=list)
    missing_outputs: list[str] = field(default_factory=list)  # ok jobs whose output file is gone
    model_calls: dict[str, int] = field(default_factory=_counts)
    cache: dict[str, dict[str, int]] = field(default_factory=dict)
    segmenters: dict[str, str] = field(default_factory=dict)  # data set -> layout segmenter used
    seconds: dict[str, float] = field(default_factory=dict)  # record -> wall seconds in its scorer (build + score)
    random_weights: bool = False
    not_scored: dict[str, int] = field(default_factory=dict)  # jobs of the selection without a result, per state

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.missing_outputs


def select_jobs(store: RunStore, methods: Iterable[str] | None = None, datasets: Iterable[str] | None = None,
                jobs: list[JobHealth] | None = None
                ) -> tuple[list[tuple[JobKey, JobRecord]], list[JobKey]]:  # fmt: skip
    """The finished jobs of ``store`` (:mod:`splice.core.health` state ``done``: an ok record and its output),
    and the ok jobs whose output is missing (``jobs``: the store's survey, when already made)."""
    jobs = select(survey(store) if jobs is None else jobs, methods, datasets)
    found = [(j.key, j.record) for j in jobs if j.state == DONE and j.record is not None]
    missing = [j.key for j in jobs if j.state == OUTPUT_MISSING]
    return found, missing


def input_path(value: str | None, role: str, root: str | None, where: str) -> Path:
    """An input image path of a job record (relative paths are relative to ``root``, default the cwd)."""
    if not value:
        raise UserError(f"{where}: the job record names no {role}; re-run the job")
    p = Path(value).expanduser()
    if not p.is_absolute():
        p = Path(root or os.getcwd()) / p
    return p


class FileHashes:
    """sha256 of image files, computed once per (path, size, mtime) in this process."""

    def __init__(self):
        self._memo: dict[str, tuple[int, int, str]] = {}

    def __call__(self, path: Path, role: str) -> str:
        try:
            st = path.stat()
        except OSError:
            raise ImageError(f"{role} not found: {path}") from None
        memo = self._memo.get(str(path))
        if memo and memo[:2] == (st.st_size, st.st_mtime_ns):
            return memo[2]
        digest = sha256_file(path)
        self._memo[str(path)] = (st.st_size, st.st_mtime_ns, digest)
        return digest


def stale_reason(record: dict[str, Any] | None, want_hash: str, hashes: dict[str, str], force: bool = False
                 ) -> str | None:  # fmt: skip
    """Why a stored metric record must be recomputed, or None when it is up to date.

    ``hashes`` maps the roles the metric reads to the sha256 of the image files now."""
    if force:
        return "forced"
    if not isinstance(record, dict):
        return "new"
    if record.get("settings_hash") != want_hash:
        return "settings changed"
    stored = record.get("images")
    if not isinstance(stored, dict):
        return "no image hashes"
    for role, digest in hashes.items():
        entry = stored.get(role)
        if not isinstance(entry, dict) or entry.get("sha256") != digest:
            return f"{role} image changed"
    return None


class Scorers:
    """The scorers of a run, built on first need: only for the records the selected jobs get. Building one
    resolves its weights (a file's sha256); Mask R-CNN and the panoptic model are built only when an image
    needs them, the ViT when its scorer is built."""

    def __init__(self, opts: ScoreOptions, cache_root: Path, given: dict[str, Any] | None = None):
        self.opts = opts
        self.cache_root = cache_root
        self.built: dict[str, Any] = dict(given or {})
        self.shared: dict[str, Any] = {}  # what the scorers of this run share (the measures' feature store)
        self._hashes: dict[str, str] = {}

        self.seconds: Counter[str] = Counter()

    def __getitem__(self, name: str):
        if name not in self.built:
            t0 = time.perf_counter()
            self.built[name] = scorers.build(name, self.opts, self.cache_root, self.shared)
            self.seconds[name] += time.perf_counter() - t0
        return self.built[name]

    def settings_hash(self, name: str) -> str:
        if name not in self._hashes:
            scorer = self[name]
            t0 = time.perf_counter()
            self._hashes[name] = scorer.settings_hash()
            self.seconds[name] += time.perf_counter() - t0
        return self._hashes[name]


def score_run(
    run_dir: str | os.PathLike,
    opts: ScoreOptions | None = None,
    *,
    progress: bool = False,
    models: dict[str, Any] | None = None,
    on_job: Callable[[JobKey], None] | None = None,
) -> ScoreSummary:
    """Score every finished job of the run store at ``run_dir`` (module docstring).

    Args:
        run_dir: the run store (``--out``).
        opts: metrics, segmenter, models and filters.
        progress: show a tqdm bar on stderr.
        models: scorers by record name (``{"iou": CachedDetector, "panoptic": CachedSegmenter,
            "vit": CachedViT}``) to use instead of building them (tests).
        on_job: called with each job's key before it is looked at.
    """
    opts = opts or ScoreOptions()
    root = Path(run_dir)
    if not (root / "outputs").is_dir():
        raise UserError(f"no run store at {root} (no outputs/ folder); run `splice bench --out {root}` first")
    store = RunStore(root)
    everything = survey(store)
    check_selection("--methods", opts.methods, (j.key.method for j in everything), f"run {root}")
    check_selection("--datasets", opts.datasets, (j.key.dataset for j in everything), f"run {root}")
    jobs, missing = select_jobs(store, opts.methods, opts.datasets, everything)
    names = opts.records
    summary = ScoreSummary(jobs=len(jobs), missing_outputs=[str(k) for k in missing], scored=_zeros(names),
                           skipped=_zeros(names), excluded=_zeros(names), model_calls=_zeros(names))  # fmt: skip
    for j in select(everything, opts.methods, opts.datasets):
        if j.state not in (DONE, NOT_APPLICABLE):
            summary.not_scored[j.state] = summary.not_scored.get(j.state, 0) + 1
    for key in missing:
        log.error("%s: the record says ok but its output is missing; run `splice bench` again to redo it", key)
    if not jobs:
        if not missing:
            log.warning("no finished jobs to score in %s", root)
        return summary
    live = Scorers(opts, resolve_cache_dir(opts.cache_dir), models)
    # resolve every model the jobs need before the first job: a missing weights file is one error, not one per job
    for name in dict.fromkeys(n for key, _ in jobs for n in opts.records_for(key.dataset)):
        live.settings_hash(name)
    hasher = FileHashes()

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="scoring", unit="job", dynamic_ncols=True)
    try:
        for key, rec in jobs:
            if on_job:
                on_job(key)
            _visit(store, key, rec, live, hasher, opts, summary)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"errors={len(summary.errors)}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    for name, scorer in live.built.items():
        summary.model_calls[name] = scorer.model_calls
        summary.cache[name] = scorer.cache_stats()
        summary.random_weights |= bool(scorer.random)
        summary.seconds[name] = round(live.seconds[name], 3)
    return summary


def _visit(store: RunStore, key: JobKey, rec: JobRecord, live: Scorers, hasher: FileHashes, opts: ScoreOptions,
           summary: ScoreSummary) -> None:  # fmt: skip
    job_dir = store.job_dir(key)
    where = str(key)
    names = opts.records_for(key.dataset)
    if "iou" in opts.metrics:
        summary.segmenters.setdefault(key.dataset, opts.segmenter_for(key.dataset))
    roles = [r for r in ROLES if any(r in SPECS[n].reads for n in names)]
    paths: dict[str, Path] = {}
    shown: dict[str, str] = {}
    try:
        for role in roles:
            if role == "output":
                paths[role], shown[role] = job_dir / str(rec.output), str(rec.output)
            else:
                value = rec.pair.get(role)
                paths[role] = input_path(value, f"{role} image", opts.root, where)
                shown[role] = str(value)
        hashes = {role: hasher(paths[role], f"{role} image") for role in roles}
        todo = []
        for name in names:
            want = {r: hashes[r] for r in SPECS[name].reads}
            reason = stale_reason(read_metric_record(job_dir, name), live.settings_hash(name), want, opts.force)
            if reason is None:
                summary.skipped[name] += 1
            else:
                todo.append((name, reason))
        if not todo:
            return
        needed = {r for name, _ in todo for r in SPECS[name].reads}
        images = {r: load_rgb(paths[r], role=f"{r} image", min_side=0).image for r in roles if r in needed}
    except UserError as e:
        summary.errors.append({"job": where, "error": str(e)})
        log.error("%s: %s", where, e)
        return
    for name, reason in todo:
        spec = SPECS[name]
        t0 = time.perf_counter()
        try:
            record = live[name].score({r: images[r] for r in spec.reads}, rec.geometry, where=where)
        except UserError as e:
            summary.errors.append({"job": where, "metric": name, "error": str(e)})
            log.error("%s: %s", where, e)
            continue
        except Exception as e:  # a failure becomes an error entry; the run continues (STYLE.md)
            summary.errors.append({"job": where, "metric": name, "error": f"{type(e).__name__}: {e}"})
            log.exception("%s: scoring %s failed", where, name)
            continue
        finally:
            live.seconds[name] += time.perf_counter() - t0
        record["images"] = {r: {"path": shown[r], "sha256": hashes[r]} for r in spec.reads}
        record["job"] = key.to_dict()
        atomic_write_json(job_dir / "metrics" / f"{name}.json", record)
        summary.scored[name] += 1
        summary.excluded[name] += bool(record.get("excluded"))
        counts = summary.reasons.setdefault(name, {})
        counts[reason] = counts.get(reason, 0) + 1


def summary_lines(summary: ScoreSummary, metrics: Iterable[str]) -> list[str]:
    """What ``splice score`` prints on stderr: one line per metric record, then missing outputs and errors."""
    wanted = set(records_of(check_metrics(metrics)))
    lines = [f"{summary.jobs} finished jobs"]
    if summary.segmenters:
        by_seg = Counter(summary.segmenters.values())
        lines[0] += "; layout segmenter: " + ", ".join(
            f"{seg} ({', '.join(sorted(d for d, s in summary.segmenters.items() if s == seg))})" for seg in by_seg)
    for name, spec in SPECS.items():
        if name not in wanted or name not in summary.scored:
            continue
        used = summary.scored[name] + summary.skipped[name]
        if not used and spec.segmenter is not None:
            continue  # a segmenter no data set used
        why = summary.reasons.get(name, {})
        detail = f" ({', '.join(f'{n} {r}' for r, n in sorted(why.items()))})" if why else ""
        line = (f"{name}: {summary.scored[name]} scored{detail}, {summary.skipped[name]} up to date, "
                f"{summary.model_calls[name]} model calls, {summary.seconds.get(name, 0.0):.1f} s")  # fmt: skip
        if spec.excludable and summary.excluded[name]:
            line += f"; {summary.excluded[name]} of the scored excluded (nothing to compare in the structure image)"
        lines.append(line)
    return lines
