"""``precomputed``: outputs that already exist, imported as if the method had just run.

The Splice authors (Tumanyan et al., CVPR 2022) kept their own outputs and those of two baselines
for their evaluation pairs (``afhq/<id>/{A,B,ours,sa,strotss}/``, see ../shared/data/README.md).
Importing such folders lets published outputs be scored and shown beside fresh runs, with the same
geometry-first protocol.

Folder layouts understood under ``root=DIR``:

- pair folders (the authors' layout): ``DIR/<key>/<method_dir>/<one image>``, with the pair's
  structure image in ``DIR/<key>/A/`` and its appearance image in ``DIR/<key>/B/`` (names set by
  ``structure_dir=`` / ``appearance_dir=``); without ``method_dir=`` the image sits in ``DIR/<key>/``;
- a flat folder per method: ``DIR/<key>.png`` (matched by name only).

Matching a manifest pair to a folder (``match=auto``, the default):

1. by structure-image SHA-256: the file in ``A/`` has the same bytes as the pair's structure image
   (or, failing that, the same decoded pixels); several hits are narrowed by the appearance image;
2. otherwise by name: ``<key>`` equals the pair id, or the pair id without its ``<dataset>-`` prefix
   with leading zeros dropped (pair ``afhq-03`` <-> folder ``3``). A folder matched by name whose own
   structure image differs from the pair's is refused (its output belongs to another image).

``match=name`` or ``match=hash`` use only one rule. If a folder holds several images, ``file=GLOB``
picks one (e.g. ``file=out.png``).

Geometry: ``geometry=`` takes the external-method language (``native``, ``center-crop 512x512``,
``stretch 256x256``, ``resize-short 512``, ...; see :mod:`splice.core.geometry`). Without
it the rule is: same size as the structure image -> identity; same aspect ratio (1 %) -> resize;
different aspect -> centre crop to the output's aspect, then resize. A stretch is never guessed.

Importing a whole authors'-layout folder into a run store under a method name of its own
(``paper-ours``, ``paper-sa``, ...), pairs matched to a manifest by SHA-256, records written by the
benchmark runner exactly as for a fresh run::

    splice bench import --from ../shared/data/paper/afhq --dataset afhq --method-dir ours --out runs/paper

Inside ``splice bench`` the method is simply ``precomputed`` (``--methods precomputed
--method-args precomputed.root=DIR precomputed.method_dir=ours``); its jobs are then filed under the
method name ``precomputed``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from splice.core.errors import ConfigError, ImageError, UserError
from splice.core.geometry import infer_geometry, parse_geometry, reconcile
from splice.core.imageio import IMAGE_SUFFIXES, load_rgb, sha256_file, sha256_image
from splice.core.method import Method, MethodResult, Pair, RunSettings
from splice.core.options import resolve as resolve_options

log = logging.getLogger(__name__)

class PrecomputedError(UserError):
    """No (or no unique) stored output for a pair, or an unusable folder."""


@dataclass(frozen=True)
class PrecomputedOptions:
    root: str | None = field(default=None, metadata={"help": "the folder of stored outputs (required)"})
    method_dir: str | None = field(default=None, metadata={"help": "the sub-folder of each pair folder, e.g. ours"})
    label: str = field(default="", metadata={"help": "a name for these outputs (default: method_dir or the root's)"})
    match: Literal["auto", "name", "hash"] = "auto"
    structure_dir: str = "A"
    appearance_dir: str = "B"
    file: str | None = field(default=None, metadata={"help": "glob of the output file inside a pair folder"})
    geometry: str | None = field(default=None, metadata={"help": "the outputs' geometry (default: inferred)"})

    @classmethod
    def from_settings(cls, settings: RunSettings) -> "PrecomputedOptions":
        """The typed options, with ``root`` checked and expanded and ``label`` filled in."""
        opts = resolve_options(cls, PrecomputedMethod.presets, settings.preset, settings.options, "precomputed")
        if not opts.root:
            raise ConfigError(
                "precomputed needs the folder of stored outputs: --method-args root=DIR [method_dir=ours]"
            )
        root = Path(os.path.expandvars(opts.root)).expanduser()
        if not root.is_dir():
            raise ConfigError(f"precomputed: root={root} is not a folder")
        return dataclasses.replace(opts, root=str(root), label=opts.label or opts.method_dir or root.name)

    def identity(self) -> dict[str, Any]:
        """What changes the imported output (the absolute root does not: it differs between machines)."""
        return {"method_dir": self.method_dir, "label": self.label, "match": self.match, "file": self.file,
                "geometry": self.geometry, "structure_dir": self.structure_dir}


@dataclass(frozen=True)
class Candidate:
    """One entry of the root: a pair folder or a flat image file."""

    key: str
    folder: Path | None  # pair folder; None for a flat image
    flat_file: Path | None = None

    def output_dir(self, opts: PrecomputedOptions) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / opts.method_dir if opts.method_dir else self.folder

    def role_image(self, sub: str) -> Path | None:
        """The single image in ``<folder>/<sub>/`` (``A`` = structure, ``B`` = appearance), if any."""
        if self.folder is None:
            return None
        images = _images_in(self.folder / sub)
        return images[0] if len(images) == 1 else None


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def scan(root: Path) -> list[Candidate]:
    """Pair folders and flat images directly under ``root`` (hidden entries skipped)."""
    out = []
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            out.append(Candidate(key=p.name, folder=p))
        elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            out.append(Candidate(key=p.stem, folder=None, flat_file=p))
    return out


@functools.lru_cache(maxsize=4096)
def _file_sha(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def file_sha(path: Path) -> str:
    st = path.stat()
    return _file_sha(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4096)
def _pixel_sha(path: str, mtime_ns: int, size: int) -> str | None:
    try:
        return sha256_image(load_rgb(path, min_side=0).image)
    except ImageError:
        return None


def pixel_sha(path: Path) -> str | None:
    st = path.stat()
    return _pixel_sha(str(path), st.st_mtime_ns, st.st_size)


def _norm(name: str) -> str:
    name = name.strip().lower()
    return str(int(name)) if name.isdigit() else name


def pair_names(pair: Pair) -> set[str]:
    """Names a folder may carry for ``pair``: its id, and the id without the data-set prefix (zeros dropped)."""
    names = {_norm(pair.pair_id)}
    prefix = re.compile(rf"^{re.escape(pair.dataset)}[-_]", re.IGNORECASE) if pair.dataset else None
    if prefix and prefix.match(pair.pair_id):
        names.add(_norm(prefix.sub("", pair.pair_id, count=1)))
    return names


def _same_image(a: Path, b: Path) -> bool:
    if file_sha(a) == file_sha(b):
        return True
    pa, pb = pixel_sha(a), pixel_sha(b)
    return pa is not None and pa == pb


@dataclass(frozen=True)
class Match:
    candidate: Candidate
    matched_by: str  # "hash" | "name"


def find_match(pair: Pair, candidates: list[Candidate], opts: PrecomputedOptions) -> Match:
    """The candidate holding ``pair``'s output (rules in the module docstring)."""
    where = f"{opts.root}" + (f" (method_dir={opts.method_dir})" if opts.method_dir else "")
    if opts.match in ("auto", "hash"):
        with_structure = [(c, c.role_image(opts.structure_dir)) for c in candidates]
        with_structure = [(c, s) for c, s in with_structure if s is not None]
        target = file_sha(Path(pair.structure))
        hits = [c for c, s in with_structure if file_sha(s) == target]
        if not hits:  # re-encoded copies: compare decoded pixels
            hits = [c for c, s in with_structure if _same_image(s, Path(pair.structure))]
        if len(hits) > 1:  # one structure image, several appearance images: narrow by the appearance
            narrowed = [c for c in hits if (b := c.role_image(opts.appearance_dir)) is not None
                        and _same_image(b, Path(pair.appearance))]
            hits = narrowed or hits
        if len(hits) > 1:
            named = [c for c in hits if _norm(c.key) in pair_names(pair)]
            hits = named or hits
        if len(hits) > 1:
            raise PrecomputedError(
                f"precomputed: pair {pair.pair_id} matches {len(hits)} folders of {where} by structure image "
                f"({', '.join(c.key for c in hits[:5])}); keep one or pass match=name"
            )
        if hits:
            return Match(hits[0], "hash")
        if opts.match == "hash":
            raise PrecomputedError(
                f"precomputed: no folder of {where} has pair {pair.pair_id}'s structure image ({pair.structure}) "
                f"in {opts.structure_dir}/; check root= or use match=name"
            )
    names = pair_names(pair)
    named = [c for c in candidates if _norm(c.key) in names]
    if opts.method_dir:
        named = [c for c in named if c.folder is not None]
    if opts.match == "auto":
        for c in named:
            s = c.role_image(opts.structure_dir)
            if s is not None:  # a structure image that did not match by hash: the names collide, the images do not
                raise PrecomputedError(
                    f"precomputed: folder {c.folder} is named like pair {pair.pair_id} but its structure image {s} "
                    f"differs from {pair.structure}; pass match=name to import it anyway"
                )
    if len(named) == 1:
        return Match(named[0], "name")
    if len(named) > 1:
        raise PrecomputedError(
            f"precomputed: pair {pair.pair_id} matches several entries of {where} by name "
            f"({', '.join(str(c.folder or c.flat_file) for c in named[:5])}); remove the extra ones"
        )
    raise PrecomputedError(
        f"precomputed: no output for pair {pair.pair_id} in {where} (looked for a folder named "
        f"{' or '.join(sorted(names))} or holding its structure image in {opts.structure_dir}/)"
    )


def output_file(candidate: Candidate, opts: PrecomputedOptions) -> Path:
    """The one output image of ``candidate`` (``file=GLOB`` picks among several)."""
    if candidate.flat_file is not None:
        return candidate.flat_file
    folder = candidate.output_dir(opts)
    images = _images_in(folder) if folder is not None else []
    if opts.file:
        images = [p for p in images if fnmatch.fnmatch(p.name, opts.file)]
    if not images:
        what = f"matching file={opts.file} " if opts.file else ""
        raise PrecomputedError(
            f"precomputed: no image {what}in {folder}; check method_dir= (folders there: "
            f"{', '.join(sorted(p.name for p in candidate.folder.iterdir() if p.is_dir())) or 'none'})"
        )
    if len(images) > 1:
        raise PrecomputedError(
            f"precomputed: {len(images)} images in {folder} ({', '.join(p.name for p in images[:4])}); "
            "pick one with --method-args file=GLOB"
        )
    return images[0]


class PrecomputedMethod(Method):
    """Imports an existing output for each pair (see the module docstring)."""

    name = "precomputed"
    paper = "-"
    summary = (
        "Imports stored outputs (e.g. the authors' ours/sa/strotss images) matched by pair name or structure hash."
    )
    devices = ("cpu", "cuda", "mps")
    in_benchmark = False
    in_smoke = False
    Options = PrecomputedOptions

    def __init__(self) -> None:
        self._scans: dict[Path, list[Candidate]] = {}

    def config(self, settings: RunSettings) -> dict[str, Any]:
        return {"method": "precomputed", **PrecomputedOptions.from_settings(settings).identity()}

    def requirements(self, settings: RunSettings):
        from splice.core.method import Requirement

        try:
            opts = PrecomputedOptions.from_settings(settings)
        except ConfigError as e:
            return [Requirement(name="root folder", how=str(e), ready=False)]
        return [Requirement(name="root folder", how="--method-args root=DIR", ready=True, path=opts.root)]

    @staticmethod
    def pairs_from_folder(root: Path, manifest, data_root: Path | None = None) -> list["FolderPair"]:
        """The manifest's pairs stored under ``root`` (see :func:`pairs_from_folder`)."""
        return pairs_from_folder(root, manifest, data_root)

    def candidates(self, root: Path) -> list[Candidate]:
        if root not in self._scans:
            self._scans[root] = scan(root)
        return self._scans[root]

    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:
        opts = PrecomputedOptions.from_settings(settings)
        s = load_rgb(pair.structure, role="structure image")
        a = load_rgb(pair.appearance, role="appearance image")
        match = find_match(pair, self.candidates(Path(opts.root)), opts)
        path = output_file(match.candidate, opts)
        out = load_rgb(path, role="precomputed output", min_side=0)
        note = None
        if opts.geometry:
            try:
                geometry, note = reconcile(parse_geometry(opts.geometry, s.size), out.size)
            except ValueError as e:
                raise ConfigError(f"precomputed: {path}: {e}; fix geometry=") from None
        else:
            geometry = infer_geometry(s.size, out.size)
        info = {
            "weights": {},
            "random_weights": False,
            "inputs": {"structure": s.record(), "appearance": a.record()},
            "label": opts.label,
            "precomputed": {
                "root": opts.root, "key": match.candidate.key, "matched_by": match.matched_by,
                "file": str(path), "sha256": file_sha(path), "method_dir": opts.method_dir,
                "output_record": out.record(),
                "geometry_rule": "given" if opts.geometry else "inferred", "geometry_note": note,
            },
            "seed_used": False,  # the output exists already; the seed cannot change it
        }
        return MethodResult(image=out.image.copy(), geometry=geometry, info=info)


# -- importing a folder into a run store --------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderPair:
    """A pair found in an authors'-layout folder, with where it sits in the manifest."""

    pair: Pair
    folder: Path
    line: int | None = None


def pairs_from_folder(root: Path, manifest, data_root: Path | None = None, structure_dir: str = "A",
                      appearance_dir: str = "B") -> list[FolderPair]:
    """The manifest pairs stored in an authors'-layout folder (``<key>/A``, ``<key>/B``), matched by SHA-256.

    ``manifest`` is a :class:`splice.data.manifests.Manifest` (its rows carry ``structure_sha256``).
    Folders it does not know are skipped with a warning. The pair's images are the folder's own
    ``A``/``B`` files (identical bytes), or the data root's files when ``data_root`` is given.
    """
    by_hash: dict[str, list] = {}
    for row in manifest.rows:
        if row.structure.sha256:
            by_hash.setdefault(row.structure.sha256, []).append(row)
    if not by_hash:
        raise ConfigError(f"manifest {manifest.path} has no structure_sha256 column to match folders by")
    found = []
    for c in scan(root):
        s, a = c.role_image(structure_dir), c.role_image(appearance_dir)
        if s is None or a is None:
            continue
        rows = by_hash.get(file_sha(s), [])
        if len(rows) > 1:
            a_sha = file_sha(a)
            rows = [r for r in rows if r.appearance.sha256 == a_sha] or rows
        if not rows:
            log.warning(
                "precomputed: %s is not a pair of %s (no row has its structure image); skipped", c.folder, manifest.path
            )
            continue
        row = rows[0]
        pair = manifest.resolve(row, data_root) if data_root else Pair(row.pair_id, s, a, manifest.name)
        found.append(FolderPair(pair=pair, folder=c.folder, line=row.line))
    return found
