"""Manifests: the shipped data sets, validation of every kind of bad row, check and import by SHA-256."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from splice.core.errors import ManifestError
from splice.data.manifests import (
    check_manifest,
    find_manifest,
    get_manifest,
    import_images,
    load_manifest,
    parse_dataset_list,
)
from tests.support import PROJECT
from tests.support.images import make_image

HEADER = ("pair_id,structure,structure_sha256,structure_w,structure_h,"
          "appearance,appearance_sha256,appearance_w,appearance_h")
SHA_A = "a" * 64
SHA_B = "b" * 64


def write_manifest(path: Path, rows: list[str], header: str = HEADER, meta: str = "# version: 1\n") -> Path:
    path.write_text(meta + header + "\n" + "".join(r + "\n" for r in rows))
    return path


def good_row(pid: str = "p1") -> str:
    return f"{pid},x/{pid}/s.png,{SHA_A},96,80,x/{pid}/a.png,{SHA_B},72,72"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------
# the shipped manifests
# --------------------------------------------------------------------------------------
def test_shipped_manifests_hold_the_papers_facts():
    sizes = {"wild-pairs": 33, "afhq": 50, "mountains": 51, "demo": 2}
    for name, n in sizes.items():
        m = get_manifest(name)
        assert (m.name, len(m), m.version) == (name, n, 1)
    afhq = get_manifest("afhq")
    row = afhq.row("afhq-00")
    assert row.structure.path == "afhq/afhq-00/structure/img.png"
    assert row.structure.sha256 == "d07190c07d427882d78b4333aa24b93fe1ad27915b009045a2715134aa7f722f"
    assert (row.structure.width, row.structure.height) == (512, 512)
    refs = {"ours": "43c26a62f17fbed4", "sa": "63d741ff9459a789", "strotss": "c1c599dcb0d39d13"}
    assert row.reference_outputs == refs
    m1 = get_manifest("mountains").row("mountains-01")
    assert (m1.structure.source, m1.structure.source_id) == ("flickr", "51575122501")
    assert m1.structure.file_name == "51575122501_0ac708d653_c.jpg"
    wild = get_manifest("wild_pairs")  # the shared facts' spelling works too
    assert wild.name == "wild-pairs"
    assert wild.row("animals-bears-grizzly2panda").appearance.source_id == "4000501"


def test_demo_resolves_against_the_datasets_folder_and_checks_ok():
    m = get_manifest("demo")
    pairs = m.pairs(PROJECT / "datasets")
    assert [p.pair_id for p in pairs] == ["giraffe_zebra", "sa_208_209"]
    assert pairs[0].structure == PROJECT / "datasets" / "demo" / "giraffe_zebra" / "structure.png"
    assert all(p.dataset == "demo" for p in pairs)
    report = check_manifest(m, PROJECT / "datasets")
    assert [r.ok for r in report] == [True, True], [r.summary() for r in report]


def test_lookup_by_name_alias_and_path(tmp_path):
    assert find_manifest("afhq") == PROJECT / "datasets" / "afhq.csv"
    p = write_manifest(tmp_path / "mine.csv", [good_row()])
    assert find_manifest(str(p)) == p
    m = parse_dataset_list(f"afhq,{p},afhq")
    assert [x.name for x in m] == ["afhq", "mine"]
    with pytest.raises(ManifestError, match=r"unknown data set 'afhk'.*did you mean afhq"):
        find_manifest("afhk")
    with pytest.raises(ManifestError, match="manifest not found"):
        find_manifest(str(tmp_path / "nope.csv"))


def test_env_var_points_at_another_datasets_folder(tmp_path, monkeypatch):
    write_manifest(tmp_path / "custom.csv", [good_row()])
    monkeypatch.setenv("SPLICE_DATASETS", str(tmp_path))
    assert get_manifest("custom").ids() == ["p1"]


# --------------------------------------------------------------------------------------
# validation: every bad row is one line naming file and line
# --------------------------------------------------------------------------------------
BAD_ROWS = [
    # (rows, header, expected line, message fragment)
    ([good_row(), good_row("p2"), good_row("p1")], HEADER, 5, "duplicate pair_id 'p1' (first on line 3)"),
    ([good_row().replace(SHA_A, "abc123")], HEADER, 3, "structure_sha256 'abc123' is not 64 hex digits"),
    ([good_row().replace(SHA_B, "g" * 64)], HEADER, 3, "appearance_sha256"),
    ([good_row().replace("x/p1/s.png", "/etc/passwd")], HEADER, 3, "is absolute"),
    ([good_row().replace("x/p1/s.png", "../outside/s.png")], HEADER, 3, "escapes the data root"),
    ([good_row().replace("x/p1/a.png", "x/../../a.png")], HEADER, 3, "escapes the data root"),
    ([good_row().replace("x/p1/s.png", "C:/data/s.png")], HEADER, 3, "is absolute"),
    ([good_row().replace("x/p1/s.png", "x\\p1\\s.png")], HEADER, 3, "backslashes"),
    ([good_row().replace(",96,80,", ",0,80,")], HEADER, 3, "structure_w '0' is not a valid image size"),
    ([good_row().replace(",72,72", ",72,big")], HEADER, 3, "appearance_h 'big' is not a whole number"),
    ([good_row().replace(",96,80,", ",-5,80,")], HEADER, 3, "structure_w '-5'"),
    ([good_row(), "p2,x/s.png,,"], HEADER, 4, "fields but the header has 9 columns"),
    ([good_row("bad id")], HEADER, 3, "not usable as a folder name"),
    ([good_row("../p")], HEADER, 3, "not usable as a folder name"),
    ([good_row().replace("x/p1/s.png", "")], HEADER, 3, "empty structure path"),
    ([good_row()], HEADER.replace("appearance,", "appearance_file,"), 2, "missing column(s) appearance"),
    ([good_row()], HEADER.replace("pair_id", "id"), 2, "missing column(s) pair_id"),
]


@pytest.mark.parametrize("rows,header,line,fragment", BAD_ROWS)
def test_bad_rows_name_file_and_line(tmp_path, rows, header, line, fragment):
    path = write_manifest(tmp_path / "bad.csv", rows, header)
    with pytest.raises(ManifestError) as e:
        load_manifest(path)
    msg = str(e.value)
    assert f"{path}:{line}:" in msg
    assert fragment in msg
    assert "\n" not in msg


def test_bad_reference_outputs_and_duplicate_column(tmp_path):
    header = HEADER + ",reference_outputs"
    path = write_manifest(tmp_path / "r.csv", [good_row() + ",ours=123"], header)
    with pytest.raises(ManifestError, match=r"r.csv:3: reference_outputs entry 'ours=123'"):
        load_manifest(path)
    path = write_manifest(tmp_path / "d.csv", [good_row() + ",x"], HEADER + ",pair_id")
    with pytest.raises(ManifestError, match=r"d.csv:2: column\(s\) pair_id appear more than once"):
        load_manifest(path)


def test_version_empty_and_headerless_manifests(tmp_path):
    with pytest.raises(ManifestError, match=r"manifest version 2 is not supported"):
        load_manifest(write_manifest(tmp_path / "v.csv", [good_row()], meta="# version: 2\n"))
    with pytest.raises(ManifestError, match=r"'# version: one' is not a whole number"):
        load_manifest(write_manifest(tmp_path / "v1.csv", [good_row()], meta="# version: one\n"))
    with pytest.raises(ManifestError, match="has no rows"):
        load_manifest(write_manifest(tmp_path / "e.csv", []))
    (tmp_path / "h.csv").write_text("# version: 1\n# only comments\n")
    with pytest.raises(ManifestError, match="no header row"):
        load_manifest(tmp_path / "h.csv")


def test_optional_columns_comments_and_blank_lines(tmp_path):
    path = tmp_path / "min.csv"
    path.write_text("# name: minimal\n# description: two pairs\npair_id,structure,appearance\n\nq1,a/s.png,./a/t.png\n"
                    "# a comment row\nq2,b/s.jpg,b/t.jpg\n")  # fmt: skip
    m = load_manifest(path)
    assert (m.name, m.version, m.description) == ("minimal", 1, "two pairs")
    assert [(r.pair_id, r.line) for r in m.rows] == [("q1", 5), ("q2", 7)]
    assert m.rows[0].appearance.path == "a/t.png" and m.rows[0].structure.sha256 is None
    assert m.resolve(m.rows[1], tmp_path / "root").structure == (tmp_path / "root" / "b" / "s.jpg").absolute()
    assert [r.pair_id for r in m.select(["q2"])] == ["q2"]
    assert [r.pair_id for r in m.select(limit=1)] == ["q1"]
    with pytest.raises(ManifestError, match=r"pair 'q22' is not in data set 'minimal'; did you mean q2"):
        m.select(["q22"])


# --------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------
def _data(tmp_path: Path, n: int = 3) -> tuple[Path, Path, list[Path]]:
    """A data root with n pairs and a manifest with their true hashes and sizes."""
    root = tmp_path / "root"
    rows = []
    for i in range(n):
        s = root / "set" / f"p{i}" / "structure" / f"s{i}.png"
        a = root / "set" / f"p{i}" / "appearance" / f"a{i}.jpg"
        s.parent.mkdir(parents=True)
        a.parent.mkdir(parents=True)
        make_image(96, 80, seed=i).save(s)
        make_image(72, 64, seed=100 + i).save(a, quality=90)
        rows.append(f"p{i},set/p{i}/structure/s{i}.png,{sha(s)},96,80,set/p{i}/appearance/a{i}.jpg,{sha(a)},72,64")
    return root, write_manifest(tmp_path / "set.csv", rows), rows


def test_check_reports_each_problem_per_row(tmp_path):
    root, path, _ = _data(tmp_path, 5)
    (root / "set/p1/structure/s1.png").unlink()  # missing
    (root / "set/p2/appearance/a2.jpg").write_bytes(b"not an image")  # undecodable
    make_image(96, 80, seed=77).save(root / "set/p3/structure/s3.png")  # same size, other pixels
    make_image(90, 80, seed=4).save(root / "set/p4/structure/s4.png")  # other size (and hash)
    m = load_manifest(path)
    rep = {r.pair_id: r for r in check_manifest(m, root)}
    assert rep["p0"].ok
    assert [c.status for c in rep["p1"].images] == ["missing", "ok"]
    assert [c.status for c in rep["p2"].images] == ["ok", "unreadable"]
    assert [c.status for c in rep["p3"].images] == ["sha256", "ok"]
    assert [c.status for c in rep["p4"].images] == ["sha256", "ok"]
    rep2 = {r.pair_id: r for r in check_manifest(m, root, verify_hash=False)}
    assert rep2["p3"].ok and [c.status for c in rep2["p4"].images] == ["size", "ok"]
    assert "is 90x80, the manifest expects 96x80" in rep2["p4"].summary()


# --------------------------------------------------------------------------------------
# import by hash
# --------------------------------------------------------------------------------------
def _scatter(tmp_path: Path, root: Path, skip: set[str] = frozenset()) -> Path:
    """Move the root's images into a differently named tree (as a download would be)."""
    src = tmp_path / "download"
    for i, p in enumerate(sorted(root.rglob("*.*"))):
        if p.name in skip:
            p.unlink()
            continue
        dst = src / f"dir{i % 2}" / f"img_{i:03d}{p.suffix}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        p.rename(dst)
    (src / "notes.txt").write_text("not an image")
    return src


@pytest.mark.parametrize("mode", ["copy", "symlink", "hardlink"])
def test_import_by_hash_places_every_file_and_reports_missing(tmp_path, mode):
    root, path, _ = _data(tmp_path, 3)
    src = _scatter(tmp_path, root, skip={"a2.jpg"})
    m = load_manifest(path)
    dry = import_images(m, [src], root, mode=mode, dry_run=True)
    assert len(dry.placed) == 5 and not any(root.rglob("*.png"))
    rep = import_images(m, [src], root, mode=mode)
    assert len(rep.placed) == 5 and rep.scanned == 5
    assert [(p, r) for p, r, _ in rep.missing] == [("p2", "appearance")]
    results = {r.pair_id: r.ok for r in check_manifest(m, root)}
    assert results == {"p0": True, "p1": True, "p2": False}
    placed = root / "set/p0/structure/s0.png"
    assert placed.is_symlink() == (mode == "symlink")
    if mode == "hardlink":
        assert placed.stat().st_nlink == 2
    again = import_images(m, [src], root, mode=mode)
    assert (len(again.placed), len(again.present), len(again.missing)) == (0, 5, 1)
    assert not [p for p in root.rglob("*") if p.name.endswith((".import", ".tmp"))]


def test_import_replaces_a_wrong_file_and_reports_unhashed_rows(tmp_path):
    root, path, rows = _data(tmp_path, 1)
    src = tmp_path / "src"
    src.mkdir()
    good = root / "set/p0/structure/s0.png"
    (src / "x.png").write_bytes(good.read_bytes())
    make_image(96, 80, seed=9).save(good)  # the wrong file in place
    path.write_text(path.read_text() + "p9,set/p9/s.png,,,,set/p9/a.png,,,\n")
    m = load_manifest(path)
    rep = import_images(m, [src], root)
    assert [(p, r) for p, r, _, _ in rep.placed] == [("p0", "structure")]
    assert sha(good) == m.row("p0").structure.sha256
    assert {(p, r) for p, r, _ in rep.unhashed} == {("p9", "structure"), ("p9", "appearance")}
    assert not rep.complete


def test_import_from_the_authors_paper_folder(tmp_path, paper_data):
    rep = import_images(get_manifest("afhq"), [paper_data], tmp_path, mode="symlink")
    ids = sorted({p for p, _, _, _ in rep.placed})
    assert {"afhq-00", "afhq-01", "afhq-02", "afhq-03", "afhq-04", "afhq-05"} <= set(ids)
    checks = check_manifest(get_manifest("afhq"), tmp_path, ["afhq-00", "afhq-05"])
    assert all(c.ok for c in checks), [c.summary() for c in checks]


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------
def _splice(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run([sys.executable, "-m", "splice", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)  # fmt: skip


def test_cli_list_check_import_exit_codes(tmp_path):
    r = _splice("datasets", "list", "--json")
    assert r.returncode == 0, r.stderr
    listed = {d["name"]: d["pairs"] for d in json.loads(r.stdout)}
    assert listed == {"afhq": 50, "demo": 2, "mountains": 51, "wild-pairs": 33}

    r = _splice("datasets", "check", "--root", "datasets", "--dataset", "demo")
    assert r.returncode == 0, r.stderr
    assert "ok   demo/giraffe_zebra" in r.stdout and "2 pair(s) ok, 0 with missing" in r.stderr

    root, path, _ = _data(tmp_path, 2)
    (root / "set/p1/appearance/a1.jpg").unlink()
    r = _splice("datasets", "check", "--root", str(root), "--dataset", str(path), "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert (out["ok"], out["bad"]) == (1, 1)
    assert out["rows"][1]["images"][1]["status"] == "missing"

    src = _scatter(tmp_path, root)
    r = _splice("datasets", "import", "--dataset", str(path), "--from", str(src), "--root", str(tmp_path / "new"))
    assert r.returncode == 1  # a1.jpg is nowhere
    assert "copied 3, already present 0, missing 1" in r.stderr
    assert "missing set/p1 appearance: set/p1/appearance/a1.jpg" in r.stdout

    bad = write_manifest(tmp_path / "bad.csv", [good_row(), good_row()])
    r = _splice("datasets", "check", "--root", str(root), "--dataset", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {bad}:4: duplicate pair_id 'p1' (first on line 3); pair ids must be unique"
