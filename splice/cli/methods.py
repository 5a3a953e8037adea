"""``splice methods``: the registered methods, what each needs, and whether it is ready on this machine.

A method is READY when its module imports, every requirement it declares
(:meth:`splice.core.method.Method.requirements`: weights, a checkout of an official repository, a
folder) is met, and at least one device it supports is available here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click

from splice.core.errors import UserError
from splice.core.method import RunSettings


def available_devices() -> list[str]:
    """Device types usable here (``cpu`` always; ``cuda``/``mps`` when torch sees them)."""
    out = ["cpu"]
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return out
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


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
    needs: list[dict[str, Any]] = field(default_factory=list)
    ready: bool = False
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def method_status(name: str, target: str, settings: RunSettings, here: list[str]) -> MethodStatus:
    """Inspect one registered method without running it; import or inspection errors become problems."""
    from splice.core.registry import methods

    st = MethodStatus(name=name, target=target)
    try:
        cls = methods.get_class(name)
        method = cls()
    except UserError as e:
        st.problems.append(str(e))
        return st
    except Exception as e:  # a missing or broken module must not hide the other methods
        st.problems.append(f"cannot load {target}: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
        return st
    st.paper, st.summary = method.paper, method.summary
    st.devices = list(method.devices)
    st.devices_here = [d for d in method.devices if d in here]
    st.in_benchmark, st.in_smoke = bool(method.in_benchmark), bool(method.in_smoke)
    try:
        reqs = method.requirements(settings)
    except UserError as e:
        st.problems.append(str(e))
        reqs = []
    except Exception as e:
        st.problems.append(f"requirements check failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
        reqs = []
    for r in reqs:
        st.needs.append({"name": r.name, "ready": r.ready, "how": r.how, "path": r.path})
        if not r.ready:
            st.problems.append(f"{r.name}: {r.how}")
    if not st.devices_here:
        st.problems.append(f"needs {' or '.join(st.devices)}; this machine has {', '.join(here)}")
    st.ready = not st.problems
    return st


def all_statuses(names: list[str] | None = None, settings: RunSettings | None = None) -> list[MethodStatus]:
    from splice.core.registry import METHODS, methods

    settings = settings or RunSettings()
    here = available_devices()
    wanted = names or list(methods.names())
    out = []
    for name in wanted:
        if name not in methods:
            methods.get_class(name)  # raises the "did you mean" ConfigError
        targets = getattr(methods, "_entries", METHODS)  # includes methods registered at run time
        out.append(method_status(name, targets.get(name, ""), settings, here))
    return out


def _parse_method_args(pairs: tuple[str, ...]) -> dict[str, str]:
    from splice.core.errors import ConfigError

    out = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--method-args expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


@click.command("methods")
@click.argument("names", nargs=-1)
@click.option("--method-args", "method_args", multiple=True, metavar="K=V",
              help="Options passed to the methods' readiness checks (e.g. repo=DIR, config=FILE, root=DIR).")
@click.option("--weights", default=None, help="Weights spec to check instead of each method's default.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list on stdout instead of the table.")
@click.option("-a", "--all-details", is_flag=True, help="Also print each unmet need's fix under its method.")
def command(names, method_args, weights, as_json, all_details):
    """List registered methods: paper, needs, devices, and READY / NOT READY here.

    \b
    Examples:
      splice methods
      splice methods --json
      splice methods cross-image-attention --method-args repo=~/src/cross-image-attention -a
      splice methods external --method-args config=my_method.yaml -a
    """
    settings = RunSettings(options=_parse_method_args(method_args), weights=weights)
    statuses = all_statuses(list(names) or None, settings)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in statuses], indent=1))
        return
    rows = [("METHOD", "STATUS", "DEVICES", "SETS", "NEEDS", "PAPER")]
    for s in statuses:
        devices = ",".join(d if d in s.devices_here else f"({d})" for d in s.devices) or "-"
        sets = ",".join(t for t, on in (("all", s.in_benchmark), ("smoke", s.in_smoke)) if on) or "-"
        needs = ", ".join(n["name"] + ("" if n["ready"] else " (missing)") for n in s.needs) or "nothing"
        rows.append((s.name, "READY" if s.ready else "NOT READY", devices, sets, _clip(needs, 48), s.paper or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        line = "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + _clip(r[-1], 70)
        click.echo(line.rstrip())
    if all_details:
        for s in statuses:
            for p in s.problems:
                click.echo(f"  {s.name}: {p}")
    n_ready = sum(s.ready for s in statuses)
    click.echo(f"{n_ready}/{len(statuses)} ready; devices here: {', '.join(available_devices())}"
               + ("" if all_details else "; -a shows how to fix the others"), err=True)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
