"""The one interface every method in the suite implements (Splice included).

A method takes a :class:`Pair` and :class:`RunSettings` and returns a
:class:`MethodResult`: the output image, the :class:`~splice.core.geometry.Geometry` from
the structure image to the output, and a ``info`` dict of what it did (weights used,
final losses, ...). The harness (:func:`run_method`) adds seconds, peak memory, seed,
the resolved configuration and its hash, so methods do not repeat that bookkeeping.

A method declares its options once, as a dataclass (``Options``) with named ``presets``;
:mod:`splice.core.options` types what the user gives (``--method-args``) against it, for every
command. Adding a method: subclass :class:`Method` in one module and add one line to
``splice.core.registry.METHODS`` (``"name": "package.module:Class"``).

A method may also declare which data sets it applies to and how (``datasets``): per data set,
option overrides for that data set's jobs (e.g. Swapping Autoencoder's AFHQ model for AFHQ and its
mountain model for Mountains), or :class:`NotApplicable` with the reason (Swapping Autoencoder
has no model for Wild-Pairs). The runner records a job of a data set the method does not apply to
as ``not-applicable`` instead of running it.
"""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from PIL import Image

from splice.core import options as _options
from splice.core.errors import UserError
from splice.core.geometry import Geometry


@dataclass(frozen=True)
class Pair:
    """One structure/appearance pair of a data set."""

    pair_id: str
    structure: Path
    appearance: Path
    dataset: str = "adhoc"

    def to_dict(self) -> dict[str, Any]:
        return {"pair_id": self.pair_id, "dataset": self.dataset, "structure": str(self.structure),
                "appearance": str(self.appearance)}  # fmt: skip


@dataclass(frozen=True)
class NotApplicable:
    """A method does not apply to a data set (``Method.datasets``), and why (one line)."""

    reason: str


class NotApplicableError(UserError):
    """A method was asked to run on a data set it declares it does not apply to."""


@dataclass
class RunSettings:
    """What the harness asks of a method for one job.

    Attributes:
        preset: named settings; every method understands at least ``paper`` (its published
            defaults) and ``smoke`` (seconds on a CPU, for tests).
        seed: the random seed; every method honours and records it.
        device: ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
        weights: method-specific weights spec (a tag, a local file, or ``random``);
            ``None`` means the method's default.
        allow_random_weights: when the default weights are unavailable, fall back to
            ``random`` instead of failing (smoke runs only; marked in every record).
        max_side: cap on the structure image's shorter side in pixels (the OOM ladder
            lowers it); ``None`` = the method's native resolution.
        options: overrides of the method's options (``--method-args k=v``): text or typed values,
            typed against the method's ``Options`` by :meth:`Method.options`.
        workdir: a folder inside the run store where the method may keep checkpoints and
            scratch files (resume); ``None`` = no persistence.
        dataset: the data set the job belongs to (``None`` for an ad-hoc pair); selects the method's
            per-data-set options (``Method.datasets``).
    """

    preset: str = "paper"
    seed: int = 0
    device: str = "cpu"
    weights: str | None = None
    allow_random_weights: bool = False
    max_side: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None
    progress: bool = False
    dataset: str | None = None


@dataclass
class MethodResult:
    image: Image.Image
    geometry: Geometry
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Requirement:
    """Something a method needs before it can run (weights, an external checkout)."""

    name: str
    how: str  # one line: what to download and where to put it
    ready: bool
    path: str | None = None


class Method(abc.ABC):
    """Base class of all methods.

    Class attributes describe the method for ``splice methods`` and the README table.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda", "mps")
    #: the method lowers its resolution when ``settings.max_side`` is set (OOM ladder)
    supports_max_side: ClassVar[bool] = False
    #: run by ``splice bench --methods all`` (methods that need a per-user setup, such as
    #: ``external`` or ``precomputed``, say False and are named explicitly)
    in_benchmark: ClassVar[bool] = True
    #: run by ``--methods smoke`` / ``make benchmark-smoke`` (CPU, seconds, no downloads)
    in_smoke: ClassVar[bool] = False
    #: bump when the computation changes: it is part of the configuration, so old results are not reused
    version: ClassVar[str] = "1"
    #: the options dataclass (field defaults = the ``paper`` preset) and the presets' changes to it
    Options: ClassVar[type] = _options.NoOptions
    presets: ClassVar[Mapping[str, Any]] = {"paper": {}, "smoke": {}}
    #: data set name -> option overrides for its jobs (after the preset, before ``--method-args``) or
    #: :class:`NotApplicable`; ``"*"`` stands for every data set not named. Without an entry (and for
    #: ad-hoc pairs) the options are the preset's.
    datasets: ClassVar[Mapping[str, Mapping[str, Any] | NotApplicable]] = {}

    def requirements(self, settings: RunSettings) -> list[Requirement]:
        """What the method needs on this machine, and whether each need is met."""
        return []

    # -- options ----------------------------------------------------------------------------------
    def option_type(self, overrides: Mapping[str, Any] | None = None) -> type:
        """The options dataclass (a method whose options depend on a file, like ``external``, overrides this)."""
        return self.Options

    def preset_table(self, overrides: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        return self.presets

    def option_names(self, overrides: Mapping[str, Any] | None = None) -> list[str]:
        return list(_options.option_types(self.option_type(overrides)))

    def resolved_preset(self, settings: RunSettings) -> str:
        """The preset of this method that ``settings.preset`` runs (its own, or ``paper``)."""
        return _options.resolve_preset(settings.preset, self.preset_table(settings.options))

    # -- data sets --------------------------------------------------------------------------------
    def dataset_table(self, overrides: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """``datasets`` (a method whose declaration lives in a file, like ``external``, overrides this)."""
        return self.datasets

    def for_dataset(self, dataset: str | None, overrides: Mapping[str, Any] | None = None
                    ) -> Mapping[str, Any] | NotApplicable:  # fmt: skip
        """What this method declares for ``dataset``: option overrides (``{}`` when nothing) or NotApplicable."""
        if dataset is None:
            return {}
        table = self.dataset_table(overrides)
        return table.get(dataset, table.get("*", {}))

    def not_applicable(self, dataset: str | None, overrides: Mapping[str, Any] | None = None) -> str | None:
        """Why this method does not apply to ``dataset``, or None when it does."""
        entry = self.for_dataset(dataset, overrides)
        return entry.reason if isinstance(entry, NotApplicable) else None

    def dataset_overrides(self, settings: RunSettings) -> dict[str, Any]:
        """The overrides for ``settings.dataset`` followed by the user's (``--method-args`` win).

        Raises:
            NotApplicableError: the method does not apply to that data set.
        """
        entry = self.for_dataset(settings.dataset, settings.options)
        if isinstance(entry, NotApplicable):
            raise NotApplicableError(f"{self.name} does not apply to data set {settings.dataset}: {entry.reason}")
        return {**entry, **(settings.options or {})}

    def options(self, settings: RunSettings) -> Any:
        """Typed options: defaults < preset < data set (``datasets``) < ``settings.options`` (one-line errors)."""
        return _options.resolve(self.option_type(settings.options), self.preset_table(settings.options),
                                settings.preset, self.dataset_overrides(settings), self.name)  # fmt: skip

    def typed_overrides(self, settings: RunSettings) -> dict[str, Any]:
        """``settings.options`` typed (what the user asked for, as the record keeps it)."""
        return _options.typed(self.option_type(settings.options), settings.options, self.name)

    def describe_options(self) -> list[dict[str, Any]]:
        return _options.describe(self.option_type(), self.preset_table(), self.name)

    def config(self, settings: RunSettings) -> dict[str, Any]:
        """The resolved configuration for ``settings``: everything that changes the output except the
        seed (the options, the method's version, and ``max_side`` when the method honours it). Its hash
        names the job in the run store."""
        cfg = {"method": self.name, "version": self.version, **_options.to_dict(self.options(settings))}
        if self.supports_max_side:
            cfg["max_side"] = settings.max_side
        return cfg

    @abc.abstractmethod
    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:
        """Produce the output for ``pair``.

        Contract:
            - read the images with :func:`splice.core.imageio.load_rgb` (so odd modes, EXIF and
              bad files behave the same everywhere);
            - be deterministic for a given ``settings.seed`` on a given device;
            - return the output as an 8-bit RGB image with the geometry from the
              structure image (as loaded) to that output;
            - write nothing outside ``settings.workdir``;
            - raise :class:`splice.core.errors.UserError` (one line) for missing weights or bad input.
        """

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "paper": self.paper, "summary": self.summary, "devices": list(self.devices)}


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a configuration dict (sorted JSON, sha256, 12 hex digits)."""
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
