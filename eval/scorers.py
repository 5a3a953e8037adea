"""The metric registry: every metric a user can ask for, what its record declares, and the live scorer behind it.

This is the one list of metrics (``splice metrics`` prints it). ``splice score``, ``splice table``, the
aggregate table, the reports and the agreement with the study's raters know metrics only through it. Each
metric declares once, in a :class:`MetricSpec`: its name (the record ``metrics/<name>.json``), the images it
reads, the numbers it writes (each with its direction and the image it compares the output with: the
*aligned structure image* or the *appearance image*), the ``--metrics`` family that selects it, its protocol
version, the models and weights it needs (:func:`requirements`, without loading anything) and the factory of
its :class:`Scorer`. The scorer knows the model identity and settings, hence the ``settings_hash`` (the cache
key of the record: protocol version, metric, model identity, settings) that decides whether a stored record
is still valid, and it keeps a content-hash cache of per-image model output.

Registered (PROTOCOL.md, version 2; the Splice paper, Tumanyan et al. CVPR 2022, for the first three):

============  ========  ===========================================  ================================================
record        family    numbers (compared with)                      model
============  ========  ===========================================  ================================================
iou           iou       iou, matched_iou (aligned structure) ↑       COCO Mask R-CNN (class-agnostic union IoU)
panoptic      iou       iou, pixel_accuracy (aligned structure) ↑    COCO-panoptic label maps (objects and stuff)
vit           vit       structure_distance ↓ (aligned structure),    DINO ViT-B/8: self-similarity and CLS (Splice's
                        appearance_distance ↓, appearance_cosine ↑    losses)
                        (appearance)
lpips_vgg …   its name  value (see :mod:`eval.measures`)             every measure of :data:`eval.measures.MEASURES`
============  ========  ===========================================  ================================================

The measures of :mod:`eval.measures` (LPIPS, DISTS, CLIP, DINO, DINOv2, Gram, Lab EMD) join through one
adapter: :func:`measure_spec` reads a measure class's own declaration (name, label, ``compares``,
``higher_is_better``, ``protocol_version``) and :class:`eval.measures.adapter.MeasureScorer` is its scorer;
their names are listed once, in :data:`eval.measures.MEASURES`.

The ``iou`` family has one record per segmenter (``--segmenter maskrcnn|panoptic``, default per data set:
:data:`eval.segmenter.DEFAULT_BY_DATASET`). ``--metrics`` takes families, record names and ``all`` (every
family; the layout family by the data set's segmenter). A new metric adds a spec (or a measure class) and
its module; the scoring loop, the image hashes, the rescoring rules, the summary, the tables, the reports and
the agreement need no change.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from PIL import Image

from splice.core.errors import ConfigError, UserError, near_names

from . import PROTOCOL_VERSION

STRUCTURE = "structure"
APPEARANCE = "appearance"
COMPARED_WITH = {STRUCTURE: "the structure image aligned to the output", APPEARANCE: "the appearance image"}
ALL = "all"
DEFAULT_METRICS = ("iou", "vit")
"""What ``splice score`` computes without ``--metrics``: the paper's protocol (layout IoU and the ViT distances)."""


@dataclass(frozen=True)
class Number:
    """One number of a metric record.

    Attributes:
        key: its field in the record.
        higher_is_better: its direction.
        compares: :data:`STRUCTURE` (output vs the aligned structure image) or :data:`APPEARANCE`.
        table: its ``splice table --metric`` name (two records may feed one table, by segmenter).
        column: its column in :func:`eval.aggregate.load_results`.
        label: a short human header.
        digits: decimals when printed (None: 3 significant digits).
    """

    key: str
    higher_is_better: bool
    compares: str
    table: str
    column: str
    label: str
    digits: int | None = 3


@dataclass(frozen=True)
class MetricSpec:
    """What a metric record is (module docstring).

    Attributes:
        name: the record (``metrics/<name>.json``).
        family: what ``--metrics`` selects it by.
        reads: the images the scorer reads (``structure``, ``appearance``, ``output``).
        numbers: the numbers it writes.
        factory: ``"module:function"`` returning its :class:`Scorer`, called as
            ``f(opts, cache_root, name=..., shared=...)``.
        needs: ``"module:function"`` of ``f(opts, name=...)`` -> list of :class:`splice.core.method.Requirement`
            (packages, models and weights; nothing loaded).
        model: a one-line description of the model and default weights.
        protocol_version: bumped when the computation changes (part of the record's ``settings_hash``).
        segmenter: the layout segmenter of an ``iou``-family record.
        excludable: a job can be excluded (nothing to compare in the aligned structure image).
        model_column: ``(column, record field)`` naming the model in :func:`eval.aggregate.load_results`.
        description: one line.
        reference: the paper that defines it.
    """

    name: str
    family: str
    reads: tuple[str, ...]
    numbers: tuple[Number, ...]
    factory: str
    needs: str
    model: str = ""
    protocol_version: str = PROTOCOL_VERSION
    segmenter: str | None = None
    excludable: bool = False
    model_column: tuple[str, str] | None = None
    description: str = ""
    reference: str = ""

    @property
    def values(self) -> dict[str, bool]:
        """number -> higher is better."""
        return {n.key: n.higher_is_better for n in self.numbers}

    @property
    def primary(self) -> str:
        return self.numbers[0].key

    @property
    def compares(self) -> tuple[str, ...]:
        """The images the output is compared with (:data:`STRUCTURE`, :data:`APPEARANCE`)."""
        return tuple(dict.fromkeys(n.compares for n in self.numbers))


SPLICE_PAPER = "Tumanyan, Bar-Tal, Bagon, Dekel. Splicing ViT Features for Semantic Appearance Transfer. CVPR 2022"

BUILTIN: tuple[MetricSpec, ...] = (
    MetricSpec("iou", "iou", (STRUCTURE, "output"),
               (Number("iou", True, STRUCTURE, "iou", "iou", "layout IoU"),
                Number("matched_iou", True, STRUCTURE, "matched_iou", "matched_iou",
                       "instance-matched IoU (Mask R-CNN)")),
               "eval.layout:detector_scorer", "eval.layout:detector_requirements",
               model="COCO Mask R-CNN (torchvision maskrcnn_resnet50_fpn_v2, COCO_V1)", segmenter="maskrcnn",
               excludable=True, model_column=("detector", "detector"),
               description="layout IoU of COCO Mask R-CNN object masks (class-agnostic union)",
               reference=SPLICE_PAPER + ", Table 2"),
    MetricSpec("panoptic", "iou", (STRUCTURE, "output"),
               (Number("iou", True, STRUCTURE, "iou", "panoptic_iou", "layout IoU"),
                Number("pixel_accuracy", True, STRUCTURE, "pixel_accuracy", "pixel_accuracy",
                       "pixel accuracy (COCO panoptic label maps)")),
               "eval.layout:segmenter_scorer", "eval.layout:segmenter_requirements",
               model="COCO-panoptic Mask2Former Swin-T (transformers) or detectron2 Panoptic FPN",
               segmenter="panoptic", excludable=True, model_column=("panoptic_model", "model"),
               description="layout mIoU of COCO-panoptic label maps (objects merged, stuff by class)",
               reference=SPLICE_PAPER + ", Table 2 (Mountains: PROTOCOL.md)"),
    MetricSpec("vit", "vit", (STRUCTURE, APPEARANCE, "output"),
               (Number("structure_distance", False, STRUCTURE, "structure", "structure_distance",
                       "structure distance (DINO self-similarity MSE)", 4),
                Number("appearance_distance", False, APPEARANCE, "appearance", "appearance_distance",
                       "appearance distance (DINO CLS MSE)", 4),
                Number("appearance_cosine", True, APPEARANCE, "cosine", "appearance_cosine",
                       "appearance cosine (DINO CLS)")),
               "eval.vit_metrics:vit_scorer", "eval.vit_metrics:vit_requirements",
               model="DINO ViT-B/8 (timm vit_base_patch8_224.dino)", model_column=("backbone", "backbone"),
               description="DINO-ViT self-similarity and CLS distances (Splice's losses)", reference=SPLICE_PAPER),
)  # fmt: skip

MEASURE_FACTORY = "eval.measures.adapter:measure_scorer"
MEASURE_NEEDS = "eval.measures.adapter:measure_requirements"


def measure_spec(cls) -> MetricSpec:
    """The spec of a measure class of :mod:`eval.measures` (its own declaration, read without building it)."""
    number = Number("value", bool(cls.higher_is_better), cls.compares, cls.name, cls.name, cls.label, cls.digits)
    return MetricSpec(cls.name, cls.name, (cls.compares, "output"), (number,), MEASURE_FACTORY, MEASURE_NEEDS,
                      model=cls.default_model, protocol_version=cls.protocol_version, description=cls.label,
                      reference=cls.reference)  # fmt: skip


def _specs() -> dict[str, MetricSpec]:
    from . import measures

    out = {s.name: s for s in BUILTIN}
    for name in measures.names():
        spec = measure_spec(measures.measure_class(name))
        if spec.name in out:
            raise ValueError(f"metric {spec.name!r} is registered twice")
        out[spec.name] = spec
    return out


SPECS: dict[str, MetricSpec] = _specs()
"""Every registered metric record, by name (the one list)."""

FAMILIES = tuple(dict.fromkeys(s.family for s in SPECS.values()))


def choices() -> list[str]:
    """What ``--metrics`` accepts: ``all``, every family and every record name."""
    return [ALL, *dict.fromkeys([*FAMILIES, *SPECS])]


def check_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
    """``--metrics`` items, ``all`` expanded to every family (a one-line error for unknown names)."""
    items = [m for m in metrics]
    bad = [m for m in items if m != ALL and m not in FAMILIES and m not in SPECS]
    if bad or not items:
        near = [n for b in bad for n in near_names(b, choices())]
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise ConfigError(f"unknown metric(s) {', '.join(bad) or '(none)'}; {hint}use --metrics all or a comma list "
                          f"of {', '.join(choices()[1:])} (`splice metrics` lists them)")  # fmt: skip
    out: list[str] = []
    for m in items:
        out += list(FAMILIES) if m == ALL else [m]
    return tuple(dict.fromkeys(out))


def record_name(family: str, segmenter: str | None) -> str:
    """The record name of ``family`` for ``segmenter`` (``iou`` + ``panoptic`` -> ``panoptic``); a record name
    that is not a family is itself."""
    specs = [s for s in SPECS.values() if s.family == family]
    if not specs:
        if family in SPECS:
            return family
        raise ConfigError(f"unknown metric {family!r}; use --metrics {','.join(FAMILIES)}")
    if len(specs) == 1:
        return specs[0].name
    for s in specs:
        if s.segmenter == segmenter:
            return s.name
    raise ConfigError(f"metric {family} has no segmenter {segmenter!r}")


def records_of(metrics: Iterable[str]) -> list[str]:
    """Every record ``metrics`` (families or record names, as :func:`check_metrics` returns) may write."""
    wanted = set(metrics)
    return [s.name for s in SPECS.values() if s.family in wanted or s.name in wanted]


def _resolve(target: str) -> Callable:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def build(name: str, opts: Any, cache_root, shared: dict[str, Any] | None = None) -> "Scorer":
    """The live scorer of record ``name`` for :class:`eval.scoring.ScoreOptions` ``opts``; ``shared`` holds
    what the scorers of one run share (the measures' feature store)."""
    return _resolve(SPECS[name].factory)(opts, cache_root, name=name, shared={} if shared is None else shared)


def requirements(name: str, opts: Any) -> list:
    """What record ``name`` needs here (packages, models, weights), each with ``ready`` and a one-line ``how``;
    nothing is loaded or downloaded."""
    return _resolve(SPECS[name].needs)(opts, name=name)


# -- what `splice metrics` lists ---------------------------------------------------------------------------------
CACHE_KEY = (
    "settings_hash: the first 16 hex digits of sha256 over the protocol version, the metric, the model "
    "identity (weights sha256, or tag / random seed; library versions for the measures) and the settings"
)


def describe(name: str, opts: Any, *, key: bool = False, cache_root=None) -> dict[str, Any]:
    """What ``splice metrics`` lists about record ``name`` under :class:`eval.scoring.ScoreOptions` ``opts``:
    its declaration, options (measures), needs with readiness, and with ``key`` its cache key (which resolves
    the weights and may build a model: the ViT; never downloads when the weights are missing).

    A bad option the user gave is their :class:`~splice.core.errors.UserError`; any other failure of the
    readiness check becomes a problem of this metric."""
    spec = SPECS[name]
    out: dict[str, Any] = {
        "name": spec.name, "family": spec.family, "record": f"metrics/{spec.name}.json",
        "description": spec.description, "model": spec.model, "reference": spec.reference,
        "protocol_version": spec.protocol_version, "segmenter": spec.segmenter,
        "compares": [COMPARED_WITH[c] for c in spec.compares],
        "numbers": [{"key": n.key, "table": n.table, "label": n.label, "higher_is_better": n.higher_is_better,
                     "compares": n.compares} for n in spec.numbers],
        "cache_key": None, "cache_key_is": CACHE_KEY, "needs": [], "problems": [],
    }  # fmt: skip
    if spec.factory == MEASURE_FACTORY:
        from splice.core import options as _options

        from . import measures

        cls = measures.measure_class(name)
        out["preset"] = _options.resolve_preset(getattr(opts, "preset", "paper"), cls.presets)
        out["options"] = _options.describe(cls.Options, cls.presets, name)
        out["packages"] = list(cls.packages)
    try:
        reqs = requirements(name, opts)
    except UserError:
        raise
    except Exception as e:  # a broken optional library must not hide the other metrics
        reqs = []
        out["problems"].append(f"readiness check failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
    for r in reqs:
        out["needs"].append({"name": r.name, "ready": r.ready, "how": r.how, "path": r.path})
        if not r.ready:
            out["problems"].append(f"{r.name}: {r.how}")
    out["ready"] = not out["problems"]
    if key and out["ready"]:
        scorer = build(name, opts, cache_root if cache_root is not None else _cache_root(opts))
        out["cache_key"] = scorer.settings_hash()
        out["random_weights"] = bool(scorer.random)
    return out


def _cache_root(opts: Any):
    from .cache import resolve_cache_dir

    return resolve_cache_dir(getattr(opts, "cache_dir", None))


# -- --metric-args --------------------------------------------------------------------------------------------
def measure_option_names(name: str) -> list[str]:
    import dataclasses

    from . import measures

    return [f.name for f in dataclasses.fields(measures.measure_class(name).Options)]


def metric_overrides(items: Iterable[str], selected: Iterable[str]) -> dict[str, dict[str, str]]:
    """``--metric-args`` items (``k=v`` for every selected metric with option ``k``, ``metric.k=v`` for one) ->
    ``{metric: {option: text}}`` over the selected measures (typed later by their ``Options``)."""
    from splice.core import options

    items = list(items)
    if not items:
        return {}
    names = [n for n in selected if n in SPECS and SPECS[n].factory == MEASURE_FACTORY]
    known = {n: measure_option_names(n) for n in names}
    for item in items:  # name a metric where the shared parser would say "method"
        key = str(item).partition("=")[0].strip()
        head, dot, tail = key.rpartition(".")
        if dot and head not in SPECS:
            raise ConfigError(f"--metric-args {item!r}: {head!r} is not a metric; see `splice metrics`")
        if not dot and "=" in str(item) and not any(tail in opts for opts in known.values()):
            raise ConfigError(f"--metric-args {item!r}: no selected metric ({', '.join(names) or 'none'}) has an "
                              f"option {tail!r}; `splice metrics NAME` lists them")  # fmt: skip
    assignments = options.parse_assignments(items, list(SPECS), option="--metric-args")
    return options.assign(assignments, known, option="--metric-args")


class Scorer:
    """A metric's live half: model identity, settings, cache, and ``score`` (subclasses fill these in).

    Subclasses set ``spec``, ``cache`` (:class:`eval.cache.FeatureCache`) and ``model_calls``, and implement
    :meth:`identity`, :meth:`settings`, :meth:`model_fields` and :meth:`score`.
    """

    spec: MetricSpec
    model_calls: int = 0

    def identity(self) -> dict[str, Any]:
        """The model and weights (no file locations): what makes two models compute the same thing."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """Everything else that changes the numbers (thresholds, sizes)."""
        raise NotImplementedError

    def model_fields(self) -> dict[str, Any]:
        """Record fields that say which model and settings made the record."""
        raise NotImplementedError

    @property
    def random(self) -> bool:
        return bool(self.identity().get("random"))

    def settings_hash(self) -> str:
        """Same hash = same protocol, metric, model and settings: a stored record can be kept."""
        blob = json.dumps({"protocol": self.spec.protocol_version, "metric": self.spec.name, "model": self.identity(),
                           "settings": self.settings()}, sort_keys=True, default=str)  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def record_base(self) -> dict[str, Any]:
        """The model part of the metric record."""
        return {"metric": self.spec.name, "protocol_version": self.spec.protocol_version, **self.model_fields(),
                "random_weights": self.random, "settings_hash": self.settings_hash()}  # fmt: skip

    def cache_stats(self) -> dict[str, Any]:
        """Hits and misses of this metric's cache in this process."""
        return self.cache.stats()

    def score(self, images: dict[str, Image.Image], geometry: Any = None, where: str = "") -> dict[str, Any]:
        """The metric record of one job: ``images`` maps each role of ``spec.reads`` to its image as loaded
        (the structure image is aligned to the output here, with ``geometry``)."""
        raise NotImplementedError
