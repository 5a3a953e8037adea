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
``stretch 256x256``, ``resize-short 512``, ...; see :mod:`baselines.external_geometry`). Without
it the rule is: same size as the structure image -> identity; same aspect ratio (1 %) -> resize;
different aspect -> centre crop to the output's aspect, then resize. A stretch is never guessed.

Importing a whole authors'-layout folder into a run store under a method name of its own
(``paper-ours``, ``paper-sa``, ...), pairs matched to a manifest by SHA-256, records written by the
benchmark runner exactly as for a fresh run::

    python -m baselines.precomputed --root ../shared/data/paper/afhq --dataset afhq --method-dir ours --out runs/paper

Inside ``splice bench`` the method is simply ``precomputed`` (``--methods precomputed
--method-args precomputed.root=DIR precomputed.method_dir=ours``); its jobs are then filed under the method name ``precomputed``.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from splice.core.errors import ConfigError, ImageError, UserError
from splice.core.imageio import IMAGE_SUFFIXES, load_rgb, sha256_file, sha256_image
from splice.core.method import Method, MethodResult, Pair, RunSettings, config_hash
from splice.core.store import JobKey, RunStore

from .external_geometry import infer_geometry, parse_geometry, reconcile

log = logging.getLogger(__name__)

OPTIONS = ("root", "method_dir", "label", "match", "structure_dir", "appearance_dir", "file", "geometry")
MATCH_MODES = ("auto", "name", "hash")


class PrecomputedError(UserError):
    """No (or no unique) stored output for a pair, or an unusable folder."""


@dataclass(frozen=True)
class PrecomputedOptions:
    root: Path
    method_dir: str | None = None
    label: str = ""
    match: str = "auto"
    structure_dir: str = "A"
    appearance_dir: str = "B"
    file: str | None = None
    geometry: str | None = None

    @classmethod
    def from_settings(cls, settings: RunSettings) -> "PrecomputedOptions":
        opts = dict(settings.options or {})
        unknown = sorted(set(opts) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"precomputed: unknown --method-args {', '.join(unknown)}; known: {', '.join(OPTIONS)} "
                              "(address another method's options as <method>.key=value)")
        if not opts.get("root"):
            raise ConfigError("precomputed needs the folder of stored outputs: --method-args root=DIR [method_dir=ours]")
        root = Path(os.path.expandvars(str(opts["root"]))).expanduser()
        if not root.is_dir():
            raise ConfigError(f"precomputed: root={root} is not a folder")
        match = str(opts.get("match") or "auto")
        if match not in MATCH_MODES:
            raise ConfigError(f"precomputed: match={match!r}; use one of {', '.join(MATCH_MODES)}")
        method_dir = str(opts["method_dir"]) if opts.get("method_dir") else None
        label = str(opts.get("label") or method_dir or root.name)
        return cls(
            root=root, method_dir=method_dir, label=label, match=match,
            structure_dir=str(opts.get("structure_dir") or "A"), appearance_dir=str(opts.get("appearance_dir") or "B"),
            file=str(opts["file"]) if opts.get("file") else None,
            geometry=str(opts["geometry"]) if opts.get("geometry") else None,
        )

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
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


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
        raise PrecomputedError(f"precomputed: no image {what}in {folder}; check method_dir= (folders there: "
                               f"{', '.join(sorted(p.name for p in candidate.folder.iterdir() if p.is_dir())) or 'none'})")
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
    summary = "Imports stored outputs (e.g. the authors' ours/sa/strotss images) matched by pair name or structure hash."
    devices = ("cpu", "cuda", "mps")
    in_benchmark = False
    in_smoke = False

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
        return [Requirement(name="root folder", how="--method-args root=DIR", ready=True, path=str(opts.root))]

    def candidates(self, root: Path) -> list[Candidate]:
        if root not in self._scans:
            self._scans[root] = scan(root)
        return self._scans[root]

    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:
        opts = PrecomputedOptions.from_settings(settings)
        s = load_rgb(pair.structure, role="structure image")
        a = load_rgb(pair.appearance, role="appearance image")
        match = find_match(pair, self.candidates(opts.root), opts)
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
                "root": str(opts.root), "key": match.candidate.key, "matched_by": match.matched_by,
                "file": str(path), "sha256": file_sha(path), "method_dir": opts.method_dir,
                "output_record": out.record(),
                "geometry_rule": "given" if opts.geometry else "inferred", "geometry_note": note,
            },
            "seed_used": False,  # the output exists already; the seed cannot change it
        }
        return MethodResult(image=out.image.copy(), geometry=geometry, info=info)


# -- importing a folder into a run store --------------------------------------------------------------------------
TARGET = "baselines.precomputed:PrecomputedMethod"


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
            log.warning("precomputed: %s is not a pair of %s (no row has its structure image); skipped", c.folder, manifest.path)
            continue
        row = rows[0]
        pair = manifest.resolve(row, data_root) if data_root else Pair(row.pair_id, s, a, manifest.name)
        found.append(FolderPair(pair=pair, folder=c.folder, line=row.line))
    return found


def import_outputs(pairs: Iterable[FolderPair | Pair], out: Path, label: str, options: dict[str, Any], seed: int = 0,
                   manifest=None) -> list[dict]:
    """Import every pair's stored output into the run store ``out`` as method ``label``.

    Each pair becomes a benchmark job run by the runner (:func:`splice.runner.execute.execute`), so
    its ``output.png`` and ``record.json`` are exactly those of a fresh run (claims, atomic writes,
    a ``failed`` record for a pair without an output); jobs already imported are skipped.
    """
    from splice.runner.execute import execute
    from splice.runner.jobs import Job, ensure_registered

    ensure_registered(label, TARGET)  # the label is the method's name in the store, tables and reports
    store = RunStore(out)
    settings = {"preset": "paper", "seed": seed, "weights": None, "allow_random_weights": False, "max_side": None,
                "options": {**options, "label": label}}
    config = PrecomputedMethod().config(RunSettings(options=settings["options"]))
    chash = config_hash(config)
    rows = []
    for item in pairs:
        pair, line = (item.pair, item.line) if isinstance(item, FolderPair) else (item, None)
        key = JobKey(dataset=pair.dataset, pair_id=pair.pair_id, method=label, seed=seed, config_hash=chash)
        meta = {"name": manifest.name, "version": manifest.version, "line": line} if manifest is not None else {}
        job = Job(key=key, pair=pair, method_target=TARGET, settings=settings, config=config, manifest=meta)
        outcome = execute(job, store, device="cpu")
        rows.append({"pair_id": pair.pair_id, "dataset": pair.dataset, "method": label, "state": outcome.state,
                     "job_dir": str(store.job_dir(key)), "error": outcome.error})
    return rows


def _main(argv: list[str] | None = None) -> int:
    import json

    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
    @click.option("--root", type=click.Path(file_okay=False, path_type=Path), required=True,
                  help="Folder of pair folders <key>/A (structure), <key>/B (appearance), <key>/<method-dir> (output).")
    @click.option("--dataset", required=True,
                  help="Data set (manifest name such as afhq, or a manifest CSV): pairs are matched to it by SHA-256.")
    @click.option("--method-dir", required=True, help="Subfolder holding the outputs (ours, sa, strotss, ...).")
    @click.option("--label", default=None, help="Method name in the run store [paper-<method-dir>].")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run store folder.")
    @click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Record the pair images under this data root (as `splice bench --root`) instead of <key>/A, <key>/B.")
    @click.option("--geometry", default=None, help="Output geometry (e.g. 'stretch 256x256'); default: inferred.")
    @click.option("--file", "file_glob", default=None, help="Glob picking the output when a folder holds several.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON row per pair on stdout.")
    def cli(root, dataset, method_dir, label, out, data_root, geometry, file_glob, as_json):
        """Import stored outputs into a run store as method LABEL.

        \b
        Examples (the Splice authors' AFHQ sample, three methods into one run):
          python -m baselines.precomputed --root ../shared/data/paper/afhq --dataset afhq --method-dir ours --out runs/paper
          python -m baselines.precomputed --root ../shared/data/paper/afhq --dataset afhq --method-dir sa \\
              --geometry "stretch 256x256" --out runs/paper
          python -m baselines.precomputed --root ../shared/data/paper/afhq --dataset afhq --method-dir strotss --out runs/paper
        Then: splice score --out runs/paper; splice report --out runs/paper
        """
        from splice.data.manifests import get_manifest

        if not root.is_dir():
            raise ConfigError(f"--root {root} is not a folder")
        manifest = get_manifest(dataset)
        label = label or f"paper-{method_dir}"
        found = pairs_from_folder(root, manifest, data_root)
        if not found:
            raise ConfigError(f"no folder under {root} holds A/ and B/ images of a pair of {manifest.path}")
        options = {"root": str(root.absolute()), "method_dir": method_dir, "geometry": geometry, "file": file_glob}
        rows = import_outputs(found, out, label, {k: v for k, v in options.items() if v}, manifest=manifest)
        for r in rows:
            if r["state"] == "failed" or r["state"] == "skipped-failed":
                click.echo(f"failed {r['pair_id']}: {r['error']}", err=True)
        done = sum(r["state"] in ("done", "skipped") for r in rows)
        click.echo(f"imported {done}/{len(rows)} outputs of {root} as {label} into {out}", err=True)
        if as_json:
            for r in rows:
                click.echo(json.dumps(r))
        return 0 if done == len(rows) else 1

    try:
        rc = cli.main(args=argv, prog_name="python -m baselines.precomputed", standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(_main())
