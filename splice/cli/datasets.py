"""``splice datasets``: list, check and import the evaluation data sets (manifests in ``datasets/``).

The pairs are those of the Splice paper (Tumanyan et al., CVPR 2022): Wild-Pairs, AFHQ and
Mountains, plus the embedded ``demo`` pairs. See ``datasets/README.md`` for the schema and
how to obtain the images.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from splice.cli import options as opt
from splice.core.errors import UserError
from splice.data.manifests import (
    available_manifests,
    check_manifest,
    datasets_dir,
    get_manifest,
    import_images,
    load_manifest,
)

log = logging.getLogger(__name__)


def _manifests(names: str | None):
    if names:
        return [get_manifest(n.strip()) for n in names.split(",") if n.strip()]
    return [load_manifest(p, name=n) for n, p in available_manifests().items()]


@click.group(name="datasets")
def command() -> None:
    """List, check and import the evaluation data sets.

    \b
    Examples:
      splice datasets list
      splice datasets check --root data --datasets afhq
      splice datasets import --datasets afhq --from ~/Downloads/afhq --root data --link
      splice datasets check --root datasets --datasets demo --json
    """


@command.command(name="list")
@opt.root("Also count how many pairs have both images present under this data root.")
@opt.as_json()
def list_cmd(root: str | None, as_json: bool) -> None:
    """The data sets and their pair counts.

    \b
    Examples:
      splice datasets list
      splice datasets list --root data --json
    """
    root = Path(root) if root else None
    rows = []
    for m in _manifests(None):
        entry = {"name": m.name, "pairs": len(m), "version": m.version, "manifest": str(m.path),
                 "description": m.description}  # fmt: skip
        if root is not None:
            entry["present"] = sum(all((root / r.image(role).path).is_file() for role in ("structure", "appearance"))
                                   for r in m.rows)  # fmt: skip
        rows.append(entry)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo(f"no manifests in {datasets_dir()}", err=True)
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        present = f"  {r['present']:>4} present" if root is not None else ""
        click.echo(f"{r['name']:<{width}}  {r['pairs']:>4} pairs  v{r['version']}{present}  {r['description']}")


@command.command(name="check")
@opt.root("The data root the manifest paths are relative to.", required=True)
@opt.datasets("Data set name(s) or manifest path(s), comma-separated (default: all).")
@opt.pairs("Only these pair ids (comma-separated).")
@click.option("--no-hash", is_flag=True, help="Skip the SHA-256 comparison (faster; still decodes every image).")
@click.option("--problems-only", is_flag=True, help="Print only rows with a problem.")
@opt.as_json("Print the per-row report as JSON on stdout.")
def check_cmd(root: str, datasets: str | None, pairs: str | None, no_hash: bool, problems_only: bool,
              as_json: bool) -> None:  # fmt: skip
    """Verify every row's images under a data root: present, decodable, hash, size.

    Exit code 0 when every image is right, 1 otherwise.

    \b
    Examples:
      splice datasets check --root datasets --datasets demo
      splice datasets check --root data --datasets afhq,mountains --problems-only
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--root {root} is not a folder; create it and fill it with `splice datasets import`")
    ids = [p.strip() for p in pairs.split(",") if p.strip()] if pairs else None
    report = []
    n_bad = n_ok = 0
    for m in _manifests(datasets):
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(m.select(ids)), desc=f"check {m.name}", unit="pair", file=sys.stderr,
                       disable=as_json or not sys.stderr.isatty(), leave=False)  # fmt: skip
        except ImportError:  # pragma: no cover
            bar = None
        tick = (lambda _r: bar.update()) if bar else None
        results = check_manifest(m, root, ids, verify_hash=not no_hash, progress=tick)
        if bar:
            bar.close()
        for r in results:
            n_ok += r.ok
            n_bad += not r.ok
            report.append({"dataset": m.name, "pair_id": r.pair_id, "line": r.line, "ok": r.ok,
                           "images": [{"role": c.role, "path": str(c.path), "status": c.status, "detail": c.detail}
                                      for c in r.images]})  # fmt: skip
            if not as_json and (not problems_only or not r.ok):
                click.echo(f"{'ok' if r.ok else 'BAD':<4} {m.name}/{r.pair_id}" + ("" if r.ok else f"  {r.summary()}"))
    if as_json:
        click.echo(json.dumps({"root": str(root), "ok": n_ok, "bad": n_bad, "rows": report}, indent=1))
    click.echo(f"{n_ok} pair(s) ok, {n_bad} with missing or wrong images under {root}", err=True)
    if n_bad:
        click.echo(f"fill the root with: splice datasets import --datasets NAME --from DIR --root {root} "
                   "(see datasets/README.md)", err=True)  # fmt: skip
        sys.exit(1)


@command.command(name="import")
@opt.datasets("Data set name(s) or manifest path(s), comma-separated, or 'all'.", required=True)
@click.option("--from", "sources", multiple=True, required=True, type=click.Path(path_type=Path),
              help="A folder tree holding the images under any names (repeatable): a downloaded AFHQ, "
                   "the authors' pairs...")
@opt.root("The data root to fill.", required=True)
@click.option("--link", "mode", flag_value="symlink", help="Symlink instead of copying.")
@click.option("--hardlink", "mode", flag_value="hardlink", help="Hard-link instead of copying (same file system only).")
@click.option("--copy", "mode", flag_value="copy", default=True, help="Copy the files (default).")
@opt.dry_run("Report what would be placed; write nothing.")
@opt.as_json("Print the report as JSON on stdout.")
def import_cmd(datasets: str, sources: tuple[Path, ...], root: str, mode: str, dry_run: bool, as_json: bool) -> None:
    """Fill a data root from any folder tree of images by matching SHA-256.

    Every image of the manifest is looked up by content, so renamed files (the authors called
    every AFHQ image img.png) are found. Exit code 0 when nothing is missing, 1 otherwise.

    \b
    Examples:
      splice datasets import --datasets afhq --from ~/data/afhq --root data --link
      splice datasets import --datasets all --from ~/Downloads --root data
    """
    from splice.core.paths import ensure_writable_dir

    root = Path(root)
    if not dry_run:
        ensure_writable_dir(root, "--root")
    names = None if datasets.strip() == "all" else datasets
    out = []
    n_missing = 0
    for m in _manifests(names):
        rep = import_images(m, sources, root, mode=mode, dry_run=dry_run)
        n_missing += len(rep.missing) + len(rep.unhashed)
        out.append({"dataset": m.name, "placed": len(rep.placed), "present": len(rep.present), "scanned": rep.scanned,
                    "missing": [{"pair_id": p, "role": r, "path": e.path, "sha256": e.sha256, "source": e.source,
                                 "source_id": e.source_id} for p, r, e in rep.missing],
                    "unhashed": [{"pair_id": p, "role": r, "path": e.path} for p, r, e in rep.unhashed]})  # fmt: skip
        verb = "would place" if dry_run else {"copy": "copied", "symlink": "linked", "hardlink": "hard-linked"}[mode]
        unhashed = f", no sha256 in manifest {len(rep.unhashed)}" if rep.unhashed else ""
        click.echo(f"{m.name}: {verb} {len(rep.placed)}, already present {len(rep.present)}, "
                   f"missing {len(rep.missing)}{unhashed} ({rep.scanned} files scanned)", err=True)  # fmt: skip
        if not as_json:
            for p, r, e in rep.missing:
                src = f" [{e.source} {e.source_id}]" if e.source_id else (f" [{e.source}]" if e.source else "")
                click.echo(f"missing {m.name}/{p} {r}: {e.path} sha256 {e.sha256[:16]}...{src}")
    if as_json:
        click.echo(json.dumps(out, indent=1))
    if n_missing:
        click.echo(f"{n_missing} image(s) still missing; see datasets/README.md for where to get them", err=True)
        sys.exit(1)
