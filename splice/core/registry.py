"""Name -> method class, resolved lazily (importing a baseline never happens until used).

Adding a method touches two files: its own module and one line in :data:`METHODS`.
"""

from __future__ import annotations

import importlib
from typing import Iterable

from splice.core.errors import ConfigError, near_names
from splice.core.method import Method

METHODS: dict[str, str] = {
    "splice": "splice.model.method:SpliceMethod",
    "identity": "baselines.identity:IdentityMethod",
    # baselines register here, one line each: "name": "baselines.module:Class"
    "strotss": "baselines.strotss:Strotss",
    "wct2": "baselines.wct2:WCT2",
    "reinhard": "baselines.colour:Reinhard",
    "histogram": "baselines.colour:Histogram",
    "external": "baselines.external:ExternalMethod",
    "swapping-autoencoder": "baselines.external:SwappingAutoencoder",
    "cross-image-attention": "baselines.external:CrossImageAttention",
    "eye-for-an-eye": "baselines.external:EyeForAnEye",
    "precomputed": "baselines.precomputed:PrecomputedMethod",
    "structural-analogy": "baselines.structural_analogy:StructuralAnalogy",
    "sincut": "baselines.sincut:SinCUT",
}


class Registry:
    """A mapping of names to lazily imported classes that must subclass ``base``."""

    def __init__(self, entries: dict[str, str], base: type, kind: str):
        self._entries = dict(entries)
        self._base = base
        self._kind = kind

    def names(self) -> list[str]:
        return list(self._entries)

    def target(self, name: str) -> str:
        """The lazy ``"module:Class"`` of ``name`` (what a fresh worker process needs to find it)."""
        if name not in self._entries:
            self.get_class(name)  # the "did you mean" error
        return self._entries[name]

    def register(self, name: str, target: str) -> None:
        if name in self._entries and self._entries[name] != target:
            raise ValueError(f"{self._kind} {name!r} is already registered as {self._entries[name]}")
        self._entries[name] = target

    def get_class(self, name: str) -> type:
        if name not in self._entries:
            near = near_names(name, self._entries, n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(self._entries)}"
            raise ConfigError(f"unknown {self._kind} {name!r}{hint}")
        module_name, _, attr = self._entries[name].partition(":")
        cls = getattr(importlib.import_module(module_name), attr)
        if not (isinstance(cls, type) and issubclass(cls, self._base)):
            raise TypeError(f"{self._entries[name]} is not a {self._base.__name__}")
        return cls

    def create(self, name: str, **kwargs) -> Method:
        return self.get_class(name)(**kwargs)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterable[str]:
        return iter(self._entries)


methods = Registry(METHODS, Method, "method")


def get_method(name: str) -> Method:
    return methods.create(name)
