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

Importing a whole folder into a run store under a method name of its own (``paper-ours``,
``paper-sa``, ...)::

    python -m baselines.precomputed --root ../shared/data/paper/afhq --method-dir ours --label paper-ours \\
        --dataset afhq --manifest ../shared/data/manifests/afhq.csv --out runs/paper-sample
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from splice.atomic import atomic_save_image
from splice.errors import ConfigError, ImageError, UserError
from splice.imageio import IMAGE_SUFFIXES, load_rgb, sha256_file, sha256_image
from splice.method import Method, MethodResult, Pair, RunSettings, config_hash
from splice.store import JobKey, RunStore

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
            raise ConfigError(f"precomputed: unknown --method-args {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
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
        from splice.method import Requirement

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
def read_manifest_hashes(path: Path) -> list[dict[str, str]]:
    """Rows (``pair_id``, ``structure_sha256``, optional ``appearance_sha256``) of a manifest CSV."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ConfigError(f"cannot read manifest {path} ({e.strerror})") from None
    if not rows or "pair_id" not in rows[0] or "structure_sha256" not in rows[0]:
        raise ConfigError(f"manifest {path} needs the columns pair_id and structure_sha256")
    return rows


def pairs_from_folder(root: Path, dataset: str, manifest: Path | None = None, structure_dir: str = "A",
                      appearance_dir: str = "B") -> list[Pair]:
    """The pairs stored in an authors'-layout folder (``<key>/A``, ``<key>/B``).

    With a manifest, pair ids are the manifest's (matched by structure and appearance SHA-256) and
    folders the manifest does not know are skipped; without, the id is ``<dataset>-<key>``.
    """
    rows = read_manifest_hashes(manifest) if manifest else None
    pairs = []
    for c in scan(root):
        s, a = c.role_image(structure_dir), c.role_image(appearance_dir)
        if s is None or a is None:
            continue
        pair_id = f"{dataset}-{c.key}"
        if rows is not None:
            s_sha, a_sha = file_sha(s), file_sha(a)
            hits = [r for r in rows if r["structure_sha256"] == s_sha]
            if len(hits) > 1:
                hits = [r for r in hits if r.get("appearance_sha256") == a_sha] or hits
            if not hits:
                log.warning("precomputed: %s is not in %s (structure sha256 %s...); skipped", c.folder, manifest, s_sha[:12])
                continue
            pair_id = hits[0]["pair_id"]
        pairs.append(Pair(pair_id=pair_id, structure=s, appearance=a, dataset=dataset))
    return pairs


def _versions() -> dict[str, str]:
    import numpy
    import PIL

    return {"python": platform.python_version(), "numpy": numpy.__version__, "pillow": PIL.__version__}


def import_outputs(pairs: Iterable[Pair], out: Path, method_name: str, options: dict[str, Any], seed: int = 0) -> list[dict]:
    """Import every pair's stored output into the run store ``out`` under ``method_name``.

    Each job gets ``output.png`` and a ``record.json`` in the run store's schema (written last,
    atomically), so scoring, tables and reports treat it like any other method's result. A pair
    without an output becomes a ``failed`` record and the import continues.
    """
    store = RunStore(out)
    method = PrecomputedMethod()
    settings = RunSettings(preset="paper", seed=seed, device="cpu", options=dict(options))
    config = method.config(settings)
    chash = config_hash(config)
    rows = []
    for pair in pairs:
        key = JobKey(dataset=pair.dataset, pair_id=pair.pair_id, method=method_name, seed=seed, config_hash=chash)
        start = time.perf_counter()
        record: dict[str, Any] = {
            "pair": pair.to_dict(), "config": config, "output": None, "geometry": None, "random_weights": False,
            "weights": {}, "device": "cpu", "peak_memory_mb": None, "info": {}, "error": None, "error_type": None,
            "attempts": [], "versions": _versions(), "host": platform.node(),
        }
        try:
            result = method.run(pair, settings)
        except UserError as e:
            record.update(status="failed", error=str(e), error_type=type(e).__name__)
        else:
            atomic_save_image(store.output_path(key), result.image)
            inputs = {role: {**rec, "sha256": file_sha(Path(rec["path"]))} for role, rec in result.info["inputs"].items()}
            record.update(status="ok", output="output.png", geometry=result.geometry.to_dict(), inputs=inputs,
                          info=result.info)
        record["seconds"] = round(time.perf_counter() - start, 4)
        record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        store.write_record(key, record)
        rows.append({"pair_id": pair.pair_id, "dataset": pair.dataset, "method": method_name, "status": record["status"],
                     "job_dir": str(store.job_dir(key)), "error": record["error"]})
    return rows


def _main(argv: list[str] | None = None) -> int:
    import json

    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
    @click.option("--root", type=click.Path(file_okay=False, path_type=Path), required=True,
                  help="Folder of pair folders (<key>/A, <key>/B, <key>/<method-dir>) or of flat images.")
    @click.option("--method-dir", default=None, help="Subfolder holding the outputs (ours, sa, strotss, ...).")
    @click.option("--label", default=None, help="Method name in the run store [paper-<method-dir>].")
    @click.option("--dataset", required=True, help="Data set name for the run store (afhq, mountains, wild-pairs, ...).")
    @click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Manifest CSV (pair_id, structure_sha256): use its pair ids, matched by image hash.")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run store folder.")
    @click.option("--geometry", default=None, help="Output geometry (e.g. 'stretch 256x256'); default: inferred.")
    @click.option("--file", "file_glob", default=None, help="Glob picking the output when a folder holds several.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON row per pair on stdout.")
    def cli(root, method_dir, label, dataset, manifest, out, geometry, file_glob, as_json):
        """Import stored outputs into a run store as method LABEL.

        \b
        Examples (the Splice authors' AFHQ sample, three methods):
          python -m baselines.precomputed --root ../shared/data/paper/afhq --dataset afhq \\
              --manifest ../shared/data/manifests/afhq.csv --method-dir ours --label paper-ours --out runs/paper
          python -m baselines.precomputed --root ../shared/data/paper/afhq --dataset afhq \\
              --manifest ../shared/data/manifests/afhq.csv --method-dir sa --label paper-sa --out runs/paper
        """
        if not root.is_dir():
            raise ConfigError(f"--root {root} is not a folder")
        label = label or (f"paper-{method_dir}" if method_dir else root.name)
        pairs = pairs_from_folder(root, dataset, manifest)
        if not pairs:
            raise ConfigError(f"no pair folders with A/ and B/ images under {root}" + (f" known to {manifest}" if manifest else ""))
        options = {"root": str(root), "method_dir": method_dir, "label": label, "geometry": geometry, "file": file_glob}
        rows = import_outputs(pairs, out, label, {k: v for k, v in options.items() if v})
        ok = sum(r["status"] == "ok" for r in rows)
        for r in rows:
            if r["status"] != "ok":
                click.echo(f"failed {r['pair_id']}: {r['error']}", err=True)
        click.echo(f"imported {ok}/{len(rows)} outputs of {root} as {label} into {out}", err=True)
        if as_json:
            for r in rows:
                click.echo(json.dumps(r))
        return 0 if ok == len(rows) else 1

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
