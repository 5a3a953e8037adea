"""Comparison grids, like the qualitative figures of the Splice paper (Tumanyan et al., CVPR 2022, Figs. 5-7).

One grid per data set: rows are pairs; columns are the structure image, the appearance image, then one
column per method variant. Built from stored outputs only (never by running a method).

Alignment (PROTOCOL.md, "Geometry first"): every output is shown in the *structure image's frame*. The
job's recorded :class:`~splice.core.geometry.Geometry` names the box of the structure image the output covers;
the output is resized to that box (at display scale) and pasted there on a grey canvas the size of the
structure image. So every cell of a row has the structure image's aspect ratio and the same pixel means the
same place in every column: a centre crop shows grey bands where the method dropped the borders, a stretch
to a square is un-stretched. An output without a recorded geometry is shown as it is and marked
"unaligned".

Seeds and variants: one column per (method, configuration hash) present in the data set; a method with one
configuration gets one column headed by its name, several get one column each headed by the hash. Within a
column each row shows the job with the lowest seed stored for that pair (seed 0 in a normal run).

A grid showing any output of a randomly initialised model says so in red in its title band and in the
headers of those columns (random *metric* models change no picture, so they are named by the tables and
the page, not here).

Jobs that are not done are labelled blank cells named by their state (:mod:`splice.core.health`): failed,
corrupt record and output missing in red; pending, running and stale claim in amber; not applicable, and
no job at all ("not run"), in grey. Large
sets are split into pages of ``rows_per_page`` rows; each page is one PNG and all pages of a data set are
one multi-page PDF.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from splice.core.atomic import atomic_save_image, atomic_write_bytes
from splice.core.errors import ImageError
from splice.core.geometry import Geometry
from splice.core.health import CORRUPT, DONE, FAILED, LABELS, OUTPUT_MISSING
from splice.core.imageio import load_rgb
from splice.core.record import NOT_APPLICABLE

UNCOVERED = (200, 200, 200)
"""Grey for the parts of the structure frame an output does not cover (e.g. a centre crop's borders)."""
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (110, 110, 110)
ALERT = (190, 20, 20)
FAILED_FILL = (250, 226, 226)
MISSING_FILL = (236, 236, 236)
PENDING_FILL = (253, 240, 205)


@dataclass(frozen=True)
class GridStyle:
    """Sizes of a grid in pixels. A page is ``label_width + n_cols * cell`` wide and
    ``title_height + header_height + n_rows * cell`` high."""

    cell: int = 224
    pad: int = 4
    label_width: int = 150
    header_height: int = 46
    title_height: int = 34
    font_size: int = 14
    rows_per_page: int = 8
    pdf_resolution: float = 150.0

    def page_size(self, n_rows: int, n_cols: int) -> tuple[int, int]:
        return self.label_width + n_cols * self.cell, self.title_height + self.header_height + n_rows * self.cell

    def cell_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """Box (left, top, right, bottom) of the cell at ``row``, ``col`` of a page."""
        left = self.label_width + col * self.cell
        top = self.title_height + self.header_height + row * self.cell
        return left, top, left + self.cell, top + self.cell


@dataclass(frozen=True)
class Column:
    """One column of a grid: an input image or one method variant."""

    title: str
    subtitle: str = ""
    method: str | None = None
    config_hash: str | None = None
    role: str = "method"  # "structure" | "appearance" | "method"
    random_weights: bool = False


@dataclass
class Cell:
    """What one cell shows: an image, or a labelled blank (``label`` set, ``image`` None)."""

    image: Image.Image | None = None
    label: str = ""
    detail: str = ""
    note: str = ""
    fill: tuple[int, int, int] = MISSING_FILL
    job: dict[str, Any] | None = None


@dataclass
class GridPage:
    dataset: str
    page: int  # 1-based
    n_pages: int
    columns: list[Column]
    row_labels: list[str]
    image: Image.Image
    cells: list[list[Cell]] = field(default_factory=list)


# -- fonts and text ------------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib, so present wherever the suite runs), else Pillow's default."""
    try:
        from matplotlib import font_manager

        path = font_manager.findfont(
            font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"),
            fallback_to_default=True,
        )
        return ImageFont.truetype(path, size)
    except (ImportError, OSError, ValueError):
        return ImageFont.load_default(size)


def _fit_text(text: str, fnt, width: float) -> str:
    """``text`` cut with an ellipsis so that it fits in ``width`` pixels."""
    if fnt.getlength(text) <= width:
        return text
    while text and fnt.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def wrap_text(text: str, fnt, width: float, max_lines: int) -> list[str]:
    """Greedy wrap on spaces (and inside long words such as paths), at most ``max_lines`` lines."""
    lines: list[str] = []
    current = ""
    for word in str(text).split():
        candidate = f"{current} {word}".strip()
        if fnt.getlength(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while fnt.getlength(current) > width:  # break very long words
            cut = len(current)
            while cut > 1 and fnt.getlength(current[:cut]) > width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit_text(lines[-1] + " …", fnt, width)
    return lines


def _draw_centered(draw: ImageDraw.ImageDraw, box, lines: list[tuple[str, Any, tuple]], spacing: int = 3) -> None:
    """Draw ``(text, font, colour)`` lines centred in ``box``."""
    left, top, right, bottom = box
    heights = [fnt.getbbox("Ag")[3] for _, fnt, _ in lines]
    total = sum(heights) + spacing * (len(lines) - 1)
    y = top + (bottom - top - total) / 2
    for (text, fnt, colour), h in zip(lines, heights):
        text = _fit_text(text, fnt, right - left - 4)
        x = left + (right - left - fnt.getlength(text)) / 2
        draw.text((x, y), text, font=fnt, fill=colour)
        y += h + spacing


# -- images --------------------------------------------------------------------------------------------------
def fit_size(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size with the aspect of ``size`` that fits in ``box`` (both (W, H))."""
    scale = min(box[0] / size[0], box[1] / size[1])
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def thumbnail(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    """``image`` resized (up or down) to fit in ``box`` with its aspect ratio kept."""
    size = fit_size(image.size, box)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def aligned_output(output: Image.Image, geometry: Geometry, box: tuple[int, int]) -> Image.Image:
    """``output`` placed in the structure image's frame (see the module docstring), fitted to ``box``.

    The frame is ``geometry.source`` scaled to fit ``box``; the output is resized to the scaled crop box
    and pasted at its place; the rest of the frame is :data:`UNCOVERED` grey.
    """
    sw, sh = geometry.source
    fw, fh = fit_size((sw, sh), box)
    sx, sy = fw / sw, fh / sh
    left, top, right, bottom = geometry.box
    bl, bt, br, bb = round(left * sx), round(top * sy), round(right * sx), round(bottom * sy)
    frame = Image.new("RGB", (fw, fh), UNCOVERED)
    patch = output.resize((max(1, br - bl), max(1, bb - bt)), Image.Resampling.LANCZOS, reducing_gap=3.0)
    frame.paste(patch, (bl, bt))
    return frame


def _load(path: str | None, role: str) -> Image.Image | str:
    """The image at ``path`` or a short reason why there is none."""
    if not path:
        return f"no {role} recorded"
    try:
        return load_rgb(path, role=role, min_side=0).image
    except ImageError as e:
        return "not found" if "not found" in str(e) else "unreadable"


# -- grid content --------------------------------------------------------------------------------------------
def method_columns(df: pd.DataFrame, methods: list[str]) -> list[Column]:
    """The method columns of a data set's grid: one per (method, configuration hash), in ``methods`` order."""
    columns: list[Column] = []
    for method in methods:
        sub = df[df["method"] == method]
        if sub.empty:
            continue
        # the configuration with the most jobs first, then by hash, so the order is stable
        counts = sub.groupby("config_hash").size()
        hashes = sorted(counts.index, key=lambda h: (-int(counts[h]), str(h)))
        for h in hashes:
            jobs = sub[sub["config_hash"] == h]
            random = bool(jobs["random_weights"].any())
            parts = [f"config {str(h)[:8]}"] if len(hashes) > 1 else []
            if random:
                parts.append("random weights")
            columns.append(Column(title=method, subtitle=" · ".join(parts), method=method, config_hash=str(h),
                                  random_weights=random))
    return columns


def _input_cell(path: str | None, role: str, inner: tuple[int, int]) -> Cell:
    loaded = _load(path, f"{role} image")
    if isinstance(loaded, str):
        return Cell(label=f"{role} {loaded}", detail=Path(path).name if path else "", fill=MISSING_FILL)
    return Cell(image=thumbnail(loaded, inner))


def _method_cell(jobs: pd.DataFrame, inner: tuple[int, int], structure_size: tuple[int, int] | None) -> Cell:
    if jobs.empty:
        return Cell(label="not run", fill=MISSING_FILL)
    job = jobs.sort_values("seed", kind="stable").iloc[0]
    state = job["state"]  # load_results fills it for every row (splice.core.health)
    info = {"seed": int(job["seed"]), "status": str(job["status"]), "state": state, "job_dir": job["job_dir"]}
    if state == NOT_APPLICABLE:
        return Cell(label="—", detail="not applicable", fill=MISSING_FILL, job=info)
    if state != DONE:
        why = str(job["error"]) if isinstance(job["error"], str) and job["error"] else ""
        if state == OUTPUT_MISSING and not why:
            why = "the record says ok; the file is gone"
        fill = FAILED_FILL if state in (FAILED, CORRUPT, OUTPUT_MISSING) else PENDING_FILL
        return Cell(label=LABELS.get(state, str(state)), detail=why, fill=fill, job=info)
    loaded = _load(job["output"], "output image")
    if isinstance(loaded, str):
        return Cell(label=f"output {loaded}", detail="", fill=FAILED_FILL, job=info)
    geometry = job["geometry"]
    if not isinstance(geometry, dict):
        return Cell(image=thumbnail(loaded, inner), note="unaligned", job=info)
    try:
        geo = Geometry.from_dict(geometry)
    except (KeyError, TypeError, ValueError):
        return Cell(image=thumbnail(loaded, inner), note="unaligned", job=info)
    note = ""
    if structure_size is not None and tuple(geo.source) != tuple(structure_size):
        note = "geometry size ≠ structure"
    return Cell(image=aligned_output(loaded, geo, inner), note=note, job=info)


def grid_cells(df: pd.DataFrame, pairs: list[str], columns: list[Column], style: GridStyle) -> list[list[Cell]]:
    """The cells of the rows ``pairs`` (one data set's rows of :func:`eval.aggregate.load_results`)."""
    inner = (style.cell - 2 * style.pad, style.cell - 2 * style.pad)
    rows: list[list[Cell]] = []
    for pair_id in pairs:
        jobs = df[df["pair_id"] == pair_id]
        structure = next((p for p in jobs["structure"] if isinstance(p, str) and p), None)
        appearance = next((p for p in jobs["appearance"] if isinstance(p, str) and p), None)
        s_loaded = _load(structure, "structure image")
        structure_size = None if isinstance(s_loaded, str) else s_loaded.size
        cells: list[Cell] = []
        for col in columns:
            if col.role == "structure":
                if isinstance(s_loaded, str):
                    cells.append(Cell(label=f"structure {s_loaded}", detail=Path(structure or "").name))
                else:
                    cells.append(Cell(image=thumbnail(s_loaded, inner)))
            elif col.role == "appearance":
                cells.append(_input_cell(appearance, "appearance", inner))
            else:
                sel = jobs[(jobs["method"] == col.method) & (jobs["config_hash"].astype(str) == col.config_hash)]
                cells.append(_method_cell(sel, inner, structure_size))
        rows.append(cells)
    return rows


# -- drawing -------------------------------------------------------------------------------------------------
def draw_page(dataset: str, page: int, n_pages: int, columns: list[Column], row_labels: list[str],
              cells: list[list[Cell]], style: GridStyle, random_weights: bool) -> Image.Image:  # fmt: skip
    """One page of a grid as an RGB image of :meth:`GridStyle.page_size`."""
    width, height = style.page_size(len(row_labels), len(columns))
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    f_text, f_bold, f_small = font(style.font_size), font(style.font_size, bold=True), font(max(9, style.font_size - 3))

    # title band
    title = f"{dataset}" + (f"  ·  page {page}/{n_pages}" if n_pages > 1 else "")
    th = f_bold.getbbox("Ag")[3]
    draw.text((8, (style.title_height - th) / 2), title, font=f_bold, fill=INK)
    if random_weights:
        warning = "outputs of RANDOMLY INITIALISED models — not the methods' real results"
        x = max(8 + f_bold.getlength(title) + 24, width - 8 - f_bold.getlength(warning))
        draw.text((x, (style.title_height - th) / 2), _fit_text(warning, f_bold, width - x - 8), font=f_bold,
                  fill=ALERT)  # fmt: skip

    # column headers
    top = style.title_height
    for c, col in enumerate(columns):
        left = style.label_width + c * style.cell
        lines = [(col.title, f_bold, INK)]
        if col.subtitle:
            lines.append((col.subtitle, f_small, ALERT if col.random_weights else MUTED))
        _draw_centered(draw, (left, top, left + style.cell, top + style.header_height), lines)
    draw.line((0, top + style.header_height - 1, width, top + style.header_height - 1), fill=(180, 180, 180))

    # rows
    for r, label in enumerate(row_labels):
        _, row_top, _, row_bottom = style.cell_box(r, 0)
        wrapped = wrap_text(label, f_text, style.label_width - 12, max_lines=6)
        _draw_centered(draw, (4, row_top, style.label_width - 4, row_bottom), [(t, f_text, INK) for t in wrapped])
        for c, cell in enumerate(cells[r]):
            _draw_cell(img, draw, style.cell_box(r, c), cell, style, f_bold, f_small)
    return img


def _draw_cell(img: Image.Image, draw: ImageDraw.ImageDraw, box, cell: Cell, style: GridStyle, f_bold, f_small) -> None:
    left, top, right, bottom = box
    inner = (left + style.pad, top + style.pad, right - style.pad, bottom - style.pad)
    if cell.image is not None:
        w, h = cell.image.size
        x = inner[0] + (inner[2] - inner[0] - w) // 2
        y = inner[1] + (inner[3] - inner[1] - h) // 2
        img.paste(cell.image, (x, y))
        if cell.note:
            text = _fit_text(cell.note, f_small, inner[2] - inner[0] - 6)
            tw, th = f_small.getlength(text), f_small.getbbox("Ag")[3]
            draw.rectangle((x, y + h - th - 6, x + tw + 6, y + h), fill=(255, 255, 255))
            draw.text((x + 3, y + h - th - 4), text, font=f_small, fill=ALERT)
        return
    draw.rectangle(inner, fill=cell.fill)
    lines = [(cell.label, f_bold, ALERT if cell.fill == FAILED_FILL else MUTED)]
    if cell.detail:
        lines += [(t, f_small, INK) for t in wrap_text(cell.detail, f_small, inner[2] - inner[0] - 10, max_lines=6)]
    _draw_centered(draw, inner, lines)


def _sort_key(pair_id: str) -> list:
    """Natural order: ``p2`` before ``p10``."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(pair_id))]


def build_grid(df: pd.DataFrame, dataset: str, methods: list[str], style: GridStyle | None = None) -> list[GridPage]:
    """The pages of the comparison grid of ``dataset``.

    Args:
        df: rows of :func:`eval.aggregate.load_results` (any data sets; this one is selected).
        dataset: the data set to draw.
        methods: method names in column order (methods without a job in the data set are left out).
        style: sizes; :class:`GridStyle` defaults when None.
    """
    style = style or GridStyle()
    sub = df[df["dataset"] == dataset]
    pairs = sorted(sub["pair_id"].astype(str).unique(), key=_sort_key)
    columns = [Column("structure", role="structure"), Column("appearance", role="appearance")]
    columns += method_columns(sub, methods)
    # only the methods' weights matter for what a grid shows (random metric models change no picture)
    random = bool(sub["random_weights"].any())
    per_page = max(1, style.rows_per_page)
    n_pages = max(1, math.ceil(len(pairs) / per_page))
    pages = []
    for p in range(n_pages):
        chunk = pairs[p * per_page:(p + 1) * per_page]
        cells = grid_cells(sub, chunk, columns, style)
        image = draw_page(dataset, p + 1, n_pages, columns, chunk, cells, style, random)
        pages.append(GridPage(dataset, p + 1, n_pages, columns, chunk, image, cells))
    return pages


def write_grid(pages: list[GridPage], folder: Path, stem: str, style: GridStyle | None = None,
               pdf: bool = True) -> dict[str, Any]:  # fmt: skip
    """Write each page as ``<stem>-pNN.png`` and all pages as ``<stem>.pdf`` (unless ``pdf`` is False);
    returns the file names (``pdf`` None when not written)."""
    style = style or GridStyle()
    folder.mkdir(parents=True, exist_ok=True)
    pngs = []
    for page in pages:
        name = f"{stem}-p{page.page:02d}.png"
        atomic_save_image(folder / name, page.image)
        pngs.append(name)
    if not pdf:
        return {"png": pngs, "pdf": None}
    buf = io.BytesIO()
    first, *rest = [p.image for p in pages]
    first.save(buf, format="PDF", resolution=style.pdf_resolution, save_all=True, append_images=rest)
    atomic_write_bytes(folder / f"{stem}.pdf", buf.getvalue())
    return {"png": pngs, "pdf": f"{stem}.pdf"}
