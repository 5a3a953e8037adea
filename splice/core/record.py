"""The job record (``record.json``): one typed, versioned dataclass, built by one function.

Every result of the suite, from ``splice run`` on one pair to a benchmark job in a run store,
and every failure (a method that raised, a worker that died), is described by a
:class:`JobRecord` made by :func:`make_record`. Scoring, tables, reports, the study and the
tests read records through :meth:`JobRecord.from_dict` (which also reads schema 1).

Schema 2 (``status`` is the unit of resumability: a job whose record says ``ok`` and whose
output exists is done)::

    schema            2
    status            "ok" | "failed" | "not-applicable" (the method does not apply to the data set; never run,
                      ``error`` says why)
    job               {method, dataset, pair_id, seed, config_hash}
    pair              {pair_id, dataset, structure, appearance, manifest: {name, version, line, path}}
    inputs            {structure: {path, sha256, mode, size, conversions, ...}, appearance: {...}}
    config            the method's resolved configuration (its hash is job.config_hash)
    settings          {preset, preset_resolved, seed, device, weights, allow_random_weights, max_side, options}
    output            "output.png" | null
    geometry          {kind, source, box, output} from the structure image to the output | null
    random_weights    any model behind this result was randomly initialised
    weights           identity of the weights used (method-specific) | null
    seconds           the attempt that produced the result; seconds_total: all attempts
    peak_memory_mb    peak of that attempt; peak_memory_kind, peak_memory_baseline_mb: what was measured
    device, max_side  where it ran; the resolution cap that produced the output (null = native)
    attempts          [{max_side, error, seconds, peak_memory_mb}]: the out-of-memory ladder
    info              method-specific (final losses, per-step seconds, ...)
    error, error_type one line and the exception type of a failure | null
    versions          python, platform and package versions (splice.core.resources.versions)
    host, pid, invocation, git, started, finished
    slurm             the SLURM job the record was made in, from SLURM's environment | null outside SLURM:
                      {job: "<array job>_<task>" (or the plain job id; what squeue/scancel take),
                       job_id, array_job_id, array_task_id, restarts (SLURM_RESTART_COUNT: requeues),
                       cluster, partition, node, log: the task's stderr file (``splice bench --launcher
                       slurm`` tasks: ``OUT/slurm/<job>/<job>_0_log.err``) | null}

Fields added later without a schema change (readers of older records get their default): ``slurm``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splice.core import resources
from splice.core.atomic import plain
from splice.core.claims import slurm_task_id

SCHEMA = 2
STATUSES = ("ok", "failed", "not-applicable")
NOT_APPLICABLE = "not-applicable"
TASK_LOG_ENV = "SPLICE_TASK_LOG"
"""The environment variable a launcher sets to the log file of the task it runs jobs in (``slurm.log``)."""


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def slurm_context() -> dict[str, Any] | None:
    """The SLURM job this process runs in (from the variables SLURM sets in every job), or None."""
    env = os.environ
    if not env.get("SLURM_JOB_ID"):
        return None
    return {
        "job": slurm_task_id(),
        "job_id": env["SLURM_JOB_ID"],
        "array_job_id": env.get("SLURM_ARRAY_JOB_ID") or None,
        "array_task_id": _int(env.get("SLURM_ARRAY_TASK_ID")),
        "restarts": _int(env.get("SLURM_RESTART_COUNT")) or 0,
        "cluster": env.get("SLURM_CLUSTER_NAME") or None,
        "partition": env.get("SLURM_JOB_PARTITION") or None,
        "node": env.get("SLURMD_NODENAME") or None,
        "log": env.get(TASK_LOG_ENV) or None,
    }


@dataclass(frozen=True, order=True)
class JobKey:
    dataset: str
    pair_id: str
    method: str
    seed: int
    config_hash: str

    @property
    def variant(self) -> str:
        return f"s{self.seed}-{self.config_hash}"

    def relpath(self) -> Path:
        return Path("outputs") / self.dataset / self.pair_id / self.method / self.variant

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "dataset": self.dataset,
            "pair_id": self.pair_id,
            "seed": self.seed,
            "config_hash": self.config_hash,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JobKey":
        return cls(
            dataset=d["dataset"],
            pair_id=d["pair_id"],
            method=d["method"],
            seed=int(d["seed"]),
            config_hash=d["config_hash"],
        )

    def __str__(self) -> str:
        return f"{self.method}/{self.dataset}/{self.pair_id}/{self.variant}"


@dataclass
class JobRecord:
    status: str
    job: JobKey
    pair: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    output: str | None = None
    geometry: dict[str, Any] | None = None
    random_weights: bool = False
    weights: dict[str, Any] | None = None
    seconds: float | None = None
    seconds_total: float | None = None
    peak_memory_mb: float | None = None
    peak_memory_kind: str | None = None
    peak_memory_baseline_mb: float | None = None
    device: str | None = None
    max_side: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    host: str | None = None
    pid: int | None = None
    invocation: str | None = None
    git: dict[str, Any] | None = None
    started: str | None = None
    finished: str | None = None
    slurm: dict[str, Any] | None = None
    schema: int = SCHEMA

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def preset(self) -> str | None:
        return self.settings.get("preset")

    @property
    def seed(self) -> int:
        return self.job.seed

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["job"] = self.job.to_dict()
        return {"schema": d.pop("schema"), **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JobRecord":
        """A record from its JSON; schema 1 (``versions.host``, ``PIL``) is upgraded. Raises
        ``KeyError``/``TypeError``/``ValueError`` for something that is not a job record."""
        if not isinstance(d, dict) or "job" not in d or d.get("status") not in STATUSES:
            raise ValueError("not a job record (no job key or no ok/failed/not-applicable status)")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["job"] = JobKey.from_dict(d["job"])
        versions = dict(d.get("versions") or {})
        if "PIL" in versions:  # schema 1 spelled pillow by its module name and kept the host here
            versions.setdefault("pillow", versions.pop("PIL"))
        if "host" in versions:
            values.setdefault("host", versions.pop("host"))
        values["versions"] = versions
        values["schema"] = int(d.get("schema", 1))
        for name in ("pair", "inputs", "config", "settings", "info"):
            if not isinstance(values.get(name), dict):
                values[name] = {}
        if not isinstance(values.get("attempts"), list):
            values["attempts"] = []
        return cls(**values)


def make_record(
    job: JobKey,
    *,
    status: str,
    pair: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    output: str | None = None,
    geometry: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    measurement: resources.Measurement | None = None,
    seconds_total: float | None = None,
    device: str | None = None,
    max_side: int | None = None,
    attempts: list[dict[str, Any]] | None = None,
    error: str | None = None,
    error_type: str | None = None,
    invocation: dict[str, Any] | None = None,
    started: str | None = None,
) -> JobRecord:
    """The one way to build a record: the method's ``info`` gives weights and random_weights; the
    measurement gives seconds and memory; versions, host, pid, the SLURM job (:func:`slurm_context`)
    and the finishing time are filled here."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    info = plain(info or {})
    m = measurement
    seconds = round(m.seconds, 3) if m is not None else None
    return JobRecord(
        status=status,
        job=job,
        pair=plain(pair or {}),
        inputs=plain(inputs or {}),
        config=plain(config or {}),
        settings=plain(settings or {}),
        output=output if status == "ok" else None,
        geometry=geometry if status == "ok" else None,
        random_weights=bool(info.get("random_weights", False)),
        weights=info.get("weights"),
        seconds=seconds,
        seconds_total=round(seconds_total, 3) if seconds_total is not None else seconds,
        peak_memory_mb=round(m.peak_memory_mb, 1) if m is not None and m.peak_memory_mb is not None else None,
        peak_memory_kind=m.kind if m is not None else None,
        peak_memory_baseline_mb=round(m.baseline_mb, 1) if m is not None and m.baseline_mb is not None else None,
        device=device,
        max_side=max_side,
        attempts=list(attempts or []),
        info=info,
        error=error,
        error_type=error_type,
        versions=resources.versions(),
        host=resources.host(),
        pid=os.getpid(),
        invocation=(invocation or {}).get("id"),
        git=(invocation or {}).get("git"),
        started=started,
        finished=resources.now(),
        slurm=slurm_context(),
    )
