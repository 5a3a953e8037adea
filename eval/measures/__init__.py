"""The registry of the field's image metrics, each computed by the library that defines it.

| name | compares the output with | better | library |
|---|---|---|---|
| ``lpips_vgg``, ``lpips_alex`` | the aligned structure image | lower | ``lpips`` |
| ``dists`` | the aligned structure image | lower | ``piq`` (+ alpha/beta of ``dists-pytorch``) |
| ``clip`` | the appearance image | higher | ``open_clip_torch`` |
| ``dino``, ``dinov2`` | the appearance image | higher | ``timm`` |
| ``gram`` | the appearance image | lower | torchvision VGG19 + Gatys' formula |
| ``lab_emd`` | the appearance image | lower | ``scikit-image`` + ``scipy`` |

Names resolve lazily (``"module:Class"``, like methods in :mod:`splice.core.registry`): listing
the registry imports no model library. A measure is created with its options and preset, the
device, ``allow_random`` and a shared :class:`~eval.measures.features.FeatureStore`::

    store = FeatureStore(resolve_cache_dir(None))
    ms = create_all(["lpips_vgg", "clip"], store=store, allow_random=True)
    values = score_job(ms, structure, appearance, output, geometry)   # {"lpips_vgg": {"value": ...}, ...}

See :mod:`eval.measures.base` for what every measure declares.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from PIL import Image

from splice.core.registry import Registry

from .base import APPEARANCE, COMPARES, STRUCTURE, Measure, reference_image
from .features import FeatureStore

MEASURES: dict[str, str] = {
    "lpips_vgg": "eval.measures.perceptual:LpipsVGG",
    "lpips_alex": "eval.measures.perceptual:LpipsAlex",
    "dists": "eval.measures.perceptual:Dists",
    "clip": "eval.measures.embedding:ClipCosine",
    "dino": "eval.measures.embedding:DinoCosine",
    "dinov2": "eval.measures.embedding:Dinov2Cosine",
    "gram": "eval.measures.style:GramDistance",
    "lab_emd": "eval.measures.colour:LabEMD",
}

registry = Registry(MEASURES, Measure, "metric")


def names() -> list[str]:
    return registry.names()


def measure_class(name: str) -> type[Measure]:
    """The class registered as ``name`` (a one-line "did you mean" ConfigError otherwise)."""
    return registry.get_class(name)


def create(name: str, options: Mapping[str, Any] | None = None, preset: str = "paper", **kwargs: Any) -> Measure:
    """A measure instance; ``kwargs``: ``device``, ``allow_random``, ``store`` (see :class:`Measure`)."""
    return measure_class(name)(options, preset, **kwargs)


def create_all(wanted: Iterable[str] | None = None, options: Mapping[str, Mapping[str, Any]] | None = None,
               preset: str = "paper", *, device: str = "cpu", allow_random: bool = False,
               store: FeatureStore | None = None) -> list[Measure]:  # fmt: skip
    """Measures ``wanted`` (default: all) sharing one feature store; ``options``: per measure name."""
    store = store if store is not None else FeatureStore()
    return [create(n, (options or {}).get(n), preset, device=device, allow_random=allow_random, store=store)
            for n in (wanted or names())]  # fmt: skip


def describe_all(wanted: Iterable[str] | None = None, options: Mapping[str, Mapping[str, Any]] | None = None,
                 preset: str = "paper", allow_random: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """What ``splice metrics`` lists (declaration, options, needs, readiness); loads no model."""
    return [m.describe() for m in create_all(wanted, options, preset, allow_random=allow_random)]


def score_job(measures: Iterable[Measure], structure: Image.Image, appearance: Image.Image, output: Image.Image,
              geometry: Any = None, where: str = "") -> dict[str, dict[str, float]]:  # fmt: skip
    """Every measure's values for one job: the structure image is aligned to the output once."""
    aligned = None
    out: dict[str, dict[str, float]] = {}
    for m in measures:
        if m.compares == STRUCTURE:
            if aligned is None:
                aligned = reference_image(m, structure, appearance, output, geometry, where)
            out[m.name] = m.score(output, aligned)
        else:
            out[m.name] = m.score(output, appearance)
    return out


__all__ = ["APPEARANCE", "COMPARES", "STRUCTURE", "FeatureStore", "MEASURES", "Measure", "create", "create_all",
           "describe_all", "measure_class", "names", "reference_image", "registry", "score_job"]
