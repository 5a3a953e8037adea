"""Whether each registered method can run here: its module imports, its needs are met, a device fits.

A method is READY when its module imports, every requirement it declares
(:meth:`splice.core.method.Method.requirements`: weights, a checkout of an official repository,
a folder) is met, and at least one device it supports is available here. ``splice methods``
prints these; nothing here runs a method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from splice.core.devices import available_devices
from splice.core.errors import UserError
from splice.core.method import RunSettings
from splice.core.registry import methods as registry


@dataclass
class MethodStatus:
    name: str
    target: str
    paper: str = ""
    summary: str = ""
    devices: list[str] = field(default_factory=list)
    devices_here: list[str] = field(default_factory=list)
    in_benchmark: bool = False
    in_smoke: bool = False
    preset: str = "paper"
    preset_resolved: str | None = None
    needs: list[dict[str, Any]] = field(default_factory=list)
    options: list[dict[str, Any]] | None = None
    ready: bool = False
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if d["options"] is None:
            d.pop("options")
        return d


def _brief(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"


def method_status(name: str, settings: RunSettings, here: list[str], with_options: bool = False) -> MethodStatus:
    """Inspect one registered method without running it; import or inspection errors become problems.

    Option and preset errors (:class:`~splice.core.errors.ConfigError`) are the user's and propagate."""
    st = MethodStatus(name=name, target=registry.target(name), preset=settings.preset)
    try:
        method = registry.create(name)
    except UserError as e:
        st.problems.append(str(e))
        return st
    except Exception as e:  # a missing or broken module must not hide the other methods
        st.problems.append(f"cannot load {st.target}: {_brief(e)}")
        return st
    st.paper, st.summary = method.paper, method.summary
    st.devices = list(method.devices)
    st.devices_here = [d for d in method.devices if d in here]
    st.in_benchmark, st.in_smoke = bool(method.in_benchmark), bool(method.in_smoke)
    st.preset_resolved = method.resolved_preset(settings)
    if settings.options:
        method.options(settings)  # a bad option the user gave is their error, not the method's readiness
    if with_options:
        st.options = method.describe_options()
    try:
        reqs = method.requirements(settings)
    except UserError as e:
        st.problems.append(str(e))
        reqs = []
    except Exception as e:
        st.problems.append(f"requirements check failed: {_brief(e)}")
        reqs = []
    for r in reqs:
        st.needs.append({"name": r.name, "ready": r.ready, "how": r.how, "path": r.path})
        if not r.ready:
            st.problems.append(f"{r.name}: {r.how}")
    if not st.devices_here:
        st.problems.append(f"needs {' or '.join(st.devices)}; this machine has {', '.join(here)}")
    st.ready = not st.problems
    return st


def all_statuses(names: list[str] | None = None, settings: RunSettings | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None, with_options: bool = False
                 ) -> list[MethodStatus]:  # fmt: skip
    """The status of ``names`` (default: every registered method); ``overrides``: options per method."""
    settings = settings or RunSettings()
    here = available_devices()
    wanted = names or registry.names()
    out = []
    for name in wanted:
        registry.target(name)  # an unknown name is the "did you mean" ConfigError
        own = RunSettings(preset=settings.preset, weights=settings.weights,
                          options=dict((overrides or {}).get(name, {})),
                          allow_random_weights=settings.allow_random_weights)  # fmt: skip
        out.append(method_status(name, own, here, with_options))
    return out
