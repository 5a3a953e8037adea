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
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from splice.core.errors import UserError

from .csvsafe import read_csv_rows

META = ["HITId", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime", "SubmitTime", "WorkTimeInSeconds"]
_SLOT = re.compile(r"^Input\.trial_(\d+)_id$")
_IMAGE_ID = re.compile(r"([0-9a-f]{16})\.png$")

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

    Slots without an answer are kept with ``answer == ""`` so callers can count them.
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
            for k in slots:
                trial = row.get(f"Input.trial_{k}_id", "").strip()
                if not trial:
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
