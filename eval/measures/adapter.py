"""A measure of this package as a scorer of the metric registry (:mod:`eval.scorers`).

:func:`eval.scorers.measure_spec` makes each measure's spec from its class; :func:`measure_scorer` (the
spec's factory) builds the measure with the options of ``splice score`` (``--preset``, ``--metric-args``,
``--device``, ``--allow-random-weights``) around the one :class:`~eval.measures.features.FeatureStore` of the
scoring run, and :class:`MeasureScorer` writes its record: the measure's ``record_base()`` (metric, protocol
version, what it compares, direction, weights, settings, library versions, ``settings_hash``) plus
``value`` and its parts, and for structure measures how the structure image was aligned.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from ..scorers import SPECS, Scorer
from . import create
from .base import STRUCTURE, Measure
from .features import FeatureStore

STORE = "measures_feature_store"
"""Key of the run's shared feature store in the ``shared`` dict of :func:`eval.scorers.build`."""


class _StoreStats:
    """``cache.stats()`` of one measure's model in the shared store."""

    def __init__(self, measure: Measure):
        self.measure = measure

    def stats(self) -> dict[str, int]:
        store, slug = self.measure.store, self.measure.model_slug
        return {"hits": store.model_hits[slug], "misses": store.calls[slug]}


class MeasureScorer(Scorer):
    """The scorer of one measure; ``model_calls`` counts images its model computed features of."""

    def __init__(self, measure: Measure):
        self.measure = measure
        self.spec = SPECS[measure.name]
        self.cache = _StoreStats(measure)

    @property
    def model_calls(self) -> int:  # type: ignore[override]
        return self.measure.model_calls

    def identity(self) -> dict[str, Any]:
        return self.measure.identity()

    def settings(self) -> dict[str, Any]:
        return self.measure.settings()

    def model_fields(self) -> dict[str, Any]:
        return {}

    @property
    def random(self) -> bool:
        return self.measure.random_weights

    def settings_hash(self) -> str:
        return self.measure.settings_hash()

    def record_base(self) -> dict[str, Any]:
        return self.measure.record_base()

    def score(self, images: dict[str, Image.Image], geometry: Any = None, where: str = "") -> dict[str, Any]:
        output = images["output"]
        extra: dict[str, Any] = {}
        if self.measure.compares == STRUCTURE:
            from ..align import align_structure

            reference, extra["aligned"] = align_structure(images[STRUCTURE], output.size, geometry, where=where)
        else:
            reference = images[self.measure.compares]
        return {**self.record_base(), **self.measure.score(output, reference), **extra}


def options_of(opts: Any, name: str) -> dict[str, Any]:
    return dict((getattr(opts, "metric_args", None) or {}).get(name, {}))


def build_measure(opts: Any, name: str, store: FeatureStore | None = None) -> Measure:
    """Measure ``name`` with the options of :class:`eval.scoring.ScoreOptions` ``opts``."""
    allow_random = bool(getattr(opts, "allow_random_weights", False))
    return create(name, options_of(opts, name), getattr(opts, "preset", "paper") or "paper",
                  device=getattr(opts, "device", "cpu"), allow_random=allow_random, store=store)  # fmt: skip


def measure_scorer(opts: Any, cache_root, *, name: str, shared: dict[str, Any]) -> MeasureScorer:
    """The factory of every measure's spec: one feature store per scoring run, under ``cache_root``."""
    store = shared.get(STORE)
    if store is None:
        store = shared[STORE] = FeatureStore(cache_root)
    return MeasureScorer(build_measure(opts, name, store))


def measure_requirements(opts: Any, *, name: str) -> list:
    """The packages and weights measure ``name`` needs with these options (nothing loaded)."""
    return build_measure(opts, name).requirements()
