"""The grid's thumbnails and one page per pair: every output at full size with its metric values.

For each data set of a report, :func:`write_thumbnails` saves every image cell of the comparison grid
(inputs, and outputs already placed in the structure image's frame by :mod:`reports.grids`) as a small
JPEG under ``thumbs/<data set>/<pair>/``, and :func:`write_pair_pages` writes ``pairs/<data set>/<pair>.html``
with the structure and appearance images and every job of the pair (every method configuration and seed)
at full size, with its state, seconds, peak memory and metric values; a job without a result shows its
state, why, and the command that fixes it (:mod:`splice.core.health`).

The images of a pair page are linked into ``pairs/<data set>/<pair>/`` (a hard link when the run store is on
the same file system, else a copy), so the report folder stays self-contained: copied or zipped, every page
still shows every image.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from splice.core.atomic import atomic_write_bytes, atomic_write_text
from splice.core.health import DONE, LABELS, Fixer, JobHealth
from splice.core.record import JobKey

from .page import CSS, SCRIPT, GridFiles, e, seeds_text

THUMB_QUALITY = 88
#: (label, column, digits) of the per-job values a pair page shows, when the column holds a value
VALUES = (("layout IoU", "iou", 3), ("instance-matched IoU", "matched_iou", 3),
          ("structure distance", "structure_distance", 4), ("appearance distance", "appearance_distance", 4),
          ("appearance cosine", "appearance_cosine", 3), ("seconds", "seconds", 2),
          ("peak memory MB", "peak_memory_mb", 0))  # fmt: skip


def safe_stem(name: str, taken: set[str]) -> str:
    """A file-name-safe stem for ``name``, unique within ``taken`` (which it joins)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "x"
    base, i = stem, 2
    while stem in taken:
        stem, i = f"{base}_{i}", i + 1
    taken.add(stem)
    return stem


def link_or_copy(src: str | Path, dst: Path) -> None:
    """Put ``src`` at ``dst``: a hard link (no space used) when possible, else a copy; atomically replaced."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def write_thumbnails(grid: GridFiles, dest: Path, stem: str, pair_stems: dict[str, str]) -> list[str]:
    """Save every image cell of ``grid`` as ``thumbs/<stem>/<pair>/<column>.jpg``; fills ``grid.thumbs``."""
    written = []
    for page in grid.pages:
        for r, pair in enumerate(page.row_labels):
            for c, cell in enumerate(page.cells[r]):
                if cell.image is None:
                    continue
                rel = f"thumbs/{stem}/{pair_stems[pair]}/{c:02d}.jpg"
                buf = io.BytesIO()
                cell.image.convert("RGB").save(buf, format="JPEG", quality=THUMB_QUALITY)
                atomic_write_bytes(dest / rel, buf.getvalue())
                grid.thumbs[(pair, c)] = rel
                written.append(rel)
    return written


def _fmt(value: Any, digits: int) -> str | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else f"{x:.{digits}f}"


def job_values(row: pd.Series) -> list[tuple[str, str]]:
    """(label, text) of what is known of one job: its metric values (or why there is none), seconds, memory."""
    out = []
    if bool(row.get("iou_scored")) and bool(row.get("iou_excluded")):
        out.append(("layout IoU", f"excluded: {row.get('iou_exclusion_reason') or 'no detection in the structure'}"))
    for label, column, digits in VALUES:
        text = _fmt(row.get(column), digits)
        if text is not None:
            out.append((label, text))
    return out


def _figure(head: str, src: str | None, alt: str, caption: str, anchor: str = "", state: str = "",
            why: str = "") -> str:  # fmt: skip
    """One picture of a pair page: a heading, the image at full size (a link to the file) or, for a job
    without a result, its state and why; then the caption."""
    ident = f' id="{e(anchor)}"' if anchor else ""
    if src is not None:
        picture = f'<a href="{e(src)}"><img src="{e(src)}" alt="{e(alt)}"></a>'
    else:
        picture = f'<div class="st st-{e(state)} big">{e(LABELS.get(state, state))}' + \
            (f"<br><small>{e(why)}</small>" if why else "") + "</div>"  # fmt: skip
    return f"<figure{ident}><div class=head>{head}</div>{picture}<figcaption>{caption}</figcaption></figure>"


def _nav(grid: GridFiles, pairs: list[str], i: int, pair_stems: dict[str, str]) -> str:
    links = [f'<a href="../../index.html#grid-{e(grid.dataset)}">← report</a>']
    if i:
        links.append(f'<a href="{e(pair_stems[pairs[i - 1]])}.html">← {e(pairs[i - 1])}</a>')
    if i + 1 < len(pairs):
        links.append(f'<a href="{e(pair_stems[pairs[i + 1]])}.html">{e(pairs[i + 1])} →</a>')
    return f"<p>{' · '.join(links)}</p>"


def write_pair_pages(df: pd.DataFrame, grid: GridFiles, dest: Path, stem: str, pair_stems: dict[str, str],
                     health: dict[JobKey, JobHealth], fixer: Fixer | None, title: str) -> list[str]:  # fmt: skip
    """``pairs/<stem>/<pair>.html`` for every pair of ``grid`` and the images they show; fills
    ``grid.pair_pages``; returns the files written (relative to ``dest``)."""
    written: list[str] = []
    columns = grid.pages[0].columns
    pairs = [p for page in grid.pages for p in page.row_labels]
    sub = df[df["dataset"] == grid.dataset]
    for i, pair in enumerate(pairs):
        pstem = pair_stems[pair]
        media = f"pairs/{stem}/{pstem}"
        jobs = sub[sub["pair_id"].astype(str) == pair]

        def put(src: str, name: str) -> str:
            link_or_copy(src, dest / media / name)
            written.append(f"{media}/{name}")
            return f"{pstem}/{name}"

        figures = []
        for c, col in enumerate(columns):
            head = f"<b>{e(col.title)}</b>" + (f" <span class={'alert' if col.random_weights else 'muted'}>"
                                               f"{e(col.subtitle)}</span>" if col.subtitle else "")  # fmt: skip
            if col.role in ("structure", "appearance"):
                path = next((p for p in jobs[col.role] if isinstance(p, str) and p), None)
                found = bool(path) and Path(path).is_file()
                src = put(path, f"{col.role}{Path(path).suffix.lower() or '.png'}") if found else None
                figures.append(_figure(f"<b>{col.role} image</b>", src, f"{col.role} image",
                                       f"<code>{e(path or 'not recorded')}</code>", f"col-{c}",
                                       "failed", "" if found else "not found"))  # fmt: skip
                continue
            sel = jobs[(jobs["method"] == col.method) & (jobs["config_hash"].astype(str) == col.config_hash)]
            if sel.empty:
                figures.append(_figure(head, None, "", "no job of this configuration for this pair", f"col-{c}",
                                       "not-run"))  # fmt: skip
            for n, (_, row) in enumerate(sel.sort_values("seed", kind="stable").iterrows()):
                state = row["state"] if isinstance(row.get("state"), str) else DONE
                values = "".join(f"<tr><th>{e(k)}</th><td class=num>{e(v)}</td></tr>" for k, v in job_values(row))
                facts = (f"{seeds_text([int(row['seed'])])} · <span class=\"st st-{e(state)}\">"
                         f"{e(LABELS.get(state, state))}</span>")  # fmt: skip
                anchor = f"col-{c}" if n == 0 else ""
                out_path = row["output"] if isinstance(row.get("output"), str) else None
                if state == DONE and out_path and Path(out_path).is_file():
                    src = put(out_path, f"{c:02d}-{safe_stem(col.method or 'method', set())}-s{int(row['seed'])}"
                                        f"{Path(out_path).suffix.lower() or '.png'}")  # fmt: skip
                    table = f"<table class=kv>{values}</table>" if values else ""
                    figures.append(_figure(head, src, f"{col.title} output", facts + table, anchor))
                    continue
                key = JobKey(grid.dataset, pair, str(row["method"]), int(row["seed"]), str(row["config_hash"]))
                fix = fixer.command(health[key]) if fixer is not None and key in health else None
                caption = f"{facts}<br><code>{e(row['job_dir'])}</code>" + \
                    (f"<br>fix: <code>{e(fix)}</code>" if fix else "")  # fmt: skip
                why = row["error"] if isinstance(row.get("error"), str) else ""
                figures.append(_figure(head, None, "", caption, anchor, state, why))
        html = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>{e(grid.dataset)} / {e(pair)} · {e(title)}</title><style>{CSS}{PAIR_CSS}</style></head>",
                "<body>", '<div class="banner broken" id="banner-broken" hidden></div>', "<main>",
                _nav(grid, pairs, i, pair_stems), f"<h1>{e(grid.dataset)} / {e(pair)}</h1>",
                "<p class=muted>Every image at full size (click to open the file); each output as the method "
                "wrote it, with its metric values.</p>",
                f'<div class="outputs">{"".join(figures)}</div>',
                "</main>", f"<script>{SCRIPT}</script></body></html>"]  # fmt: skip
        rel = f"pairs/{stem}/{pstem}.html"
        atomic_write_text(dest / rel, "\n".join(html) + "\n")
        grid.pair_pages[pair] = rel
        written.append(rel)
    return written


PAIR_CSS = """
.outputs{display:flex;flex-wrap:wrap;gap:0 22px;align-items:flex-start}
.outputs figure{max-width:100%} .outputs figure img{max-width:100%}
.outputs .head{margin:0 0 4px}
.st.big{display:block;padding:24px;min-width:200px;max-width:360px;font-size:14px;white-space:normal}
"""
