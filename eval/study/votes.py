"""The votes of a 2AFC study as one long table: one row per judgment, from any platform.

``splice study analyze --votes FILE.csv`` reads it; the Mechanical Turk and lab readers
(:mod:`eval.study.results`) produce the same table, and ``analyze --export-votes FILE.csv``
writes it. PROTOCOL.md (version 2), "2AFC user study"; the Splice paper's Table 1 (Tumanyan et
al., CVPR 2022). The header::

    rater,dataset,pair,a,b,chosen,correct

- ``rater``: who judged (any id); ``dataset`` and ``pair``: the image pair the trial showed;
- ``a``, ``b``: the two alternatives, as method names (in tables exported by this suite, ``a`` was
  shown on the left);
- ``chosen``: ``a``'s or ``b``'s name, or empty when the rater gave no answer;
- ``correct``: empty for a normal trial; on a vigilance (catch) trial it names the right answer
  (``a`` or ``b``). The catch trials of our exports name their alternatives
  :data:`CATCH_RIGHT` (image A in colour) and :data:`CATCH_WRONG` (another pair's output).

A sidecar ``FILE.provenance.json`` (written by ``--export-votes``, optional when reading) says
whether the outputs came from randomly initialised models: ``{"random_weights": true}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from splice.core.atomic import atomic_write_json
from splice.core.errors import UserError

from .csvsafe import read_csv_lines, write_csv

VOTE_COLUMNS = ["rater", "dataset", "pair", "a", "b", "chosen", "correct"]
CATCH_RIGHT = "catch:image-A-in-colour"
CATCH_WRONG = "catch:output-of-another-pair"
PROVENANCE_SUFFIX = ".provenance.json"


def ordered_methods(votes: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each vote's two methods in a fixed order (``lo`` < ``hi``): with dataset and pair, the key of a comparison,
    whichever side each method was shown on."""
    return votes[["a", "b"]].min(axis=1), votes[["a", "b"]].max(axis=1)


def provenance_path(votes_csv: str | os.PathLike) -> Path:
    """``votes.csv`` -> ``votes.provenance.json`` (next to it)."""
    p = Path(votes_csv)
    return p.with_name(p.stem + PROVENANCE_SUFFIX)


def read_votes(path: str | os.PathLike) -> pd.DataFrame:
    """The long table at ``path`` (columns :data:`VOTE_COLUMNS`, strings), checked row by row.

    Extra columns are ignored. Every row has as many fields as the header. Every problem is a one-line
    :class:`UserError` naming the row's line.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--votes {path}: file not found; it is a CSV with the header {','.join(VOTE_COLUMNS)}")
    try:
        header, records = read_csv_lines(path)
    except (UnicodeDecodeError, OSError, ValueError) as e:
        raise UserError(f"--votes {path}: cannot read it as a UTF-8 CSV ({e})") from None
    missing = [c for c in VOTE_COLUMNS if c not in header]
    if missing:
        raise UserError(f"--votes {path} lacks the column(s) {', '.join(missing)}; the header must be "
                        f"{','.join(VOTE_COLUMNS)}")
    out = []
    for n, cells in records:
        where = f"--votes {path} line {n}"
        if len(cells) != len(header):  # a shifted or cut row would be read as other columns, or as no answer
            raise UserError(f"{where} has {len(cells)} fields, the header has {len(header)}; every row has one "
                            f"field per column ({','.join(header)}), empty ones too")
        row = dict(zip(header, cells))
        r = {c: (row.get(c) or "").strip() for c in VOTE_COLUMNS}
        for c in ("rater", "dataset", "pair", "a", "b"):
            if not r[c]:
                raise UserError(f"{where}: the column {c!r} is empty; every row names its rater, data set, pair, "
                                "a and b")
        if r["a"] == r["b"]:
            raise UserError(f"{where}: a and b are both {r['a']!r}; a trial compares two different methods")
        if r["chosen"] not in ("", r["a"], r["b"]):
            raise UserError(f"{where}: chosen is {r['chosen']!r} but the alternatives are {r['a']!r} and {r['b']!r}; "
                            "chosen must be one of them (or empty for no answer)")
        if r["correct"] not in ("", r["a"], r["b"]):
            raise UserError(f"{where}: correct is {r['correct']!r}, neither a ({r['a']!r}) nor b ({r['b']!r}); on a "
                            "catch trial it names the right answer, otherwise it is empty")
        out.append(r)
    if not out:
        raise UserError(f"--votes {path} holds no votes")
    return pd.DataFrame(out, columns=VOTE_COLUMNS)


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """The JSON object in ``path`` ({} when the file does not exist); otherwise one line ending in ``fix``."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); {fix}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a JSON object; {fix}")
    return data


def read_provenance(votes_csv: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of ``votes_csv`` ({} when there is none)."""
    return read_json_object(provenance_path(votes_csv), 'fix it (e.g. {"random_weights": true}) or remove it')


def write_votes(path: str | os.PathLike, votes: pd.DataFrame, provenance: dict[str, Any] | None = None) -> Path:
    """Write the long table (guarded CSV) and, when given, its provenance sidecar."""
    path = Path(path)
    write_csv(path, VOTE_COLUMNS, votes[VOTE_COLUMNS].itertuples(index=False))
    if provenance is not None:
        atomic_write_json(provenance_path(path), provenance)
    return path
