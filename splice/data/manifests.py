"""Data-set manifests: the evaluation pairs of Splice (Tumanyan et al., CVPR 2022) as CSV facts.

A manifest (``datasets/<name>.csv``, schema in ``datasets/README.md``) lists one pair per row:
the relative paths of the structure and appearance images under a data root given by the
user, their SHA-256, width and height, where the images came from, and short hashes of the
outputs the paper's authors kept. Lines starting with ``#`` before the header hold metadata
(``# version: 1``, ``# name: afhq``, ``# description: ...``).

This module loads and validates manifests (every problem is a one-line
:class:`~splice.core.errors.ManifestError` naming the file and line), resolves rows to
:class:`~splice.core.method.Pair` objects against a data root, checks the images under a root
(present, decodable, hash, size) and fills a root from any folder tree by SHA-256.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Literal

from splice.core.atomic import atomic_write
from splice.core.errors import ImageError, ManifestError, UserError, near_names
from splice.core.imageio import IMAGE_SUFFIXES, load_rgb, sha256_file
from splice.core.method import Pair

MANIFEST_VERSION = 1
"""Newest manifest version this code understands (``# version:`` line; datasets/README.md has the changelog)."""

REQUIRED_COLUMNS = ("pair_id", "structure", "appearance")
OPTIONAL_COLUMNS = tuple(
    f"{role}_{k}" for role in ("structure", "appearance") for k in ("sha256", "w", "h", "source", "source_id")
) + ("reference_outputs",)
ROLES = ("structure", "appearance")

_PAIR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REF = re.compile(r"^[A-Za-z0-9_.-]+:[0-9a-f]{8,64}$")
_META = re.compile(r"^#\s*([A-Za-z_][A-Za-z0-9_-]*)\s*:\s*(.*?)\s*$")

DATASETS_ENV = "SPLICE_DATASETS"
"""Environment variable naming the folder that holds the manifests (default: the project's ``datasets/``)."""


# --------------------------------------------------------------------------------------
# data classes
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageEntry:
    """One image of a row: its path relative to the data root and what it must be."""

    path: str  # POSIX, relative to the data root
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    source: str | None = None  # flickr | pixabay | afhq | github | ...
    source_id: str | None = None

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.path).name

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "width": self.width, "height": self.height,
                "source": self.source, "source_id": self.source_id}  # fmt: skip


@dataclass(frozen=True)
class ManifestRow:
    pair_id: str
    structure: ImageEntry
    appearance: ImageEntry
    line: int  # 1-based line number in the manifest file
    reference_outputs: dict[str, str] = field(default_factory=dict)  # method -> sha256 prefix of its output

    def image(self, role: str) -> ImageEntry:
        return self.structure if role == "structure" else self.appearance


@dataclass(frozen=True)
class Manifest:
    name: str
    path: Path
    version: int
    rows: tuple[ManifestRow, ...]
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return self.meta.get("description", "")

    def __len__(self) -> int:
        return len(self.rows)

    def ids(self) -> list[str]:
        return [r.pair_id for r in self.rows]

    def row(self, pair_id: str) -> ManifestRow:
        for r in self.rows:
            if r.pair_id == pair_id:
                return r
        near = near_names(pair_id, self.ids(), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; see `splice datasets list` ({self.path})"
        raise ManifestError(f"pair {pair_id!r} is not in data set {self.name!r}{hint}")

    def select(self, pair_ids: Iterable[str] | None = None, limit: int | None = None) -> list[ManifestRow]:
        """Rows in manifest order, restricted to ``pair_ids`` (all when None), then the first ``limit``."""
        rows = list(self.rows)
        if pair_ids is not None:
            wanted = list(dict.fromkeys(pair_ids))
            for pid in wanted:
                self.row(pid)  # unknown ids are errors
            keep = set(wanted)
            rows = [r for r in rows if r.pair_id in keep]
        if limit is not None:
            rows = rows[: max(0, int(limit))]
        return rows

    def resolve(self, row: ManifestRow, root: str | os.PathLike) -> Pair:
        """The :class:`Pair` of ``row`` with its images under the data root (absolute paths)."""
        base = Path(root).expanduser().absolute()
        return Pair(
            pair_id=row.pair_id,
            structure=base / row.structure.path,
            appearance=base / row.appearance.path,
            dataset=self.name,
        )

    def pairs(self, root: str | os.PathLike, pair_ids: Iterable[str] | None = None,
              limit: int | None = None) -> list[Pair]:  # fmt: skip
        return [self.resolve(r, root) for r in self.select(pair_ids, limit)]

    def record(self) -> dict:
        """What a run records about the manifest it used."""
        return {"name": self.name, "version": self.version, "path": str(self.path), "sha256": sha256_file(self.path),
                "pairs": len(self.rows)}  # fmt: skip


# --------------------------------------------------------------------------------------
# loading and validation
# --------------------------------------------------------------------------------------
def _check_relpath(value: str, where: str, column: str) -> str:
    if not value:
        raise ManifestError(f"{where}: empty {column} path; give the image path relative to the data root")
    if "\\" in value:
        raise ManifestError(f"{where}: {column} path {value!r} uses backslashes; write it with '/'")
    p = PurePosixPath(value)
    if p.is_absolute() or re.match(r"^[A-Za-z]:", value) or value.startswith("~"):
        raise ManifestError(f"{where}: {column} path {value!r} is absolute; paths must be relative to the data root")
    if any(part == ".." for part in p.parts):
        raise ManifestError(f"{where}: {column} path {value!r} escapes the data root ('..'); "
                            "make it relative and inside it")  # fmt: skip
    parts = [x for x in p.parts if x != "."]
    if not parts:
        raise ManifestError(f"{where}: {column} path {value!r} names no file")
    return "/".join(parts)


def _opt_int(value: str, where: str, column: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        raise ManifestError(f"{where}: {column} {value!r} is not a whole number of pixels") from None
    if n <= 0 or n > 1_000_000:
        raise ManifestError(f"{where}: {column} {value!r} is not a valid image size (1 .. 1000000 px)")
    return n


def _opt(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _parse_row(rec: dict[str, str], where: str, lineno: int) -> ManifestRow:
    pair_id = rec["pair_id"].strip()
    if not _PAIR_ID.match(pair_id):
        raise ManifestError(
            f"{where}: pair_id {pair_id!r} is not usable as a folder name; use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )
    images = {}
    for role in ROLES:
        path = _check_relpath(rec[role].strip(), where, role)
        sha = _opt(rec.get(f"{role}_sha256"))
        if sha is not None:
            sha = sha.lower()
            if not _SHA256.match(sha):
                raise ManifestError(f"{where}: {role}_sha256 {sha!r} is not 64 hex digits; fix or leave it empty")
        images[role] = ImageEntry(
            path=path,
            sha256=sha,
            width=_opt_int(rec.get(f"{role}_w") or "", where, f"{role}_w"),
            height=_opt_int(rec.get(f"{role}_h") or "", where, f"{role}_h"),
            source=_opt(rec.get(f"{role}_source")),
            source_id=_opt(rec.get(f"{role}_source_id")),
        )
    refs: dict[str, str] = {}
    for item in (rec.get("reference_outputs") or "").split():
        if not _REF.match(item):
            raise ManifestError(f"{where}: reference_outputs entry {item!r} is not 'method:hexhash'")
        name, _, digest = item.partition(":")
        refs[name] = digest
    return ManifestRow(pair_id=pair_id, structure=images["structure"], appearance=images["appearance"], line=lineno,
                       reference_outputs=refs)  # fmt: skip


def load_manifest(path: str | os.PathLike, name: str | None = None) -> Manifest:
    """Read and validate a manifest CSV. Raises :class:`ManifestError` naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e.reason}); save the manifest as UTF-8 CSV") from None
    lines = text.splitlines()
    meta: dict[str, str] = {}
    body_start = 0
    for i, line in enumerate(lines):
        if line.startswith("#"):
            m = _META.match(line)
            if m:
                meta[m.group(1).lower()] = m.group(2)
            continue
        if line.strip() == "":
            continue
        body_start = i
        break
    else:
        raise ManifestError(f"{path}: no header row; the first non-comment line must name the columns "
                            f"({', '.join(REQUIRED_COLUMNS)}, ...)")  # fmt: skip

    version_text = meta.get("version", "1")
    try:
        version = int(version_text)
    except ValueError:
        raise ManifestError(f"{path}: '# version: {version_text}' is not a whole number") from None
    if version < 1 or version > MANIFEST_VERSION:
        raise ManifestError(
            f"{path}: manifest version {version} is not supported "
            f"(this splice-bench reads versions 1..{MANIFEST_VERSION}); "
            "update splice-bench or use a manifest of a supported version"
        )

    reader = csv.reader(lines[body_start:])
    header = [h.strip() for h in next(reader)]
    header_line = body_start + 1
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(f"{path}:{header_line}: missing column(s) {', '.join(missing)}; the header must name "
                            f"{', '.join(REQUIRED_COLUMNS)}")  # fmt: skip
    dup_cols = sorted({c for c in header if header.count(c) > 1})
    if dup_cols:
        raise ManifestError(f"{path}:{header_line}: column(s) {', '.join(dup_cols)} appear more than once "
                            "in the header")  # fmt: skip

    rows: list[ManifestRow] = []
    seen: dict[str, int] = {}
    for offset, values in enumerate(reader):
        lineno = header_line + 1 + offset
        where = f"{path}:{lineno}"
        if not values or all(not v.strip() for v in values):
            continue
        if values[0].lstrip().startswith("#"):
            continue
        if len(values) != len(header):
            raise ManifestError(f"{where}: {len(values)} fields but the header has {len(header)} columns; "
                                "a value is missing or has an unquoted comma")  # fmt: skip
        rec = dict(zip(header, values))
        row = _parse_row(rec, where, lineno)
        if row.pair_id in seen:
            raise ManifestError(f"{where}: duplicate pair_id {row.pair_id!r} (first on line {seen[row.pair_id]}); "
                                "pair ids must be unique")  # fmt: skip
        seen[row.pair_id] = lineno
        rows.append(row)
    if not rows:
        raise ManifestError(f"{path}: the manifest has no rows")
    name = name or meta.get("name") or path.stem
    return Manifest(name=name, path=path, version=version, rows=tuple(rows), meta=meta)


# --------------------------------------------------------------------------------------
# finding manifests
# --------------------------------------------------------------------------------------
def datasets_dir() -> Path:
    """The folder holding the manifests: ``$SPLICE_DATASETS``, else the project's ``datasets/``
    (next to the ``splice`` package), else ``./datasets``."""
    env = os.environ.get(DATASETS_ENV)
    if env:
        return Path(env)
    project = Path(__file__).resolve().parents[2] / "datasets"
    if project.is_dir():
        return project
    return Path.cwd() / "datasets"


def available_manifests(folder: str | os.PathLike | None = None) -> dict[str, Path]:
    """Data-set name -> manifest path, for every ``*.csv`` in the datasets folder."""
    folder = Path(folder) if folder else datasets_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.csv"))}


def find_manifest(name_or_path: str, folder: str | os.PathLike | None = None) -> Path:
    """A data-set name (``afhq``, ``wild-pairs``; ``wild_pairs`` works too) or a path to a CSV."""
    known = available_manifests(folder)
    if name_or_path in known:
        return known[name_or_path]
    alias = name_or_path.replace("_", "-")
    if alias in known:
        return known[alias]
    p = Path(name_or_path).expanduser()
    if p.suffix.lower() == ".csv" or os.sep in name_or_path or "/" in name_or_path:
        if p.is_file():
            return p
        raise ManifestError(f"manifest not found: {p}")
    near = near_names(name_or_path, known, n=3)
    hint = f"did you mean {', '.join(near)}?" if near else f"known: {', '.join(known) or '(none)'}"
    raise ManifestError(f"unknown data set {name_or_path!r} (looked in {folder or datasets_dir()}); {hint} "
                        "or give a path to a manifest CSV")  # fmt: skip


def get_manifest(name_or_path: str, folder: str | os.PathLike | None = None) -> Manifest:
    path = find_manifest(name_or_path, folder)
    known = available_manifests(folder)
    name = path.stem if known.get(path.stem) == path else None
    return load_manifest(path, name=name)


def parse_dataset_list(value: str, folder: str | os.PathLike | None = None) -> list[Manifest]:
    """``wild-pairs,afhq`` (or ``all``) -> manifests, in the given order, without duplicates."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if names == ["all"]:
        names = [n for n in available_manifests(folder) if n != "demo"]
    if not names:
        raise UserError("--datasets is empty; give names such as wild-pairs,afhq,mountains "
                        "(see `splice datasets list`)")  # fmt: skip
    out: dict[str, Manifest] = {}
    for n in names:
        m = get_manifest(n, folder)
        if m.name in out:
            continue
        out[m.name] = m
    return list(out.values())


# --------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageCheck:
    role: str
    path: Path
    status: Literal["ok", "missing", "unreadable", "sha256", "size"]
    detail: str = ""


@dataclass(frozen=True)
class RowCheck:
    pair_id: str
    line: int
    images: tuple[ImageCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.status == "ok" for c in self.images)

    def summary(self) -> str:
        if self.ok:
            return "ok"
        return "; ".join(f"{c.role} {c.status}: {c.detail}" for c in self.images if c.status != "ok")


def check_image(entry: ImageEntry, root: Path, role: str, verify_hash: bool = True) -> ImageCheck:
    path = root / entry.path
    if not path.is_file():
        return ImageCheck(role, path, "missing", f"{path} not found")
    try:
        loaded = load_rgb(path, role=f"{role} image", min_side=0)
    except ImageError as e:
        return ImageCheck(role, path, "unreadable", str(e))
    if verify_hash and entry.sha256:
        actual = sha256_file(path)
        if actual != entry.sha256:
            detail = (f"{path} has sha256 {actual[:16]}..., the manifest expects {entry.sha256[:16]}... "
                      "(a different or re-encoded file)")  # fmt: skip
            return ImageCheck(role, path, "sha256", detail)
    w, h = loaded.source_size
    if (entry.width and entry.width != w) or (entry.height and entry.height != h):
        return ImageCheck(role, path, "size", f"{path} is {w}x{h}, the manifest expects {entry.width}x{entry.height}")
    return ImageCheck(role, path, "ok")


def check_manifest(
    manifest: Manifest,
    root: str | os.PathLike,
    pair_ids: Iterable[str] | None = None,
    verify_hash: bool = True,
    progress: Callable[[ManifestRow], None] | None = None,
) -> list[RowCheck]:
    """Check every row's images under ``root``: present, decodable (:func:`load_rgb`), SHA-256, size."""
    base = Path(root).expanduser()
    out = []
    for row in manifest.select(pair_ids):
        checks = tuple(check_image(row.image(role), base, role, verify_hash) for role in ROLES)
        out.append(RowCheck(row.pair_id, row.line, checks))
        if progress:
            progress(row)
    return out


# --------------------------------------------------------------------------------------
# import by hash
# --------------------------------------------------------------------------------------
ImportMode = Literal["copy", "symlink", "hardlink"]


@dataclass
class ImportReport:
    placed: list[tuple[str, str, Path, Path]] = field(default_factory=list)  # (pair_id, role, source, destination)
    present: list[tuple[str, str, Path]] = field(default_factory=list)  # already in place with the right hash
    missing: list[tuple[str, str, ImageEntry]] = field(default_factory=list)  # no file with that hash was found
    unhashed: list[tuple[str, str, ImageEntry]] = field(default_factory=list)  # the manifest has no sha256
    scanned: int = 0

    @property
    def complete(self) -> bool:
        return not self.missing and not self.unhashed


def index_by_sha256(folders: Iterable[str | os.PathLike], wanted: set[str] | None = None,
                    progress: Callable[[Path], None] | None = None) -> tuple[dict[str, Path], int]:  # fmt: skip
    """sha256 -> first file with that content below ``folders`` (image suffixes only, sorted walk)."""
    index: dict[str, Path] = {}
    n = 0
    for folder in folders:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise UserError(f"--from folder not found: {folder}")
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.startswith(".") or Path(fn).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                p = Path(dirpath) / fn
                n += 1
                try:
                    digest = sha256_file(p)
                except OSError:
                    continue
                if progress:
                    progress(p)
                if (wanted is None or digest in wanted) and digest not in index:
                    index[digest] = p
    return index, n


def _place(src: Path, dst: Path, mode: ImportMode) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.import")
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    if mode == "copy":
        def write(f):
            with open(src, "rb") as s:
                shutil.copyfileobj(s, f)

        atomic_write(dst, write)
        return
    if mode == "symlink":
        os.symlink(src.resolve(), tmp)
    elif mode == "hardlink":
        try:
            os.link(src, tmp)
        except OSError as e:
            raise UserError(f"cannot hard-link {src} into {dst.parent} ({e.strerror}); use copy or --link") from None
    else:  # pragma: no cover - guarded by the CLI
        raise ValueError(mode)
    os.replace(tmp, dst)


def import_images(
    manifest: Manifest,
    sources: Iterable[str | os.PathLike],
    root: str | os.PathLike,
    mode: ImportMode = "copy",
    dry_run: bool = False,
    progress: Callable[[Path], None] | None = None,
) -> ImportReport:
    """Fill ``root`` with the manifest's images found anywhere below ``sources``, matched by SHA-256.

    Images already in place with the right hash are left alone; a file in place with another
    hash is replaced. Nothing outside ``root`` is written.
    """
    base = Path(root).expanduser()
    report = ImportReport()
    todo: list[tuple[ManifestRow, str, ImageEntry]] = []
    for row in manifest.rows:
        for role in ROLES:
            entry = row.image(role)
            if not entry.sha256:
                report.unhashed.append((row.pair_id, role, entry))
                continue
            dst = base / entry.path
            if dst.is_file() and sha256_file(dst) == entry.sha256:
                report.present.append((row.pair_id, role, dst))
                continue
            todo.append((row, role, entry))
    if not todo:
        return report
    index, report.scanned = index_by_sha256(sources, {e.sha256 for _, _, e in todo}, progress)
    for row, role, entry in todo:
        src = index.get(entry.sha256)
        if src is None:
            report.missing.append((row.pair_id, role, entry))
            continue
        dst = base / entry.path
        if not dry_run:
            _place(src, dst, mode)
        report.placed.append((row.pair_id, role, src, dst))
    return report
