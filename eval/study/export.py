"""``splice study export``: Mechanical Turk sheets for the 2AFC study, from a run store.

Reads the finished jobs of a run (through :func:`eval.aggregate.load_results`, so it never
re-runs a method), plans the trials (:mod:`eval.study.design`), renders the aligned images
(:mod:`eval.study.images`) and writes, into ``dest``::

    images/<16 hex>.png        rater-facing: opaque ids, bare PNGs, A in grayscale
    batch.csv                  rater-facing: one row per HIT (upload to Mechanical Turk)
    template.html              rater-facing: the HIT's HTML question reading batch.csv's columns
    private/answer_key.csv     which method is where, per trial (never shown to raters)
    private/export.json        the settings, seed, counts, k and job variants of this export
    README.md                  what to upload where, and the number of assignments per HIT (k)

Protocol: PROTOCOL.md (version 2), "2AFC user study", after the Splice paper (Tumanyan et al.,
CVPR 2022, Table 1). Every comparison sits in exactly one trial of one HIT; the HIT is
published with ``k = judgments`` assignments, so k *different* workers judge it (Mechanical
Turk never gives one worker two assignments of a HIT). No rater-facing file names a method, a
data set, a pair or an input file, and the private part never lands inside the run store,
whose outputs and report are meant to be shared (:func:`check_dest`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from splice.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from splice.core.errors import ConfigError, UserError
from splice.core.geometry import Geometry
from splice.core.imageio import load_rgb

from . import design, images
from .csvsafe import write_csv
from .design import LEFT, Item, PlannedTrial, StudyPlan
from .question import QUESTION, TRIAL_FIELDS, batch_header, mturk_template
from .results import EXPORT_RECORD

log = logging.getLogger(__name__)

EXPORT_VERSION = "2"  # 2: one trial per comparison, k assignments per HIT (no sets)
BATCH = "batch.csv"
TEMPLATE = "template.html"
IMAGES = "images"
KEY = "private/answer_key.csv"
RECORD = f"private/{EXPORT_RECORD}"
IMAGE_ID = re.compile(r"^[0-9a-f]{16}$")
_URL = re.compile(r"^https?://[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+$")

KEY_COLUMNS = [
    "trial_id", "hit", "slot", "kind", "dataset", "pair_id", "ours", "baseline", "ours_side", "correct_side",
    "left_shows", "right_shows", "ref_a", "ref_b", "left", "right", "ours_job", "baseline_job", "other_dataset",
    "other_pair_id", "other_method",
]  # fmt: skip


@dataclass
class ExportSettings:
    """Everything ``splice study export`` needs (the CLI options, typed)."""

    run_dir: Path
    dest: Path
    base_url: str
    baselines: list[str]
    ours: str = "splice"
    datasets: list[str] | None = None
    judgments: int = 5
    vigilance: float = 0.1
    seed: int = 0
    trials_per_hit: int = 10
    long_side: int = 512
    max_hits_per_worker: int | None = None
    variants: dict[str, str] = field(default_factory=dict)  # method -> "s<seed>-<config_hash>"
    data_root: Path | None = None
    force: bool = False


@dataclass
class ExportResult:
    dest: Path
    counts: dict[str, int]
    n_images: int
    items: int
    skipped_pairs: dict[str, int]
    random_weights: list[str]


# --------------------------------------------------------------------------------------- inputs
def check_dest(dest: str | Path, run_dir: str | Path) -> None:
    """Refuse a ``--dest`` inside the run store (its outputs and report are meant to be shared, and
    the export's ``private/answer_key.csv`` must not travel with them)."""
    d, r = Path(dest).expanduser().resolve(), Path(run_dir).expanduser().resolve()
    if d == r or r in d.parents:
        raise ConfigError(f"--dest {dest} is inside the run store {run_dir}, whose outputs and report are shared; the "
                          "study's private answer key must not travel with them: choose a --dest outside it, e.g. "
                          f"{r.parent / (r.name + '-study')}")


def _check_base_url(url: str, methods: list[str]) -> str:
    url = url.strip()
    if not _URL.match(url):
        raise ConfigError(f"--base-url {url!r} is not an http(s) URL without spaces or quotes, e.g. "
                          "https://example.org/study1/images")
    for m in methods:
        if m and m.lower() in url.lower():
            raise ConfigError(f"--base-url {url!r} contains the method name {m!r}, which raters would see; "
                              "use a neutral URL")
    return url.rstrip("/")


def _select_jobs(df: pd.DataFrame, s: ExportSettings) -> pd.DataFrame:
    methods = [s.ours, *s.baselines]
    ok = df[(df["status"] == "ok") & df["output"].notna() & df["method"].isin(methods)]
    if s.datasets:
        missing = sorted(set(s.datasets) - set(df["dataset"]))
        if missing:
            raise ConfigError(f"data set(s) {', '.join(missing)} not in the run store {s.run_dir}; "
                              f"it holds: {', '.join(sorted(set(df['dataset']))) or 'nothing'}")
        ok = ok[ok["dataset"].isin(s.datasets)]
    for m in methods:
        if not (ok["method"] == m).any():
            have = ", ".join(sorted(set(df[df["status"] == "ok"]["method"]))) or "none"
            raise ConfigError(f"no finished job of method {m!r} in {s.run_dir}; methods with finished jobs: {have}")
    ok = ok.assign(variant=["s%d-%s" % (seed, h) for seed, h in zip(ok["seed"], ok["config_hash"])])
    keep = []
    for m in methods:
        rows = ok[ok["method"] == m]
        variants = sorted(set(rows["variant"]))
        if m in s.variants:
            if s.variants[m] not in variants:
                raise ConfigError(f"--variant {m}={s.variants[m]}: no such job variant; {m} has {', '.join(variants)}")
            rows = rows[rows["variant"] == s.variants[m]]
        elif len(variants) > 1:
            raise ConfigError(f"method {m!r} has {len(variants)} job variants in {s.run_dir} ({', '.join(variants)}); "
                              f"pick one with --variant {m}=<variant>")
        keep.append(rows)
    return pd.concat(keep, ignore_index=True)


def _resolve(path: str, data_root: Path | None) -> Path:
    p = Path(path)
    if not p.is_absolute() and not p.exists() and data_root is not None:
        return data_root / p
    return p


class _Pairs:
    """Loaded inputs and outputs of the selected jobs, read once each."""

    def __init__(self, jobs: pd.DataFrame, data_root: Path | None):
        self.jobs = {(r.dataset, r.pair_id, r.method): r for r in jobs.itertuples(index=False)}
        self.data_root = data_root
        self._cache: dict[Any, Any] = {}

    def _memo(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def job(self, dataset: str, pair_id: str, method: str):
        return self.jobs[(dataset, pair_id, method)]

    def structure(self, dataset: str, pair_id: str, method: str) -> Image.Image:
        row = self.job(dataset, pair_id, method)
        path = _resolve(row.structure, self.data_root)
        return self._memo(("s", str(path)), lambda: load_rgb(path, role="structure image", min_side=0).image)

    def appearance(self, dataset: str, pair_id: str, method: str) -> Image.Image:
        row = self.job(dataset, pair_id, method)
        path = _resolve(row.appearance, self.data_root)
        return self._memo(("a", str(path)), lambda: load_rgb(path, role="appearance image", min_side=0).image)

    def output(self, dataset: str, pair_id: str, method: str) -> tuple[Image.Image, Geometry]:
        row = self.job(dataset, pair_id, method)

        def make():
            out = load_rgb(row.output, role=f"output of {method}", min_side=0).image
            if not row.geometry:
                raise UserError(f"{row.job_dir}/record.json has no geometry; re-run the job with splice bench")
            g = Geometry.from_dict(row.geometry)
            if tuple(g.output) != tuple(out.size):
                raise UserError(f"{row.output} is {out.size[0]}x{out.size[1]} but its record says "
                                f"{g.output[0]}x{g.output[1]}; re-run the job with splice bench")
            images.check_geometry(g, self.structure(dataset, pair_id, method).size, f"{row.job_dir}/record.json")
            return out, g

        return self._memo(("o", dataset, pair_id, method), make)


# ---------------------------------------------------------------------------------- rendering
class _ImageWriter:
    """Writes each distinct image once, under a random hex id drawn from the seed.

    ``put(key, make)`` renders ``make()`` only the first time ``key`` (what the view shows) is
    asked for; identical pixels from different keys still share one file and id.
    """

    def __init__(self, folder: Path, seed: int):
        self.folder = folder
        self.rng = np.random.default_rng([seed, 0x5EED])
        self.by_hash: dict[str, str] = {}
        self.by_key: dict[Any, str] = {}

    def __call__(self, key: Any, make) -> str:
        if key not in self.by_key:
            self.by_key[key] = self._write(make())
        return self.by_key[key]

    def _write(self, image: Image.Image) -> str:
        data = images.bare_png(image)
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self.by_hash:
            while True:
                new = self.rng.bytes(8).hex()
                if new not in self.by_hash.values():
                    break
            atomic_write_bytes(self.folder / f"{new}.png", data)
            self.by_hash[digest] = new
        return self.by_hash[digest]


def _refs(d: str, p: str, box, size, pairs: "_Pairs", s: ExportSettings, put) -> dict[str, str]:
    """Image A (the structure image's region ``box``, grayscale) and image B (the appearance image)."""
    return {
        "ref_a": put(("a", d, p, box, size),
                     lambda: images.grayscale(images.cut(pairs.structure(d, p, s.ours), box, size))),
        "ref_b": put(("b", d, p), lambda: images.fit_long_side(pairs.appearance(d, p, s.ours), s.long_side)),
    }


def _render_comparison(t: PlannedTrial, pairs: _Pairs, s: ExportSettings, put) -> dict[str, str]:
    it = t.item
    assert it is not None
    d, p = it.dataset, it.pair_id
    g_ours = pairs.output(d, p, s.ours)[1]
    g_base = pairs.output(d, p, it.baseline)[1]
    box = images.intersect_boxes([g_ours, g_base])
    size = images.display_size(box, s.long_side)

    def view(method: str, g: Geometry) -> str:
        return put(("out", d, p, method, box, size),
                   lambda: images.cut(pairs.output(d, p, method)[0], images.box_in_output(g, box), size))

    ours_view, base_view = view(s.ours, g_ours), view(it.baseline, g_base)
    left, right = (ours_view, base_view) if t.side == LEFT else (base_view, ours_view)
    return {
        **_refs(d, p, box, size, pairs, s, put),
        "left": left,
        "right": right,
        "left_shows": s.ours if t.side == LEFT else it.baseline,
        "right_shows": it.baseline if t.side == LEFT else s.ours,
    }


def _render_vigilance(t: PlannedTrial, pairs: _Pairs, s: ExportSettings, put) -> dict[str, str]:
    assert t.pair is not None and t.other is not None and t.other_method is not None
    (d, p), (od, op), om = t.pair, t.other, t.other_method
    g = pairs.output(d, p, s.ours)[1]
    box = (float(g.box[0]), float(g.box[1]), float(g.box[2]), float(g.box[3]))
    size = images.display_size(box, s.long_side)
    right_answer = put(("colour", d, p, box, size), lambda: images.cut(pairs.structure(d, p, s.ours), box, size))
    wrong_answer = put(("fit", od, op, om, size), lambda: images.centre_fit(pairs.output(od, op, om)[0], size))
    left, right = (right_answer, wrong_answer) if t.side == LEFT else (wrong_answer, right_answer)
    shows = {"right": "structure image (colour)", "wrong": f"output of {om} for {od}/{op}"}
    return {
        **_refs(d, p, box, size, pairs, s, put),
        "left": left,
        "right": right,
        "left_shows": shows["right"] if t.side == LEFT else shows["wrong"],
        "right_shows": shows["wrong"] if t.side == LEFT else shows["right"],
    }


# ------------------------------------------------------------------------------------ outputs
def _prepare_dest(dest: Path, force: bool) -> None:
    existing = [p for p in (dest / BATCH, dest / KEY, dest / IMAGES) if p.exists()]
    if (dest / "lab" / "results.csv").exists():
        raise UserError(f"{dest}/lab/results.csv holds lab judgments of the study already exported there; "
                        "move that folder away or choose another --dest")
    if existing and not force:
        raise UserError(f"{dest} already holds a study export; a new export gets new ids and would break the link "
                        "between published HITs and the answer key: choose another --dest or pass --force")
    if (dest / IMAGES).exists():
        for p in (dest / IMAGES).iterdir():
            if p.is_file() and p.suffix == ".png" and IMAGE_ID.match(p.stem):
                p.unlink()
    (dest / IMAGES).mkdir(parents=True, exist_ok=True)


_README = """# 2AFC study sheets

Rater-facing (publish these):

- `images/` - upload this folder so that its files are reachable under {base_url}/<id>.png
- `batch.csv` - the Mechanical Turk batch: one row per HIT ({hits} HITs of {trials_per_hit} trials)
- `template.html` - the HIT's HTML question (paste it as the project's design layout)

**Publish every HIT with {k} assignments** (Mechanical Turk: "Number of assignments per task"
= {k}; API: `MaxAssignments={k}`). Every comparison sits in exactly one HIT, and Mechanical
Turk never gives one worker two assignments of the same HIT, so each comparison is judged by
{k} different workers: {judgments} judgments in all, {assignments} assignments to pay for.
{cap}
Download the batch results CSV when done and run

    splice study analyze --results Batch_results.csv --key private/answer_key.csv

Private (never upload): `private/answer_key.csv`, `private/export.json`.

Lab study in a browser instead: `splice study serve --study <this folder>` (each HIT also gets
at most {k} lab raters there).
"""

_CAP = """
Cap of HITs per worker: {n}. Mechanical Turk cannot enforce it by itself: the HIT's
instructions ask workers to do at most {n}, and `splice study analyze` keeps only each worker's
first {n} HITs (as they appear in the results) and counts the rest ("over cap"). To stop it
at the source, give workers a custom qualification and revoke it once they reach {n}.
"""


def export_study(s: ExportSettings) -> ExportResult:
    """Write the study sheets of ``s`` (see the module docstring)."""
    from eval.aggregate import load_results  # owned by eval; import here to keep `import eval.study` light

    check_dest(s.dest, s.run_dir)
    methods = [s.ours, *s.baselines]
    if not s.baselines:
        raise ConfigError("--baselines is empty: name at least one baseline method")
    if s.ours in s.baselines:
        raise ConfigError(f"--ours {s.ours!r} is also listed in --baselines")
    if len(set(s.baselines)) != len(s.baselines):
        raise ConfigError("--baselines lists a method twice")
    if s.long_side < 64:
        raise ConfigError(f"--size must be at least 64 pixels, got {s.long_side}")
    base_url = _check_base_url(s.base_url, methods)
    jobs = _select_jobs(load_results(s.run_dir), s)

    have = {(d, p, m) for d, p, m in zip(jobs["dataset"], jobs["pair_id"], jobs["method"])}
    pairs_all = sorted({(d, p) for d, p, _ in have})
    items: list[Item] = []
    skipped = {b: 0 for b in s.baselines}
    for d, p in pairs_all:
        for b in s.baselines:
            if (d, p, s.ours) in have and (d, p, b) in have:
                items.append(Item(d, p, b))
            else:
                skipped[b] += 1
    for b, n in skipped.items():
        if n:
            log.warning("%d pair(s) lack a finished output of %s or %s: not compared", n, s.ours, b)
    vig_pairs = {(d, p): sorted(m for m in methods if (d, p, m) in have)
                 for d, p in pairs_all if (d, p, s.ours) in have}
    plan: StudyPlan = design.plan_study(items, vig_pairs, s.judgments, s.vigilance, s.trials_per_hit, s.seed,
                                        s.max_hits_per_worker)

    random_jobs = sorted(f"{r.method}/{r.dataset}/{r.pair_id}" for r in jobs.itertuples() if r.random_weights)
    if random_jobs:
        log.warning("%d selected output(s) were made with RANDOMLY INITIALISED weights: the study measures nothing "
                    "about the methods (see private/export.json)", len(random_jobs))

    dest = Path(s.dest)
    _prepare_dest(dest, s.force)
    pairs = _Pairs(jobs, s.data_root)
    put = _ImageWriter(dest / IMAGES, s.seed)
    url = lambda image_id: f"{base_url}/{image_id}.png"  # noqa: E731

    batch_rows, key_rows = [], []
    for hit in plan.hits:
        row: list[Any] = [hit.hit_id]
        for slot, t in enumerate(hit.trials, start=1):
            view = (_render_comparison if t.kind == "comparison" else _render_vigilance)(t, pairs, s, put)
            row += [t.trial_id, *(url(view[f]) for f in TRIAL_FIELDS[1:])]
            comp = t.kind == "comparison"
            dataset, pair_id = (t.item.dataset, t.item.pair_id) if comp else t.pair  # type: ignore[union-attr,misc]
            key_rows.append([
                t.trial_id, hit.hit_id, slot, t.kind, dataset, pair_id, s.ours,
                t.item.baseline if comp else "",  # type: ignore[union-attr]
                t.side if comp else "", "" if comp else t.side,
                view["left_shows"], view["right_shows"], view["ref_a"], view["ref_b"], view["left"], view["right"],
                pairs.job(dataset, pair_id, s.ours).variant,
                pairs.job(dataset, pair_id, t.item.baseline).variant if comp else "",  # type: ignore[union-attr]
                "" if comp else t.other[0], "" if comp else t.other[1], "" if comp else t.other_method,  # type: ignore
            ])  # fmt: skip
        batch_rows.append(row)

    header = batch_header(plan.trials_per_hit)
    write_csv(dest / BATCH, header, batch_rows)
    atomic_write_text(dest / TEMPLATE, mturk_template(plan.trials_per_hit, plan.max_hits_per_worker))
    write_csv(dest / KEY, KEY_COLUMNS, key_rows)
    counts = plan.counts()
    record = {
        "export_version": EXPORT_VERSION,
        "question": QUESTION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(s).items()},
        "base_url": base_url,
        "trials_per_hit": plan.trials_per_hit,
        "vigilance_per_hit": plan.vigilance_per_hit,
        "assignments_per_hit": plan.judgments,
        "max_hits_per_worker": plan.max_hits_per_worker,
        "counts": counts,
        "items": len(items),
        "skipped_pairs": skipped,
        "images": len(put.by_hash),
        "random_weights": bool(random_jobs),
        "random_weight_jobs": random_jobs,
        "variants": {m: sorted(set(jobs[jobs["method"] == m]["variant"])) for m in methods},
    }
    atomic_write_json(dest / RECORD, record)
    cap = _CAP.format(n=plan.max_hits_per_worker) if plan.max_hits_per_worker else ""
    atomic_write_text(dest / "README.md", _README.format(
        base_url=base_url, trials_per_hit=plan.trials_per_hit, hits=counts["hits"], k=plan.judgments,
        judgments=counts["judgments"], assignments=counts["assignments"], cap=cap))
    _warn_leaks(dest, methods)
    return ExportResult(dest=dest, counts=counts, n_images=len(put.by_hash), items=len(items),
                        skipped_pairs=skipped, random_weights=random_jobs)


def _warn_leaks(dest: Path, methods: list[str]) -> None:
    """A last look at the rater-facing text files for method names (tests check this strictly)."""
    for name in (BATCH, TEMPLATE):
        text = (dest / name).read_text(encoding="utf-8").lower()
        for m in methods:
            if len(m) >= 3 and re.search(rf"(?<![a-z0-9]){re.escape(m.lower())}(?![a-z0-9])", text):
                log.warning("the word %r (a method name) appears in %s, which raters see", m, dest / name)


def parse_variants(values: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["splice=s0-abc123"]`` -> ``{"splice": "s0-abc123"}``."""
    out = {}
    for v in values:
        m, sep, variant = v.partition("=")
        if not sep or not re.match(r"^s\d+-[0-9a-zA-Z]+$", variant.strip()):
            raise ConfigError(f"--variant {v!r}: expected METHOD=s<seed>-<config_hash>, e.g. splice=s0-3f2a9c1b7d4e")
        out[m.strip()] = variant.strip()
    return out

