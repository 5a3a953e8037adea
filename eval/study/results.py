"""The results CSV of the 2AFC study, as Mechanical Turk returns it and as the lab page writes it.

Mechanical Turk's batch results have one row per assignment: bookkeeping columns
(``HITId``, ``AssignmentId``, ``WorkerId``, ``AssignmentStatus``, times), then
``Input.<column>`` for every column of the batch CSV and ``Answer.<field>`` for every form
field. The HIT template of :mod:`eval.study.question` names its fields ``trial_<k>`` with
values ``left``/``right``; Crowd HTML radio buttons would instead give
``Answer.trial_<k>.left`` = ``true`` (also accepted here).

The lab server (:mod:`eval.study.server`) writes the same columns, one row per answered
trial (only that trial's ``Answer`` cell filled), so :mod:`eval.study.analyze` reads both
alike and a lab session survives being stopped at any trial. Study protocol: PROTOCOL.md,
after the Splice paper (Tumanyan et al., CVPR 2022, Table 1).

:func:`votes_from_results` joins those judgments with the private answer key and turns them
into the long table of votes (:mod:`eval.study.votes`) that every analysis reads. On the way it
drops, and counts, what the platform says does not count: rejected assignments, the same
assignment read twice, and a worker's HITs beyond the export's cap of HITs per worker.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from splice.core.errors import UserError

from .csvsafe import read_csv_rows
from .votes import CATCH_RIGHT, CATCH_WRONG, VOTE_COLUMNS, read_json_object

META = ["HITId", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime", "SubmitTime", "WorkTimeInSeconds"]
_SLOT = re.compile(r"^Input\.trial_(\d+)_id$")
_IMAGE_ID = re.compile(r"([0-9a-f]{16})\.png$")

LAB_ASSIGNMENT = "lab-"  # assignment ids of the lab page's rows (eval.study.lab)
JUDGMENT_COLUMNS = ["source", "worker", "assignment", "hit", "status", "slot", "trial_id", "answer", "left_image",
                    "right_image"]  # fmt: skip


def results_header(batch_columns: list[str], slots: int) -> list[str]:
    return META + [f"Input.{c}" for c in batch_columns] + [f"Answer.trial_{k}" for k in range(1, slots + 1)]


def image_id_of(url: str) -> str:
    """The opaque image id at the end of an image URL ('' when there is none)."""
    m = _IMAGE_ID.search(url.strip())
    return m.group(1) if m else ""


def _answer(row: dict[str, str], k: int) -> str:
    value = row.get(f"Answer.trial_{k}", "").strip().lower()
    if value:
        return value
    for side in ("left", "right"):  # Crowd HTML radio-button style
        for col in (f"Answer.trial_{k}.{side}", f"Answer.trial_{k}.{side}.on"):
            if row.get(col, "").strip().lower() == "true":
                return side
    return ""


def read_judgments(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """Every (row, trial slot) of the results files as one row (columns: ``JUDGMENT_COLUMNS``).

    Slots without an answer are kept with ``answer == ""`` so callers can count them, except in the
    lab page's rows (assignment ids ``lab-...``), which hold one answered slot each.
    """
    records = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"results file not found: {path}; download the batch results CSV from Mechanical Turk "
                            "or point to <study>/lab/results.csv")
        try:
            header, rows = read_csv_rows(path)
        except (UnicodeDecodeError, OSError) as e:
            raise UserError(f"cannot read results file {path} as UTF-8 CSV ({e})") from None
        slots = sorted(int(m.group(1)) for c in header if (m := _SLOT.match(c)))
        if not slots or "WorkerId" not in header:
            raise UserError(f"{path} is not a study results CSV: it needs WorkerId and Input.trial_<k>_id columns "
                            "(the results Mechanical Turk returns for the exported batch.csv)")
        for row in rows:
            # The lab page writes one row per answered trial (only that slot answered): its other slots were
            # not skipped, they are answered in their own rows or were never shown.
            lab = row.get("AssignmentId", "").strip().startswith(LAB_ASSIGNMENT)
            for k in slots:
                trial = row.get(f"Input.trial_{k}_id", "").strip()
                if not trial or (lab and not _answer(row, k)):
                    continue
                records.append({
                    "source": str(path),
                    "worker": row.get("WorkerId", "").strip(),
                    "assignment": row.get("AssignmentId", "").strip(),
                    "hit": row.get("HITId", "").strip() or row.get("Input.hit", "").strip(),
                    "status": row.get("AssignmentStatus", "").strip(),
                    "slot": k,
                    "trial_id": trial,
                    "answer": _answer(row, k),
                    "left_image": image_id_of(row.get(f"Input.trial_{k}_left", "")),
                    "right_image": image_id_of(row.get(f"Input.trial_{k}_right", "")),
                })  # fmt: skip
    return pd.DataFrame(records, columns=JUDGMENT_COLUMNS)


# ------------------------------------------------------------------------------ the answer key
KEY_REQUIRED = ["trial_id", "kind", "dataset", "pair_id", "ours", "baseline", "ours_side", "correct_side", "left",
                "right", "left_shows", "right_shows"]  # fmt: skip
EXPORT_RECORD = "export.json"  # next to the key, in <study>/private/


def read_key(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--key {path}: answer key not found; it is <study>/private/answer_key.csv "
                        "from `splice study export`")
    header, rows = read_csv_rows(path)
    missing = [c for c in KEY_REQUIRED if c not in header]
    if missing:
        raise UserError(f"--key {path} is not a study answer key (missing columns: {', '.join(missing)})")
    key = pd.DataFrame(rows, columns=header)
    if key["trial_id"].duplicated().any():
        raise UserError(f"--key {path} lists a trial id twice; re-export the study")
    return key


def read_export_record(private_dir: str | os.PathLike) -> dict[str, Any]:
    """``<study>/private/export.json`` ({} when it is missing)."""
    return read_json_object(Path(private_dir) / EXPORT_RECORD, "restore it from the export")


@dataclass
class PlatformVotes:
    """The long table of votes read from platform results, and what was dropped on the way."""

    votes: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


def _provenance(record: dict[str, Any], key_path: Path) -> dict[str, Any]:
    if not record:
        return {"source": str(key_path), "random_weights": None}
    return {
        "source": str(Path(key_path).parent / EXPORT_RECORD),
        "random_weights": bool(record.get("random_weights")),
        "random_weight_jobs": len(record.get("random_weight_jobs") or []),
        "assignments_per_hit": record.get("assignments_per_hit"),
        "max_hits_per_worker": record.get("max_hits_per_worker"),
    }


def votes_from_results(paths: list[str | os.PathLike], key_path: str | os.PathLike,
                       max_hits_per_worker: int | None = None) -> PlatformVotes:
    """Results CSVs (Mechanical Turk's or the lab page's) + the answer key -> the long table of votes.

    Dropped and counted, in this order: judgments of rejected assignments; a slot read twice for one
    worker (the same results passed twice); a worker's HITs beyond ``max_hits_per_worker`` (default:
    the cap recorded by the export; a worker's HITs count in the order they appear in the files);
    answers that are neither ``left`` nor ``right``. Unanswered slots stay in the table with an
    empty ``chosen`` (a skipped catch trial matters). Row order follows the files.
    """
    key_path = Path(key_path)
    key = read_key(key_path)
    record = read_export_record(key_path.parent)
    cap = max_hits_per_worker if max_hits_per_worker is not None else record.get("max_hits_per_worker")
    j = read_judgments(paths)
    dropped = {"rows_read": len(j)}

    rejected = j["status"].str.lower().eq("rejected")
    dropped["rejected_assignment_judgments"] = int(rejected.sum())
    j = j[~rejected]
    dup = j.duplicated(["worker", "trial_id"], keep="first")
    dropped["duplicate_rows"] = int(dup.sum())
    j = j[~dup]
    over = pd.Series(False, index=j.index)
    if cap:
        hits = j[["worker", "hit"]].drop_duplicates()
        rank = hits.groupby("worker").cumcount()
        beyond = hits[rank >= int(cap)]
        gone = set(zip(beyond["worker"], beyond["hit"]))
        over = pd.Series(list(zip(j["worker"], j["hit"])), index=j.index).isin(gone)
        dropped["over_cap_assignments"] = len(beyond)
    else:
        dropped["over_cap_assignments"] = 0
    dropped["over_cap_judgments"] = int(over.sum())
    j = j[~over]
    invalid = j["answer"].ne("") & ~j["answer"].isin(["left", "right"])
    dropped["invalid_answers"] = int(invalid.sum())
    j = j[~invalid]

    unknown = sorted(set(j["trial_id"]) - set(key["trial_id"]))
    if unknown:
        raise UserError(f"{len(unknown)} trial id(s) of the results (e.g. {unknown[0]}) are not in {key_path}: "
                        "the results and the key come from different exports")
    df = j.merge(key, on="trial_id", how="left", suffixes=("", "_key"))
    shown = df["left_image"].ne("") | df["right_image"].ne("")
    bad = shown & ((df["left_image"] != df["left"]) | (df["right_image"] != df["right"]))
    if bad.any():
        t = df[bad].iloc[0]
        raise UserError(f"trial {t['trial_id']} showed other images than {key_path} records for it: "
                        "the results and the key come from different exports")

    vig = df["kind"].eq("vigilance")
    left_right = df["correct_side"].eq("left")
    a = df["left_shows"].where(~vig, left_right.map({True: CATCH_RIGHT, False: CATCH_WRONG}))
    b = df["right_shows"].where(~vig, left_right.map({True: CATCH_WRONG, False: CATCH_RIGHT}))
    chosen = a.where(df["answer"].eq("left"), b.where(df["answer"].eq("right"), ""))
    votes = pd.DataFrame({
        "rater": df["worker"], "dataset": df["dataset"], "pair": df["pair_id"], "a": a, "b": b, "chosen": chosen,
        "correct": pd.Series(CATCH_RIGHT, index=df.index).where(vig, ""),
    }, columns=VOTE_COLUMNS).reset_index(drop=True)  # fmt: skip
    return PlatformVotes(votes=votes, dropped=dropped, provenance=_provenance(record, key_path))
