"""The grid's thumbnails and one page per pair: every output at full size with its metric values.

For each data set of a report, :func:`write_thumbnails` saves every image cell of the comparison grid
(inputs, and outputs already placed in the structure image's frame by :mod:`reports.grids`) as a small
JPEG under ``thumbs/<data set>/<pair>/``, and :func:`write_pair_pages` writes ``pairs/<data set>/<pair>.html``
with the structure and appearance images and every job of the pair (every method configuration and seed)
at full size, with its state, seconds, peak memory and its value of every metric of the registry
(:mod:`eval.scorers`, those with a value in the data set; layout metrics by the data set's segmenter, as in the
tables; the best of the pair's outputs in bold, arrows for the better direction); a job without a result shows
its state, why, and the command that fixes it (:mod:`splice.core.health`). Nothing here names a metric: a
metric added to the registry appears on every pair page.

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

from eval.metrics import METRICS, scored_metrics
from eval.scorers import SPECS
from eval.tables import metric_values, number_text
from splice.core.atomic import atomic_write_bytes, atomic_write_text
from splice.core.health import DONE, LABELS, Fixer, JobHealth
from splice.core.record import JobKey

from .overview import arrow
from .page import CSS, SCRIPT, GridFiles, e, seeds_text

THUMB_QUALITY = 88
#: (label, column, digits) of the job fields a pair page shows after the metric values, when they hold a value
JOB_FIELDS = (("seconds", "seconds", 2), ("peak memory MB", "peak_memory_mb", 0))


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


def _fmt(value: Any, digits: int | None) -> str | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else number_text(x, digits)


def metric_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Each job's value of every registry metric with a value in ``df`` (columns: metric keys, index: ``df``'s;
    NaN when not done, excluded or unscored); layout metrics by each data set's segmenter."""
    values = {k: metric_values(df, k) for k in scored_metrics()} if len(df) else {}
    return pd.DataFrame({k: v for k, v in values.items() if v.notna().any()}, index=df.index)


def best_values(values: pd.DataFrame) -> dict[str, float]:
    """metric -> the best value among ``values``' rows (one pair's outputs), for metrics two or more have."""
    best = {}
    for k in values.columns:
        v = values[k].dropna()
        if len(v) > 1:
            best[k] = float(v.max() if METRICS[k].higher_is_better else v.min())
    return best


def job_values(row: pd.Series, values: pd.Series | None = None, best: dict[str, float] | None = None
               ) -> list[tuple[str, str, bool]]:  # fmt: skip
    """(label, text, best) of what is known of one job: why a layout metric excluded it, its value of every
    metric in ``values`` (its row of :func:`metric_frame`; ``best`` marks the pair's best), seconds, memory."""
    out = []
    for spec in SPECS.values():
        if spec.excludable and bool(row.get(f"{spec.name}_scored")) and bool(row.get(f"{spec.name}_excluded")):
            why = row.get(f"{spec.name}_exclusion_reason") or "nothing to compare in the aligned structure image"
            out.append((spec.numbers[0].label, f"excluded: {why}", False))
    for k, v in (values if values is not None else pd.Series(dtype=float)).items():
        m = METRICS[k]
        text = _fmt(v, m.digits)
        if text is not None:
            out.append((f"{m.label} {arrow(k)}", text, (best or {}).get(k) == float(v)))
    for label, column, digits in JOB_FIELDS:
        text = _fmt(row.get(column), digits)
        if text is not None:
            out.append((label, text, False))
    return out


def values_html(values: list[tuple[str, str, bool]]) -> str:
    """The key/value table of :func:`job_values` (the pair's best in bold)."""
    rows = "".join(f"<tr><th>{e(k)}</th><td class='num{' best' if b else ''}'>{e(v)}</td></tr>" for k, v, b in values)
    return f"<table class=kv>{rows}</table>" if rows else ""


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
                     health: dict[JobKey, JobHealth], fixer: Fixer | None, title: str,
                     random_banner: str | None = None) -> list[str]:  # fmt: skip
    """``pairs/<stem>/<pair>.html`` for every pair of ``grid`` and the images they show; fills
    ``grid.pair_pages``; returns the files written (relative to ``dest``). ``random_banner``: the red banner of
    a run with randomly initialised models, on every page."""
    written: list[str] = []
    columns = grid.pages[0].columns
    pairs = [p for page in grid.pages for p in page.row_labels]
    sub = df[df["dataset"] == grid.dataset]
    metrics = metric_frame(sub)
    for i, pair in enumerate(pairs):
        pstem = pair_stems[pair]
        media = f"pairs/{stem}/{pstem}"
        jobs = sub[sub["pair_id"].astype(str) == pair]
        best = best_values(metrics.loc[jobs.index])

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
                state = row["state"]
                values = values_html(job_values(row, metrics.loc[row.name], best))
                facts = (f"{seeds_text([int(row['seed'])])} · <span class=\"st st-{e(state)}\">"
                         f"{e(LABELS.get(state, state))}</span>")  # fmt: skip
                anchor = f"col-{c}" if n == 0 else ""
                out_path = row["output"] if isinstance(row.get("output"), str) else None
                if state == DONE and out_path and Path(out_path).is_file():
                    src = put(out_path, f"{c:02d}-{safe_stem(col.method or 'method', set())}-s{int(row['seed'])}"
                                        f"{Path(out_path).suffix.lower() or '.png'}")  # fmt: skip
                    figures.append(_figure(head, src, f"{col.title} output", facts + values, anchor))
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
                "<body>", f'<div class="banner random">{e(random_banner)}</div>' if random_banner else "",
                '<div class="banner broken" id="banner-broken" hidden></div>', "<main>",
                _nav(grid, pairs, i, pair_stems), f"<h1>{e(grid.dataset)} / {e(pair)}</h1>",
                "<p class=muted>Every image at full size (click to open the file); each output as the method "
                "wrote it, with its value of every metric (↑ higher / ↓ lower is better; bold: the best of this "
                "pair's outputs).</p>",
                f'<div class="outputs">{"".join(figures)}</div>',
                "</main>", f"<script>{SCRIPT}</script></body></html>"]  # fmt: skip
        rel = f"pairs/{stem}/{pstem}.html"
        atomic_write_text(dest / rel, "\n".join(x for x in html if x) + "\n")
        grid.pair_pages[pair] = rel
        written.append(rel)
    return written


PAIR_CSS = """
.outputs{display:flex;flex-wrap:wrap;gap:0 22px;align-items:flex-start}
.outputs figure{max-width:100%} .outputs figure img{max-width:100%}
.outputs .head{margin:0 0 4px}
.st.big{display:block;padding:24px;min-width:200px;max-width:360px;font-size:14px;white-space:normal}
"""
