"""CSV cells that spreadsheets will not execute, and the reverse for reading them back.

Study sheets travel through spreadsheet programs (Mechanical Turk's batch upload, Excel,
LibreOffice). A cell that starts with ``= + - @``, a tab or a carriage return may be run
as a formula there (CSV/formula injection, OWASP). Every cell the 2AFC study writes
(PROTOCOL.md, "2AFC user study"; Splice, Tumanyan et al. CVPR 2022, Table 1) goes
through :func:`guard_cell`, which prefixes such cells with an apostrophe; :func:`unguard_cell`
undoes exactly that prefix when a sheet is read back.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Iterable, Sequence

from splice.core.atomic import atomic_write_text

DANGEROUS_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def guard_cell(value: Any) -> str:
    """``value`` as text, with a leading apostrophe when a spreadsheet could run it as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(DANGEROUS_PREFIXES):
        return "'" + text
    return text


def unguard_cell(text: str) -> str:
    """Undo :func:`guard_cell` (only an apostrophe followed by a dangerous character is removed)."""
    if len(text) >= 2 and text[0] == "'" and text[1:].startswith(DANGEROUS_PREFIXES):
        return text[1:]
    return text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A whole CSV document (RFC 4180 quoting, ``\\r\\n`` line ends) with every cell guarded."""
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([guard_cell(h) for h in header])
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row has {len(row)} cells, header has {len(header)}")
        writer.writerow([guard_cell(v) for v in row])
    return buf.getvalue()


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a guarded CSV atomically (UTF-8, no BOM)."""
    atomic_write_text(path, csv_text(header, rows))


def write_dict_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    write_csv(path, header, ([row.get(h, "") for h in header] for row in rows))


def read_csv_lines(path: str | os.PathLike) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Read a CSV (UTF-8, optional BOM) into its header and its non-blank records as ``(line, cells)``:
    the line number (1-based, in the file) where the record starts and its unguarded cells, as many as the
    file has (callers that need every record as wide as the header check it)."""
    with open(path, "r", encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = [unguard_cell(h).strip() for h in next(reader)]
        except StopIteration:
            return [], []
        records = []
        start = reader.line_num + 1
        for cells in reader:
            if any(c.strip() for c in cells):
                records.append((start, [unguard_cell(c) for c in cells]))
            start = reader.line_num + 1
    return header, records


def read_csv_rows(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """Read a CSV (UTF-8, optional BOM) into its header and rows of unguarded strings (a short row is padded
    with empty cells, the cells of a long one beyond the header dropped)."""
    header, records = read_csv_lines(path)
    return header, [dict(zip(header, cells + [""] * max(0, len(header) - len(cells)))) for _, cells in records]
