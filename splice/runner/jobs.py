"""Benchmark jobs: (method, data set, pair, seed, config hash), planned from manifests.

A job's identity is a :class:`~splice.core.store.JobKey`; its configuration hash comes from the
method's own :meth:`~splice.core.method.Method.config` for the requested settings, so changing a
preset, the weights or a ``--method-args`` value makes new jobs in new folders instead of
mixing results (the Splice paper's outputs were kept at uneven iteration counts; here every
result says exactly what produced it).

Everything a worker needs to run a job travels in :class:`Job` (JSON-able, so it crosses
process and SLURM boundaries), including the method's registry target, so that methods
registered at run time (tests, plug-ins) also resolve in fresh worker processes.

A method's configuration may depend on the data set (``Method.datasets``: Swapping Autoencoder's
AFHQ model for AFHQ, its mountain model for Mountains), and a method may not apply to a data set at
all: such a job is planned with ``not_applicable`` set to the reason and a configuration that says
so; the runner records it as ``not-applicable`` and never runs it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from splice.core import options
from splice.core.atomic import plain
from splice.core.errors import ConfigError
from splice.core.method import Method, Pair, RunSettings, config_hash
from splice.core.record import JobKey
from splice.core.registry import methods as registry
from splice.data.manifests import Manifest

log = logging.getLogger(__name__)

_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


@dataclass(frozen=True)
class Job:
    key: JobKey
    pair: Pair
    method_target: str  # "module:Class" from the registry
    settings: dict[str, Any]  # preset, seed, weights, allow_random_weights, max_side, options (JSON-able)
    config: dict[str, Any]  # the method's resolved configuration (its hash is key.config_hash)
    manifest: dict[str, Any] = field(default_factory=dict)  # name, version, line
    not_applicable: str | None = None  # why the method does not apply to this data set (never run)

    def run_settings(self, device: str, workdir: Path | None, max_side: int | None = None) -> RunSettings:
        s = self.settings
        return RunSettings(
            preset=s["preset"],
            seed=int(s["seed"]),
            device=device,
            weights=s.get("weights"),
            allow_random_weights=bool(s.get("allow_random_weights", False)),
            max_side=max_side if max_side is not None else s.get("max_side"),
            options=dict(s.get("options") or {}),
            workdir=workdir,
            dataset=self.key.dataset,
        )

    def to_dict(self) -> dict[str, Any]:
        d = {"key": self.key.to_dict(), "pair": self.pair.to_dict(), "method_target": self.method_target,
             "settings": self.settings, "config": self.config, "manifest": self.manifest}  # fmt: skip
        if self.not_applicable is not None:
            d["not_applicable"] = self.not_applicable
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Job":
        p = d["pair"]
        pair = Pair(pair_id=p["pair_id"], structure=Path(p["structure"]), appearance=Path(p["appearance"]),
                    dataset=p.get("dataset", "adhoc"))  # fmt: skip
        return cls(key=JobKey.from_dict(d["key"]), pair=pair, method_target=d["method_target"],
                   settings=dict(d["settings"]), config=dict(d["config"]),
                   manifest=dict(d.get("manifest") or {}), not_applicable=d.get("not_applicable"))  # fmt: skip


def ensure_registered(name: str, target: str) -> None:
    """Make ``name`` resolvable in this process (a worker may not have run the test's registration)."""
    if name not in registry:
        registry.register(name, target)


def create_method(job: Job) -> Method:
    ensure_registered(job.key.method, job.method_target)
    return registry.create(job.key.method)


# --------------------------------------------------------------------------------------
# what the user asked for (CLI values -> typed values)
# --------------------------------------------------------------------------------------
def method_overrides(items: Iterable[str], method_names: Iterable[str]) -> dict[str, dict[str, str]]:
    """``--method-args`` items -> ``{method: {option: text}}`` for the selected methods
    (:func:`splice.core.options.assign`: unknown names are errors with "did you mean")."""
    names = list(method_names)
    assignments = options.parse_assignments(items, registry.names())
    option_names = {}
    for name in names:
        method = registry.create(name)
        own = {a.key: a.value for a in assignments if a.method in (None, name)}
        option_names[name] = method.option_names(own)
    return options.assign(assignments, option_names)


def parse_weights(items: Iterable[str], method_names: Iterable[str]) -> dict[str, str]:
    """``--weights SPEC`` (for splice) or ``--weights method=SPEC`` -> ``{method: spec}``."""
    names = set(method_names)
    out: dict[str, str] = {}
    for item in items:
        head, eq, tail = item.partition("=")
        if eq and head in registry:
            if head in names:
                out[head] = tail
        else:
            out["splice"] = item
    return out


def parse_seeds(value: str) -> list[int]:
    """``0``, ``0,1,2`` or ``0-4`` -> list of ints."""
    seeds: list[int] = []
    for part in str(value).split(","):
        part = part.strip()
        if not part:
            continue
        m = _RANGE.match(part)
        try:
            seeds.extend(range(int(m.group(1)), int(m.group(2)) + 1) if m else [int(part)])
        except ValueError:
            raise ConfigError(f"--seeds {value!r}: use integers, e.g. 0 or 0,1,2 or 0-4") from None
    if not seeds:
        raise ConfigError("--seeds is empty; give e.g. --seeds 0")
    return list(dict.fromkeys(seeds))


def expand_methods(value: str) -> list[str]:
    """``splice,strotss`` / ``all`` (in_benchmark) / ``smoke`` (in_smoke) -> registered method names.

    Methods selected by ``all``/``smoke`` that cannot be imported here are skipped with a warning;
    an explicitly named method that cannot be imported is an error.
    """
    out: list[str] = []
    for token in [t.strip() for t in value.split(",") if t.strip()]:
        if token in ("all", "smoke"):
            attr = "in_benchmark" if token == "all" else "in_smoke"
            for name in registry.names():
                try:
                    cls = registry.get_class(name)
                except Exception as e:  # an optional dependency of one method must not stop the others
                    log.warning("method %s skipped for --methods %s: cannot be loaded (%s)", name, token,
                                " ".join(str(e).split()))  # fmt: skip
                    continue
                if getattr(cls, attr, False):
                    out.append(name)
        else:
            try:
                registry.get_class(token)
            except ConfigError:
                raise
            except Exception as e:
                why = f"{type(e).__name__}: {' '.join(str(e).split())}"
                raise ConfigError(f"method {token!r} cannot be loaded here ({why}); see `splice methods`") from None
            out.append(token)
    out = list(dict.fromkeys(out))
    if not out:
        raise ConfigError(f"--methods {value!r} selects no method; see `splice methods`")
    return out


# --------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------
@dataclass
class PlanRequest:
    """What ``splice bench`` was asked to run (everything except where and how)."""

    methods: list[str]
    manifests: list[Manifest]
    root: Path
    seeds: list[int] = field(default_factory=lambda: [0])
    preset: str = "paper"
    weights: dict[str, str] = field(default_factory=dict)  # method -> weights spec
    allow_random_weights: bool = False
    max_side: int | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> options
    pair_ids: list[str] | None = None
    limit: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"methods": self.methods, "datasets": [m.name for m in self.manifests], "root": str(self.root),
                "seeds": self.seeds, "preset": self.preset, "weights": self.weights,
                "allow_random_weights": self.allow_random_weights, "max_side": self.max_side, "options": self.options,
                "pairs": self.pair_ids, "limit": self.limit}  # fmt: skip


def plan_jobs(req: PlanRequest) -> list[Job]:
    """Every job of the request, ordered data set -> pair -> method -> seed (so a partial run
    holds complete comparisons for the pairs it reached)."""
    root = Path(req.root).expanduser().absolute()
    selected: list[tuple[Manifest, list]] = []
    found: set[str] = set()
    for m in req.manifests:
        if req.pair_ids is None:
            rows = m.select(None, req.limit)
        else:
            ids = [p for p in req.pair_ids if p in set(m.ids())]
            found.update(ids)
            rows = m.select(ids, req.limit) if ids else []
        selected.append((m, rows))
    if req.pair_ids is not None:
        unknown = [p for p in req.pair_ids if p not in found]
        if unknown:
            names = ", ".join(m.name for m in req.manifests)
            raise ConfigError(f"--pairs: {', '.join(unknown)} not in the selected data set(s) {names}; "
                              "see `splice datasets check --root DIR --dataset NAME`")  # fmt: skip

    instances = {name: registry.create(name) for name in req.methods}
    options.check_preset(req.preset, [p for m in instances.values() for p in m.preset_table(req.options.get(m.name))])
    per_method: dict[tuple[str, int, str], tuple[str, dict[str, Any], dict[str, Any], str | None]] = {}
    for name, method in instances.items():
        target = registry.target(name)
        for m in req.manifests:
            reason = method.not_applicable(m.name, req.options.get(name))
            for seed in req.seeds:
                settings = {
                    "preset": req.preset,
                    "seed": seed,
                    "weights": req.weights.get(name),
                    "allow_random_weights": req.allow_random_weights,
                    "max_side": req.max_side,
                    "options": dict(req.options.get(name, {})),
                }
                rs = RunSettings(preset=req.preset, seed=seed, weights=settings["weights"],
                                 allow_random_weights=req.allow_random_weights, max_side=req.max_side,
                                 options=dict(settings["options"]), dataset=m.name)  # fmt: skip
                settings["options"] = method.typed_overrides(rs)  # a bad option is a one-line ConfigError naming it
                settings["preset_resolved"] = method.resolved_preset(rs)
                if reason is None:
                    config = plain(method.config(rs))
                    dataset_options = method.for_dataset(m.name, req.options.get(name))
                    if dataset_options:
                        settings["dataset_options"] = plain(dict(dataset_options))
                else:
                    config = {"method": name, "version": method.version, "not_applicable": reason}
                per_method[(name, seed, m.name)] = (target, settings, config, reason)

    jobs: list[Job] = []
    for m, rows in selected:
        for row in rows:
            pair = m.resolve(row, root)
            for name in req.methods:
                for seed in req.seeds:
                    target, settings, config, reason = per_method[(name, seed, m.name)]
                    key = JobKey(dataset=m.name, pair_id=row.pair_id, method=name, seed=seed,
                                 config_hash=config_hash(config))  # fmt: skip
                    jobs.append(Job(key=key, pair=pair, method_target=target, settings=settings, config=config,
                                    manifest={"name": m.name, "version": m.version, "line": row.line,
                                              "path": str(m.path)}, not_applicable=reason))  # fmt: skip
    return jobs


def dataset_settings(req: PlanRequest) -> list[dict[str, Any]]:
    """What each selected method declares for each selected data set: its option overrides there, or why it does
    not apply (for ``splice bench --dry-run``). Methods that declare nothing for a data set are left out."""
    out = []
    for name in req.methods:
        method = registry.create(name)
        for m in req.manifests:
            entry = method.for_dataset(m.name, req.options.get(name))
            reason = method.not_applicable(m.name, req.options.get(name))
            if reason is not None:
                out.append({"method": name, "dataset": m.name, "not_applicable": reason})
            elif entry:
                out.append({"method": name, "dataset": m.name, "options": plain(dict(entry))})
    return out
