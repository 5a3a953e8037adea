"""The lab version of the 2AFC study: the exported trials for one rater at a time.

``splice study serve`` (:mod:`eval.study.server`) shows the trials of an export in a
browser on the experimenter's machine, instead of Mechanical Turk. This module holds its
state, independent of HTTP:

- the trials come from the rater-facing ``batch.csv`` (opaque ids, no key needed); from
  ``private/export.json`` only ``k`` (assignments per HIT) and the cap of HITs per worker;
- as on Mechanical Turk, every HIT is worked by at most ``k`` different raters and a rater takes
  a HIT at most once, so every comparison (which sits in exactly one HIT, see
  :mod:`eval.study.design`) gets at most ``k`` judgments, each by a different rater. A new rater
  is given, once, the HITs with the fewest raters so far that still need one (batch order breaks
  ties), up to the cap of HITs per worker; a rater who comes back continues the same HITs;
- every answer is appended at once to ``<study>/lab/results.csv`` in Mechanical Turk's
  results format (one row per answered trial), so a session can stop at any point and
  continue later: progress is read back from that file. The file name is fixed; nothing
  a rater sends becomes part of a path.

Protocol: PROTOCOL.md, "2AFC user study" (Splice paper, Tumanyan et al., CVPR 2022, Table 1).
"""

from __future__ import annotations

import csv
import io
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from splice.core.atomic import atomic_write_text
from splice.core.errors import UserError

from .csvsafe import guard_cell, read_csv_rows
from .question import CHOICES, batch_header
from .results import LAB_ASSIGNMENT, image_id_of, read_export_record, results_header

RATER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
TRIAL_ID = re.compile(r"^[0-9a-f]{12}$")
RESULTS = Path("lab") / "results.csv"


class RequestError(Exception):
    """A request the lab page refuses (bad rater name, unknown trial, ...), with its HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LabTrial:
    trial_id: str
    hit: str
    slot: int
    ref_a: str  # image ids
    ref_b: str
    left: str
    right: str


def check_rater(name: str) -> str:
    name = (name or "").strip()
    if not RATER_PATTERN.match(name):
        raise RequestError("rater names are 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


class LabStudy:
    """Trials, progress and the results file of one exported study folder."""

    def __init__(self, study_dir: str | os.PathLike):
        self.root = Path(study_dir).resolve()
        batch = self.root / "batch.csv"
        if not batch.is_file():
            raise UserError(f"{batch} not found: point --study to a folder written by `splice study export`")
        self.images_dir = self.root / "images"
        header, rows = read_csv_rows(batch)
        slots = sum(1 for c in header if re.fullmatch(r"trial_\d+_id", c))
        if not rows or slots < 1 or header != batch_header(slots):
            raise UserError(f"{batch} is not a batch CSV written by `splice study export`; re-export the study")
        self.batch_columns, self.slots = header, slots
        self.rows: dict[str, dict[str, str]] = {}
        self.hits: dict[str, list[LabTrial]] = {}  # batch order
        self.trials: dict[str, LabTrial] = {}
        self.image_ids: set[str] = set()
        for row in rows:
            hit = row["hit"]
            if hit in self.hits:
                raise UserError(f"{batch} lists HIT {hit} twice; re-export the study")
            self.rows[hit] = row
            self.hits[hit] = []
            for k in range(1, slots + 1):
                ids = [image_id_of(row[f"trial_{k}_{f}"]) for f in ("ref_a", "ref_b", "left", "right")]
                t = LabTrial(row[f"trial_{k}_id"], hit, k, *ids)
                if not TRIAL_ID.match(t.trial_id) or not all(ids):
                    raise UserError(f"{batch}: HIT {hit} slot {k} has no valid trial or image id; re-export the study")
                self.trials[t.trial_id] = t
                self.hits[hit].append(t)
                self.image_ids.update(ids)
        absent = [i for i in sorted(self.image_ids) if not (self.images_dir / f"{i}.png").is_file()]
        if absent:
            raise UserError(f"{len(absent)} image(s) of {batch} are missing from {self.images_dir} "
                            f"(e.g. {absent[0]}.png); copy the export's images/ folder back")
        record = read_export_record(self.root / "private")  # only k and the cap; nothing private is served
        k, cap = record.get("assignments_per_hit"), record.get("max_hits_per_worker")
        self.raters_per_hit, self.max_hits_per_rater = (int(k) if k else None), (int(cap) if cap else None)
        self.results_path = self.root / RESULTS
        self.results_columns = results_header(self.batch_columns, self.slots)
        self.answers: dict[str, dict[str, str]] = {}  # rater -> trial id -> choice
        self.touched: dict[str, list[str]] = {}  # rater -> HITs answered in, in the order first answered
        self.plans: dict[str, list[str]] = {}  # rater -> HITs given to them (this process)
        self.shown: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()
        self._load_results()

    # -- state -------------------------------------------------------------------------------
    def _load_results(self) -> None:
        if not self.results_path.exists():
            return
        header, rows = read_csv_rows(self.results_path)
        if header != self.results_columns:
            raise UserError(f"{self.results_path} does not belong to this export (other columns); "
                            "move it away to start a new lab study")
        for row in rows:
            rater = row["WorkerId"]
            for k in range(1, self.slots + 1):
                choice = row.get(f"Answer.trial_{k}", "")
                if choice:
                    t = self.trials.get(row[f"Input.trial_{k}_id"])
                    if t is None:
                        raise UserError(f"{self.results_path} holds a trial this export does not have; "
                                        "move it away to start a new lab study")
                    self.answers.setdefault(rater, {})[t.trial_id] = choice
                    hits = self.touched.setdefault(rater, [])
                    if t.hit not in hits:
                        hits.append(t.hit)

    def raters_of(self, hit: str) -> set[str]:
        """Raters who answered in ``hit`` or were given it."""
        return {r for r, hits in self.touched.items() if hit in hits} | {
            r for r, hits in self.plans.items() if hit in hits}

    def plan_for(self, rater: str) -> list[str]:
        """The HITs of ``rater``: those they started, then the open HITs with the fewest raters, up to the cap."""
        if rater not in self.plans:
            mine = list(self.touched.get(rater, []))
            room = (self.max_hits_per_rater or len(self.hits)) - len(mine)
            taken = {h: len(self.raters_of(h)) for h in self.hits if h not in mine}  # each scans every rater: once
            open_hits = [h for h, n in taken.items() if self.raters_per_hit is None or n < self.raters_per_hit]
            order = {h: n for n, h in enumerate(self.hits)}
            open_hits.sort(key=lambda h: (taken[h], order[h]))
            self.plans[rater] = mine + open_hits[:max(room, 0)]
        return self.plans[rater]

    def _trials_of(self, rater: str) -> list[LabTrial]:
        return [t for h in self.plan_for(rater) for t in self.hits[h]]

    def progress(self, rater: str) -> tuple[int, int]:
        with self.lock:
            trials = self._trials_of(rater)
            done = self.answers.get(rater, {})
            return sum(t.trial_id in done for t in trials), len(trials)

    def next_trial(self, rater: str) -> LabTrial | None:
        with self.lock:
            done = self.answers.get(rater, {})
            for t in self._trials_of(rater):
                if t.trial_id not in done:
                    self.shown.setdefault((rater, t.trial_id), time.time())
                    return t
            return None

    def record(self, rater: str, trial_id: str, choice: str) -> None:
        """Append one judgment; only the rater's next unanswered trial is accepted."""
        rater = check_rater(rater)
        if choice not in CHOICES:
            raise RequestError("choice must be 'left' or 'right'")
        if not TRIAL_ID.match(trial_id or "") or trial_id not in self.trials:
            raise RequestError("unknown trial", status=404)
        with self.lock:
            done = self.answers.setdefault(rater, {})
            expected = next((t for t in self._trials_of(rater) if t.trial_id not in done), None)
            if expected is None or expected.trial_id != trial_id:
                raise RequestError("this trial is answered already or is not the current one", status=409)
            now = time.time()
            shown = self.shown.pop((rater, trial_id), now)
            self._append(rater, expected, choice, shown, now)
            done[trial_id] = choice
            hits = self.touched.setdefault(rater, [])
            if expected.hit not in hits:
                hits.append(expected.hit)

    def _append(self, rater: str, t: LabTrial, choice: str, shown: float, now: float) -> None:
        iso = lambda x: datetime.fromtimestamp(x, timezone.utc).isoformat(timespec="seconds")  # noqa: E731
        row = self.rows[t.hit]
        assignment = f"{LAB_ASSIGNMENT}{t.hit}-{rater}"
        values = [t.hit, assignment, rater, "Submitted", iso(shown), iso(now), round(now - shown)]
        values += [row[c] for c in self.batch_columns]
        values += [choice if k == t.slot else "" for k in range(1, self.slots + 1)]
        if not self.results_path.exists():
            atomic_write_text(self.results_path, _csv_line(self.results_columns))
        with open(self.results_path, "a", encoding="utf-8", newline="") as f:
            f.write(_csv_line(values))
            f.flush()
            os.fsync(f.fileno())

    def image_path(self, image_id: str) -> Path | None:
        """The file of a known image id, or None (ids are checked against the export, never used raw)."""
        if image_id not in self.image_ids:
            return None
        return self.images_dir / f"{image_id}.png"


def _csv_line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([guard_cell(v) for v in values])
    return buf.getvalue()
