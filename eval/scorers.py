"""The metric registry: what every metric record declares, and the live scorer behind it.

``splice score`` (:mod:`eval.scoring`) knows metrics only through this module. Each metric declares once,
in a :class:`MetricSpec`: its name (the record ``metrics/<name>.json``), which images it compares, the
numbers it writes and their direction, and the metric family ``--metrics`` selects it by. Its scorer (a
:class:`Scorer`, built by the factory named in :data:`FACTORIES`) knows the model and weights, the settings,
the protocol version (:data:`eval.PROTOCOL_VERSION`) and from them the ``settings_hash`` that decides whether a
stored record is still valid, and it keeps a content-hash cache (:mod:`eval.cache`) of per-image model output.

Registered here (PROTOCOL.md, version 2; the Splice paper, Tumanyan et al. CVPR 2022):

==========  ======  ==========================  ==========================================================
record      family  compares                    numbers (higher is better unless marked)
==========  ======  ==========================  ==========================================================
iou         iou     aligned structure, output   iou (class-agnostic union IoU), matched_iou; Mask R-CNN
panoptic    iou     aligned structure, output   iou (layout mIoU over structure classes), pixel_accuracy
vit         vit     aligned structure,          structure_distance (lower), appearance_distance (lower),
                    appearance, output          appearance_cosine
==========  ======  ==========================  ==========================================================

The ``iou`` family has one record per segmenter (``--segmenter maskrcnn|panoptic``, default per data set:
:data:`eval.segmenter.DEFAULT_BY_DATASET`). A new metric adds a spec, a factory and its module; the scoring
loop, the image hashes, the rescoring rules and the summary need no change.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import Image

from splice.core.errors import ConfigError

from . import PROTOCOL_VERSION


@dataclass(frozen=True)
class MetricSpec:
    """What a metric record is (module docstring)."""

    name: str
    family: str
    reads: tuple[str, ...]
    values: dict[str, bool] = field(default_factory=dict)  # number -> higher is better
    primary: str = ""
    segmenter: str | None = None
    excludable: bool = False
    description: str = ""


SPECS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("iou", "iou", ("structure", "output"), {"iou": True, "matched_iou": True}, "iou",
                   segmenter="maskrcnn", excludable=True,
                   description="layout IoU of COCO Mask R-CNN object masks (class-agnostic union)"),
        MetricSpec("panoptic", "iou", ("structure", "output"), {"iou": True, "pixel_accuracy": True}, "iou",
                   segmenter="panoptic", excludable=True,
                   description="layout mIoU of COCO-panoptic label maps (objects merged, stuff by class)"),
        MetricSpec("vit", "vit", ("structure", "appearance", "output"),
                   {"structure_distance": False, "appearance_distance": False, "appearance_cosine": True},
                   "structure_distance", description="DINO-ViT self-similarity and CLS distances (Splice's losses)"),
    )
}  # fmt: skip

FAMILIES = tuple(dict.fromkeys(s.family for s in SPECS.values()))

FACTORIES: dict[str, str] = {
    "iou": "eval.layout:detector_scorer",
    "panoptic": "eval.layout:segmenter_scorer",
    "vit": "eval.vit_metrics:vit_scorer",
}
"""record name -> ``"module:function"``; the function takes (ScoreOptions, cache root) and returns a Scorer."""


def record_name(family: str, segmenter: str | None) -> str:
    """The record name of ``family`` for ``segmenter`` (``iou`` + ``panoptic`` -> ``panoptic``)."""
    specs = [s for s in SPECS.values() if s.family == family]
    if not specs:
        raise ConfigError(f"unknown metric {family!r}; use --metrics {','.join(FAMILIES)}")
    if len(specs) == 1:
        return specs[0].name
    for s in specs:
        if s.segmenter == segmenter:
            return s.name
    raise ConfigError(f"metric {family} has no segmenter {segmenter!r}")


def build(name: str, opts: Any, cache_root) -> "Scorer":
    module, func = FACTORIES[name].split(":")
    factory: Callable[[Any, Any], Scorer] = getattr(importlib.import_module(module), func)
    return factory(opts, cache_root)


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
        blob = json.dumps({"protocol": PROTOCOL_VERSION, "metric": self.spec.name, "model": self.identity(),
                           "settings": self.settings()}, sort_keys=True, default=str)  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def record_base(self) -> dict[str, Any]:
        """The model part of the metric record."""
        return {"metric": self.spec.name, "protocol_version": PROTOCOL_VERSION, **self.model_fields(),
                "random_weights": self.random, "settings_hash": self.settings_hash()}  # fmt: skip

    def score(self, images: dict[str, Image.Image], geometry: Any = None, where: str = "") -> dict[str, Any]:
        """The metric record of one job: ``images`` maps each role of ``spec.reads`` to its image as loaded
        (the structure image is aligned to the output here, with ``geometry``)."""
        raise NotImplementedError
