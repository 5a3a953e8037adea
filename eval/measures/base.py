"""What every measure of the registry declares, and the one way it is computed.

A *measure* turns a job's output and one reference image into a number:

- ``compares = "structure"``: the reference is the structure image aligned to the output
  (:func:`eval.align.align_structure`; :func:`reference_image` does it), same size as the output;
- ``compares = "appearance"``: the reference is the appearance image, as given.

Each measure class declares ``name``, ``label``, ``compares``, ``higher_is_better``,
``protocol_version`` (bump when the computation changes), ``reference`` (the paper that defines
it), ``default_model`` (its model and weights in words), ``digits`` (decimals in tables),
``packages`` (the pip distributions that compute it: their versions enter the cache key),
``persist`` (whether its per-image features are small enough for the disk cache) and its
options as a dataclass with presets (typed by :mod:`splice.core.options`, like a method's).
:func:`eval.scorers.measure_spec` turns that declaration into the measure's entry of the one metric
registry (:data:`eval.scorers.SPECS`).

The computation is split where the defining library's own forward splits: :meth:`Measure._extract`
(one image, the library's feature extractor) and :meth:`Measure._compare` (two feature sets, the
library's formula). Features go through a :class:`~eval.measures.features.FeatureStore`, keyed
by the image's content hash and the model identity, so every image meets every model once. Each
measure's test checks that :meth:`Measure.score` equals one direct call of its library.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
from importlib import metadata
from typing import Any, ClassVar, Mapping

from PIL import Image

from splice.core import options as _options
from splice.core.errors import UserError
from splice.core.imageio import sha256_image
from splice.core.method import Requirement

from ..cache import cache_key, slug
from .features import FeatureStore
from .weights import WeightsSource, package_requirement

STRUCTURE = "structure"
APPEARANCE = "appearance"
COMPARES = {
    STRUCTURE: "output vs the structure image aligned to it",
    APPEARANCE: "output vs the appearance image",
}


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A measure without options."""


def limit_side(image: Image.Image, max_side: int | None) -> Image.Image:
    """``image`` shrunk (bicubic, antialiased by Pillow) so that its longer side is at most ``max_side``."""
    w, h = image.size
    if not max_side or max(w, h) <= max_side:
        return image
    scale = max_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.resize(size, resample=Image.Resampling.BICUBIC)


def versions(distributions: Mapping[str, str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in distributions:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


class Measure(abc.ABC):
    """One registered metric (module docstring). Cheap to construct: models load on first use.

    Args:
        options: the measure's options as ``{name: value}`` (strings are typed), e.g.
            ``{"weights": "/path/vgg16.pth", "max_side": 256}``.
        preset: ``paper`` (the defaults) or ``smoke`` (smaller inputs), as for methods.
        device: where the model runs.
        allow_random: a missing weights file falls back to random weights (warned, recorded).
        store: the shared feature store (one per scoring run; a private memory-only one by default).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    compares: ClassVar[str] = STRUCTURE
    higher_is_better: ClassVar[bool] = False
    protocol_version: ClassVar[str] = "1"
    reference: ClassVar[str] = ""
    #: the default model and weights, in words (``splice metrics``)
    default_model: ClassVar[str] = ""
    #: decimals when tables print the value (None: 3 significant digits)
    digits: ClassVar[int | None] = 3
    #: pip distribution -> import name, of the libraries that compute the measure
    packages: ClassVar[Mapping[str, str]] = {}
    #: per-image features are small (embeddings, Gram matrices): keep them on disk too
    persist: ClassVar[bool] = False
    Options: ClassVar[type] = NoOptions
    presets: ClassVar[Mapping[str, Any]] = {"paper": {}, "smoke": {}}

    def __init__(self, options: Mapping[str, Any] | None = None, preset: str = "paper", *, device: str = "cpu",
                 allow_random: bool = False, store: FeatureStore | None = None):  # fmt: skip
        self.opts = _options.resolve(self.Options, self.presets, preset, options, self.name)
        self.preset = _options.resolve_preset(preset, self.presets)
        self.device = device
        self.allow_random = allow_random
        self.store = store if store is not None else FeatureStore()
        self.sources: dict[str, WeightsSource] = {}  # role -> the weights used (resolved_sources)
        self._resolved: dict[str, WeightsSource] | None = None
        self._loaded = False
        self._identity: dict[str, Any] | None = None

    # -- what it needs -------------------------------------------------------------------------------------------
    def weight_sources(self) -> dict[str, WeightsSource]:
        """Role -> where its weights are (no model built, no network). Measures without models: {}."""
        return {}

    def requirements(self) -> list[Requirement]:
        """Packages and weights, each with readiness (like a method's requirements)."""
        reqs = [package_requirement(dist, module) for dist, module in self.packages.items()]
        if all(r.ready for r in reqs):
            try:
                reqs += [s.requirement(self.allow_random) for s in self.weight_sources().values()]
            except UserError as e:  # a bad option: not ready, and say why
                reqs.append(Requirement(name="weights", how=str(e), ready=False))
        return reqs

    def describe(self) -> dict[str, Any]:
        """What ``splice metrics`` lists: declaration, options, needs and readiness."""
        reqs = self.requirements()
        return {
            "name": self.name,
            "label": self.label,
            "compares": self.compares,
            "higher_is_better": self.higher_is_better,
            "protocol_version": self.protocol_version,
            "reference": self.reference,
            "default_model": self.default_model,
            "packages": list(self.packages),
            "options": _options.to_dict(self.opts),
            "preset": self.preset,
            "needs": [dataclasses.asdict(r) for r in reqs],
            "ready": all(r.ready for r in reqs),
        }

    # -- identity ------------------------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Options that change a value, weights excepted (those enter through :meth:`identity`)."""
        return {k: v for k, v in _options.to_dict(self.opts).items() if k not in ("weights", "alpha_beta")}

    def check_packages(self) -> None:
        """A one-line UserError when a library the measure needs is not installed."""
        for dist, module in self.packages.items():
            need = package_requirement(dist, module)
            if not need.ready:
                raise UserError(f"metric {self.name}: {need.name} is missing; {need.how}")

    def resolved_sources(self) -> dict[str, WeightsSource]:
        """Role -> the weights this measure uses: each of :meth:`weight_sources` present (fetched where its
        library can), or a warned random fallback with ``allow_random``; resolved once, without building a
        model, so that :meth:`identity` (hence the cache key) is known before any model is built. ``_load``
        builds from these."""
        if self._resolved is None:
            self.check_packages()
            self._resolved = {role: s.require(self.allow_random) for role, s in self.weight_sources().items()}
            self.sources = dict(self._resolved)
        return self._resolved

    def identity(self) -> dict[str, Any]:
        """Everything a value depends on besides the two images (weights hashed, no model built)."""
        if self._identity is None:
            sources = self.resolved_sources()
            self._identity = {
                "measure": self.name,
                "protocol_version": self.protocol_version,
                "weights": {role: s.key() for role, s in sorted(sources.items())},
                "settings": self.settings(),
                "versions": versions(self.packages),
            }
        return self._identity

    def cache_key(self) -> str:
        """sha256 of :meth:`identity`: equal keys, equal values for the same two images."""
        blob = json.dumps(self.identity(), sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def settings_hash(self) -> str:
        """The first 16 hex digits of :meth:`cache_key` (what metric records carry, like ``vit.json``)."""
        return self.cache_key()[:16]

    @property
    def random_weights(self) -> bool:
        return any(s.random for s in self.resolved_sources().values())

    def record_base(self) -> dict[str, Any]:
        """The fields every record of this measure starts with."""
        ident = self.identity()
        return {
            "metric": self.name,
            "protocol_version": self.protocol_version,
            "compares": self.compares,
            "higher_is_better": self.higher_is_better,
            "weights": {role: s.identity() for role, s in sorted(self.resolved_sources().items())},
            "random_weights": self.random_weights,
            "settings": ident["settings"],
            "versions": ident["versions"],
            "settings_hash": self.settings_hash(),
        }

    # -- computing -----------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Build the model once (a one-line WeightsError when its weights are missing)."""
        if not self._loaded:
            self.resolved_sources()
            self._load()
            self._loaded = True

    def _load(self) -> None:
        """Subclasses: build the model from :meth:`resolved_sources`."""

    @property
    def model_slug(self) -> str:
        """The folder of this measure's features in the cache (readable; the key carries the identity)."""
        ident = self.identity()
        tag = hashlib.sha256(json.dumps(ident["weights"], sort_keys=True, default=str).encode()).hexdigest()[:10]
        return slug(f"{self.name}-{tag}")

    def feature_identity(self) -> dict[str, Any]:
        """What an image's features depend on besides its pixels."""
        ident = self.identity()
        return {"extractor": self.name, "protocol_version": self.protocol_version, "weights": ident["weights"],
                "versions": ident["versions"]}  # fmt: skip

    def features(self, image: Image.Image) -> Any:
        """The features of ``image``, computed once per image and model (see :mod:`eval.measures.features`)."""
        self.load()
        key = cache_key(sha256_image(image), self.feature_identity(), self.settings())
        return self.store.get(self.model_slug, key, lambda: self._extract(image), persist=self.persist)

    @property
    def model_calls(self) -> int:
        """Feature computations this measure's model made in this store."""
        return self.store.calls[self.model_slug] if self._loaded else 0

    def score(self, output: Image.Image, reference: Image.Image) -> dict[str, float]:
        """``{"value": the measure, ...parts}`` for the output and its reference (module docstring)."""
        if self.compares == STRUCTURE and output.size != reference.size:
            raise ValueError(f"{self.name} compares same-size images: output {output.size} vs reference "
                             f"{reference.size}; align the structure image to the output first")  # fmt: skip
        return self._compare(self.features(output), self.features(reference))

    @abc.abstractmethod
    def _extract(self, image: Image.Image) -> Any:
        """The library's per-image part (a dict of numpy arrays when :attr:`persist`)."""

    @abc.abstractmethod
    def _compare(self, out: Any, ref: Any) -> dict[str, float]:
        """The library's formula on two feature sets: ``{"value": ..., optional parts}``."""


def reference_image(measure: Measure | type[Measure], structure: Image.Image, appearance: Image.Image,
                    output: Image.Image, geometry: Any = None, where: str = "") -> Image.Image:  # fmt: skip
    """The image ``measure`` compares the output with: the aligned structure image or the appearance image."""
    if measure.compares == APPEARANCE:
        return appearance
    from ..align import align_structure

    return align_structure(structure, output.size, geometry, where=where)[0]
