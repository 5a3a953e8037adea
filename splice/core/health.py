"""Run health: the state of every job a run store expects, decided in one place.

A job is *expected* when its folder in the store (:mod:`splice.core.store`) holds its plan
(``job.json``, written by ``splice bench`` when it plans the job, before anything runs), its record
(``record.json``) or a claim (``claim.json``, :mod:`splice.core.claims`). So the jobs of a killed
``bench``, and a method none of whose jobs finished, are as visible as the finished ones. From those
files every job is in exactly one state:

===============  =====================================================  ==========================================
state            meaning                                                what fixes it
===============  =====================================================  ==========================================
done             an ``ok`` record and its output                        (nothing)
failed           a ``failed`` record                                    the bench command with ``--retry-failed``
running          a live claim: a runner is on it now                    (wait; ``splice bench status`` follows it)
stale            a claim whose owner is gone                            the bench command (takes it over, keeps
                                                                        ``work/``)
pending          planned, no record, no claim                           the bench command
corrupt          ``record.json`` is not a readable record (truncated,   the bench command (sets the record aside
                 not JSON, not a job record)                            as ``record.corrupt-<time>.json`` first)
output-missing   an ``ok`` record whose ``output.png`` is gone          the bench command (sets the record aside
                                                                        as ``record.output-missing-<time>.json``)
not-applicable   the method does not apply to the job's data set (a     (nothing)
                 ``not-applicable`` record, or the plan says so)
===============  =====================================================  ==========================================

``splice bench status``, ``splice score``, ``splice table`` and ``splice report`` all classify with
:func:`job_health` / :func:`survey`, name every job that is not done with its path, and give the
command that fixes it (:class:`Fixer`: the ``splice bench`` command of ``run.json`` that planned it).
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from splice.core.atomic import read_json
from splice.core.claims import CLAIM, Claim, describe_holder, stale_reason
from splice.core.errors import ConfigError
from splice.core.record import NOT_APPLICABLE, JobKey, JobRecord
from splice.core.store import RECORD, RunStore

JOB_SPEC = "job.json"
"""The planned job (``splice.runner.jobs.Job.to_dict``), written by ``splice bench`` before it runs anything."""

DONE, FAILED, RUNNING, STALE, PENDING = "done", "failed", "running", "stale", "pending"
CORRUPT, OUTPUT_MISSING = "corrupt", "output-missing"
STATES = (DONE, FAILED, RUNNING, STALE, PENDING, CORRUPT, OUTPUT_MISSING, NOT_APPLICABLE)
LABELS = {DONE: "done", FAILED: "failed", RUNNING: "running", STALE: "stale claim", PENDING: "pending",
          CORRUPT: "corrupt record", OUTPUT_MISSING: "output missing",
          NOT_APPLICABLE: "not applicable"}  # fmt: skip
"""How people read each state (reports, messages)."""
UNFINISHED = (RUNNING, STALE, PENDING, CORRUPT, OUTPUT_MISSING)
"""States of jobs that have no result yet but will have one once the bench command runs (again)."""


@dataclass
class JobHealth:
    """One expected job and its state (module docstring)."""

    key: JobKey
    state: str
    record: JobRecord | None
    holder: dict[str, Any] | None
    job_dir: Path
    why: str | None = None  # the corrupt record's problem, the stale claim's reason, the failure's error
    spec: dict[str, Any] | None = None  # job.json, when there is one

    @property
    def label(self) -> str:
        return LABELS[self.state]

    @property
    def ok(self) -> bool:
        return self.state == DONE

    @property
    def path(self) -> Path:
        """The file that shows the state: the record (corrupt, failed), the output (missing), the claim, or
        the job folder."""
        if self.state in (CORRUPT, FAILED):
            return self.job_dir / RECORD
        if self.state == OUTPUT_MISSING:
            return self.job_dir / ((self.record.output if self.record else None) or "output.png")
        if self.state in (RUNNING, STALE):
            return self.job_dir / CLAIM
        return self.job_dir

    @property
    def pair(self) -> dict[str, Any]:
        """The pair (structure, appearance) from the record, else from the plan."""
        if self.record is not None and self.record.pair:
            return self.record.pair
        return dict((self.spec or {}).get("pair") or {})


def read_spec(job_dir: Path) -> dict[str, Any] | None:
    """``job.json`` of a job folder, or None when absent or unreadable."""
    try:
        spec = read_json(Path(job_dir) / JOB_SPEC)
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


def job_health(store: RunStore, key: JobKey, spec: dict[str, Any] | None = None) -> JobHealth:
    """The state of one job of ``store`` (``spec``: its ``job.json`` when the caller read it already)."""
    job_dir = store.job_dir(key)
    rec, problem = store.load_record(key)
    seen = Claim(job_dir).read()
    holder = seen[0] if seen else None
    if spec is None:
        spec = read_spec(job_dir)
    why = None
    if seen is not None and stale_reason(seen[0], seen[1]) is None:
        state = RUNNING
        why = f"claimed by {describe_holder(holder)}"
    elif rec is not None and rec.ok:
        state = DONE if store.output_path(key).exists() else OUTPUT_MISSING
        if state == OUTPUT_MISSING:
            why = "the record says ok but the output file is gone"
    elif rec is not None and rec.status == "failed":
        state, why = FAILED, rec.error
    elif rec is not None and rec.status == NOT_APPLICABLE:
        state, why = NOT_APPLICABLE, rec.error
    elif problem is not None:
        state, why = CORRUPT, f"record.json is {problem}"
    elif seen is not None:
        state, why = STALE, stale_reason(seen[0], seen[1])
    elif spec is not None and spec.get("not_applicable"):
        state, why = NOT_APPLICABLE, str(spec["not_applicable"])
    else:
        state = PENDING
    return JobHealth(key, state, rec, holder, job_dir, why, spec)


def _key_of(job_dir: Path, store: RunStore, spec: dict[str, Any] | None) -> JobKey | None:
    try:
        data = read_json(job_dir / RECORD)
        return JobKey.from_dict(data["job"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if spec is not None:
        try:
            return JobKey.from_dict(spec["key"])
        except (KeyError, TypeError, ValueError):
            pass
    return _path_key(job_dir, store)


def _path_key(job_dir: Path, store: RunStore) -> JobKey | None:
    """The key a job folder's path spells (``outputs/<dataset>/<pair>/<method>/s<seed>-<hash>``)."""
    rel = job_dir.relative_to(store.outputs).parts
    if len(rel) == 4 and rel[3].startswith("s") and "-" in rel[3]:
        seed, _, chash = rel[3][1:].rpartition("-")
        try:
            return JobKey(rel[0], rel[1], rel[2], int(seed), chash)
        except ValueError:
            return None
    return None


def survey(store: RunStore, extra: Iterable[JobKey] = ()) -> list[JobHealth]:
    """Every expected job of ``store`` (plus ``extra`` keys) with its state, sorted by key."""
    specs: dict[JobKey, dict[str, Any] | None] = {k: None for k in extra}
    if store.outputs.is_dir():
        for job_dir in store.outputs.glob("*/*/*/*"):
            if not job_dir.is_dir() or not any((job_dir / n).exists() for n in (RECORD, JOB_SPEC, CLAIM)):
                continue
            spec = read_spec(job_dir)
            key = _key_of(job_dir, store, spec)
            if key is not None:
                specs[key] = spec if spec is not None else specs.get(key)
    return [job_health(store, k, specs[k]) for k in sorted(specs)]


def counts(jobs: Iterable[JobHealth]) -> dict[str, int]:
    """Jobs per state, every state present (0 when none)."""
    c = Counter(j.state for j in jobs)
    return {s: c.get(s, 0) for s in STATES}


def summary_text(jobs: Iterable[JobHealth], states: Iterable[str] = STATES) -> str:
    """``"2 pending, 1 corrupt record"``: the non-zero counts of ``states``, in :data:`STATES` order."""
    c = counts(jobs)
    return ", ".join(f"{c[s]} {LABELS[s]}" for s in STATES if s in set(states) and c[s])


def select(jobs: Iterable[JobHealth], methods: Iterable[str] | None = None,
           datasets: Iterable[str] | None = None) -> list[JobHealth]:  # fmt: skip
    """The jobs of these methods and data sets (None: all)."""
    ms, ds = (set(methods) if methods else None), (set(datasets) if datasets else None)
    return [j for j in jobs if (ms is None or j.key.method in ms) and (ds is None or j.key.dataset in ds)]


def check_selection(option: str, wanted: Iterable[str] | None, have: Iterable[str], where: str) -> None:
    """A one-line error when a filter (``--methods``, ``--datasets``, ``--pairs``) names something ``where``
    (a run store) does not hold, so that a typo never prints an empty table."""
    if not wanted:
        return
    have = sorted(set(have))
    unknown = [w for w in wanted if w not in set(have)]
    if unknown:
        holds = ", ".join(have) if have else "nothing"
        if len(have) > 20:
            holds = ", ".join(have[:20]) + f", ... ({len(have)} in all)"
        raise ConfigError(f"{option} {','.join(unknown)}: not in {where}; it holds: {holds}")


# ---------------------------------------------------------------------------------------------------------------
# what fixes it
# ---------------------------------------------------------------------------------------------------------------
def _is_bench_command(argv: Any) -> bool:
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv) or "bench" not in argv[:4]:
        return False
    head = argv[: argv.index("bench")]
    return any(Path(a).name in ("splice", "splice.cli") or a == "splice" for a in head)


def _command_from_settings(s: dict[str, Any]) -> list[str]:
    """A ``splice bench`` command line rebuilt from an invocation's recorded settings."""
    argv = ["splice", "bench", "--methods", ",".join(s.get("methods") or []),
            "--datasets", ",".join(s.get("datasets") or []), "--root", str(s.get("root") or "DATA"),
            "--out", str(s.get("out") or "OUT")]  # fmt: skip
    if s.get("preset") and s["preset"] != "paper":
        argv += ["--preset", str(s["preset"])]
    if s.get("seeds") and list(s["seeds"]) != [0]:
        argv += ["--seeds", ",".join(str(x) for x in s["seeds"])]
    if s.get("pairs"):
        argv += ["--pairs", ",".join(s["pairs"])]
    if s.get("limit"):
        argv += ["--limit", str(s["limit"])]
    for method, spec in sorted((s.get("weights") or {}).items()):
        argv += ["--weights", spec if method == "splice" else f"{method}={spec}"]
    if s.get("allow_random_weights"):
        argv.append("--allow-random-weights")
    if s.get("max_side"):
        argv += ["--max-side", str(s["max_side"])]
    for method, opts in sorted((s.get("options") or {}).items()):
        argv += [a for k, v in sorted((opts or {}).items()) for a in ("--method-args", f"{method}.{k}={v}")]
    if s.get("devices"):
        argv += ["--devices", ",".join(s["devices"])]
    if s.get("keep_work"):
        argv.append("--keep-work")
    return argv


def _with_out(argv: list[str], root: Path, cwd: str) -> list[str]:
    """``argv`` with its ``--out``/``-o`` naming ``root`` (a run folder moved or copied since its bench ran
    is fixed where it is now, not where it was)."""
    out = list(argv)
    for i, a in enumerate(out):
        value = None
        if a in ("--out", "-o") and i + 1 < len(out):
            value, at = out[i + 1], i + 1
        elif a.startswith("--out="):
            value, at = a[len("--out="):], i
        if value is None:
            continue
        if os.path.abspath(os.path.join(cwd, value)) != os.path.abspath(root):
            where = os.path.abspath(root)  # absolute: the command may start with `cd` to the bench's folder
            out[at] = where if at == i + 1 else f"--out={where}"
        break
    return out


class Fixer:
    """The command that fixes a job that is not done: the ``splice bench`` invocation of ``run.json`` that
    planned it (the newest whose methods and data sets include the job's), as the user typed it (or rebuilt
    from its settings), run from the folder it was run from."""

    def __init__(self, store: RunStore):
        self.store = store
        self.invocations = [i for i in store.invocations() if isinstance(i.get("settings"), dict)
                            and isinstance(i["settings"].get("methods"), list)
                            and isinstance(i["settings"].get("datasets"), list)]  # fmt: skip

    def bench_command(self, key: JobKey | None = None) -> str:
        """The command of the newest bench that planned ``key`` (any bench when None); without one, a
        ``splice bench`` command for the job with DATA standing for its data root."""
        chosen = None
        for inv in reversed(self.invocations):
            s = inv["settings"]
            if key is None or (key.method in s["methods"] and key.dataset in s["datasets"]):
                chosen = inv
                break
        if chosen is None:
            method, dataset = (key.method, key.dataset) if key else ("METHODS", "DATASETS")
            return shlex.join(["splice", "bench", "--methods", method, "--datasets", dataset, "--root", "DATA",
                               "--out", str(self.store.root)])  # fmt: skip
        argv = chosen.get("command")
        argv = [a for a in argv if a != "--dry-run"] if _is_bench_command(argv) else \
            _command_from_settings(chosen["settings"])  # fmt: skip
        cwd = chosen.get("cwd")
        argv = _with_out(argv, self.store.root, cwd if isinstance(cwd, str) and cwd else os.getcwd())
        text = shlex.join(argv)
        if isinstance(cwd, str) and cwd and os.path.abspath(cwd) != os.getcwd():
            text = f"cd {shlex.quote(cwd)} && {text}"
        return text

    def command(self, job: JobHealth) -> str | None:
        """The command line that fixes ``job`` (None for done, running and not-applicable jobs)."""
        if job.state in (DONE, RUNNING, NOT_APPLICABLE):
            return None
        cmd = self.bench_command(job.key)
        if job.state == FAILED and "--retry-failed" not in cmd:
            cmd += " --retry-failed"
        return cmd

    def advice(self, job_or_state: JobHealth | str, command: str | None = None, n: int = 1) -> str:
        """One sentence: what fixes ``n`` jobs in this state (``command`` fills in the command line; without
        it the sentence says "the bench command")."""
        state = job_or_state if isinstance(job_or_state, str) else job_or_state.state
        if command is None and not isinstance(job_or_state, str):
            command = self.command(job_or_state)
        cmd = f"`{command}`" if command else "the bench command" + (" with --retry-failed" if state == FAILED else "")
        it, s = ("it", "") if n == 1 else ("them", "s")
        return {
            FAILED: f"{cmd} runs {it} again",
            STALE: f"{cmd} takes over the dead runner's claim{s} and continues from work/",
            PENDING: f"{cmd} runs {it}",
            CORRUPT: f"{cmd} sets record.json aside (record.corrupt-<time>.json) and runs the job{s} again",
            OUTPUT_MISSING: f"{cmd} sets the record{s} aside (record.output-missing-<time>.json) and runs the "
                            f"job{s} again",
            RUNNING: f"a runner is on {it}; follow with `splice bench status --out {self.store.root}`",
        }.get(state, "nothing to do")


@dataclass
class Attention:
    """The jobs of one state that need something, with the command that fixes them."""

    state: str
    jobs: list[JobHealth]
    commands: list[str]  # distinct fix commands of these jobs (usually one)
    advice: str  # what fixes them, with the command when there is one
    short: str  # the same without the command (when a list states it once for every state)

    @property
    def label(self) -> str:
        return LABELS[self.state]


def attention(jobs: Iterable[JobHealth], fixer: Fixer) -> list[Attention]:
    """The jobs that are neither done nor not applicable, grouped by state (in :data:`STATES` order)."""
    by: dict[str, list[JobHealth]] = {}
    for j in jobs:
        if j.state not in (DONE, NOT_APPLICABLE):
            by.setdefault(j.state, []).append(j)
    out = []
    for state in STATES:
        group = by.get(state)
        if not group:
            continue
        commands = list(dict.fromkeys(c for c in (fixer.command(j) for j in group) if c))
        advice = fixer.advice(state, commands[0] if len(commands) == 1 else None, len(group))
        out.append(Attention(state, group, commands, advice, fixer.advice(state, "", len(group))))
    return out


RETRY = " --retry-failed"


def common_command(groups: list[Attention]) -> str | None:
    """The one bench command that fixes every group (failed ones with ``--retry-failed``), or None."""
    bases = {c[: -len(RETRY)] if c.endswith(RETRY) else c for g in groups for c in g.commands}
    return bases.pop() if len(bases) == 1 and all(g.commands for g in groups if g.state != RUNNING) else None


def attention_lines(groups: list[Attention], out: str | os.PathLike, limit: int = 5) -> list[str]:
    """Text for people: the bench command that fixes them (once, when it is one), then per state what it does
    and up to ``limit`` jobs with their paths and why."""
    lines = []
    base = common_command(groups)
    if base:
        lines.append(f"to fix, run the bench again: {base}")
    for g in groups:
        lines.append(f"{len(g.jobs)} {g.label}: {g.short if base else g.advice}")
        if len(g.commands) > 1:
            lines += [f"    fix: {c}" for c in g.commands[:limit]]
        for j in g.jobs[:limit]:
            lines.append(f"  {j.path}" + (f"  ({j.why})" if j.why else ""))
        if len(g.jobs) > limit:
            lines.append(f"  ... and {len(g.jobs) - limit} more (`splice bench status --out {out}` lists every "
                         "job in jobs.csv)")  # fmt: skip
    return lines
