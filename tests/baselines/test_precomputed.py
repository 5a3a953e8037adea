"""precomputed: stored outputs on a folder layout like the Splice authors', built in tmp_path."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from baselines.precomputed import (
    PrecomputedError,
    PrecomputedMethod,
    _main,
    import_outputs,
    pair_names,
    pairs_from_folder,
)
from splice.core.errors import ConfigError
from splice.core.geometry import Geometry
from splice.core.imageio import sha256_file
from splice.data.manifests import load_manifest
from splice.core.method import Pair, RunSettings
from splice.core.registry import methods
from splice.core.store import RunStore

from conftest import make_image

SIZES = {"0": (96, 96), "1": (120, 80), "2": (96, 96)}


@pytest.fixture
def layout(tmp_path):
    """paper/afhq/<k>/{A,B,ours,sa,strotss}/ like the authors', and the same inputs under other names in data/."""
    paper = tmp_path / "paper" / "afhq"
    data = tmp_path / "data"
    data.mkdir()
    pairs = []
    for i, (k, size) in enumerate(SIZES.items()):
        d = paper / k
        for sub in ("A", "B", "ours", "sa", "strotss"):
            (d / sub).mkdir(parents=True)
        make_image(*size, seed=10 + i).save(d / "A" / "img.png")
        make_image(80, 72, seed=20 + i).save(d / "B" / "img.png")
        make_image(*size, seed=30 + i).convert("RGBA").save(d / "ours" / f"media_images_img_output_{i}_0.png")
        make_image(64, 64, seed=40 + i).save(d / "sa" / "out.png")
        make_image(*size, seed=50 + i).save(d / "strotss" / "out.png")
        s, a = data / f"struct_{k}.png", data / f"app_{k}.png"
        shutil.copyfile(d / "A" / "img.png", s)
        shutil.copyfile(d / "B" / "img.png", a)
        pairs.append(Pair(pair_id=f"afhq-{int(k):02d}", structure=s, appearance=a, dataset="afhq"))
    return paper, pairs


def _run(pair, **options):
    return PrecomputedMethod().run(pair, RunSettings(options=options))


def test_by_hash_with_the_authors_layout(layout):
    paper, pairs = layout
    odd = Pair(pair_id="whatever", structure=pairs[1].structure, appearance=pairs[1].appearance, dataset="afhq")
    res = _run(odd, root=str(paper), method_dir="ours")
    stored = paper / "1" / "ours" / "media_images_img_output_1_0.png"
    assert res.info["precomputed"]["matched_by"] == "hash" and res.info["precomputed"]["key"] == "1"
    assert res.info["precomputed"]["file"] == str(stored) and res.info["precomputed"]["sha256"] == sha256_file(stored)
    assert np.array_equal(np.asarray(res.image), np.asarray(Image.open(stored).convert("RGB")))
    assert res.geometry.is_identity and res.info["label"] == "ours"  # same size as the structure image


def test_inferred_geometry_resize_and_centre_crop(layout):
    paper, pairs = layout
    square = _run(pairs[0], root=str(paper), method_dir="sa")
    assert square.geometry == Geometry(source=(96, 96), box=(0, 0, 96, 96), output=(64, 64), kind="resize")
    wide = _run(pairs[1], root=str(paper), method_dir="sa")  # 120x80 structure, 64x64 output: aspect differs
    assert wide.geometry == Geometry(source=(120, 80), box=(20, 0, 100, 80), output=(64, 64), kind="center-crop")
    assert wide.info["precomputed"]["geometry_rule"] == "inferred"


def test_given_geometry(layout):
    paper, pairs = layout
    res = _run(pairs[1], root=str(paper), method_dir="sa", geometry="stretch 64x64")
    assert res.geometry == Geometry(source=(120, 80), box=(0, 0, 120, 80), output=(64, 64), kind="stretch")
    assert res.info["precomputed"]["geometry_rule"] == "given"
    with pytest.raises(ConfigError, match="output is 64x64 but the geometry predicts 96x64"):
        _run(pairs[1], root=str(paper), method_dir="sa", geometry="resize-short 64")


def test_by_hash_of_decoded_pixels_when_bytes_differ(layout, tmp_path):
    paper, pairs = layout
    recoded = tmp_path / "recoded.png"
    Image.open(pairs[2].structure).save(recoded, compress_level=0)  # same pixels, other bytes
    assert sha256_file(recoded) != sha256_file(pairs[2].structure)
    p = Pair(pair_id="x", structure=recoded, appearance=pairs[2].appearance, dataset="afhq")
    res = _run(p, root=str(paper), method_dir="strotss")
    assert res.info["precomputed"]["key"] == "2" and res.info["precomputed"]["matched_by"] == "hash"


def test_by_name_flat_folder_per_method(layout, tmp_path):
    _, pairs = layout
    flat = tmp_path / "flat-method"
    flat.mkdir()
    make_image(48, 32, seed=99).save(flat / "afhq-01.png")
    make_image(48, 48, seed=98).save(flat / "afhq-00.png")
    res = _run(pairs[1], root=str(flat), label="mine")
    assert res.info["precomputed"]["matched_by"] == "name" and res.info["label"] == "mine"
    assert res.geometry.kind == "resize" and res.geometry.output == (48, 32)  # 120x80 -> 48x32 keeps the aspect
    with pytest.raises(PrecomputedError, match="no output for pair afhq-02 in .*flat-method"):
        _run(pairs[2], root=str(flat))


def test_name_rules():
    assert pair_names(Pair("afhq-03", Path("s"), Path("a"), "afhq")) == {"afhq-03", "3"}
    assert pair_names(Pair("mountains-12", Path("s"), Path("a"), "mountains")) == {"mountains-12", "12"}
    assert pair_names(Pair("cows", Path("s"), Path("a"), "wild")) == {"cows"}


def test_name_match_with_a_different_structure_is_refused(layout, tmp_path):
    paper, pairs = layout
    other = tmp_path / "other.png"
    make_image(96, 96, seed=77).save(other)
    p = Pair(pair_id="afhq-00", structure=other, appearance=pairs[0].appearance, dataset="afhq")
    with pytest.raises(PrecomputedError, match=r"folder .*afhq/0 is named like pair afhq-00 but its structure image"):
        _run(p, root=str(paper), method_dir="ours")
    res = _run(p, root=str(paper), method_dir="ours", match="name")  # forced
    assert res.info["precomputed"]["key"] == "0" and res.info["precomputed"]["matched_by"] == "name"
    with pytest.raises(PrecomputedError, match="no folder of .* has pair afhq-00's structure image"):
        _run(p, root=str(paper), method_dir="ours", match="hash")


def test_same_structure_twice_is_narrowed_by_appearance(layout):
    paper, pairs = layout
    twin = paper / "7"
    shutil.copytree(paper / "0", twin)  # same structure image ...
    make_image(80, 72, seed=123).save(twin / "B" / "img.png")  # ... other appearance image
    p = Pair(pair_id="q", structure=pairs[0].structure, appearance=twin / "B" / "img.png", dataset="afhq")
    assert _run(p, root=str(paper), method_dir="ours").info["precomputed"]["key"] == "7"
    assert _run(pairs[0], root=str(paper), method_dir="ours").info["precomputed"]["key"] == "0"
    shutil.copyfile(paper / "0" / "B" / "img.png", twin / "B" / "img.png")  # now indistinguishable
    with pytest.raises(PrecomputedError, match="matches 2 folders"):
        _run(Pair("q", pairs[0].structure, pairs[0].appearance, "afhq"), root=str(paper), method_dir="ours")


def test_several_images_need_file_glob(layout):
    paper, pairs = layout
    make_image(64, 64, seed=1).save(paper / "0" / "sa" / "out_1000.png")
    with pytest.raises(PrecomputedError, match=r"2 images in .*sa .*file=GLOB"):
        _run(pairs[0], root=str(paper), method_dir="sa")
    res = _run(pairs[0], root=str(paper), method_dir="sa", file="out_1000.png")
    assert res.info["precomputed"]["file"].endswith("out_1000.png")
    with pytest.raises(PrecomputedError, match=r"no image in .*afhq/0/nope; check method_dir= .folders there: A, B, ours, sa, strotss"):
        _run(pairs[0], root=str(paper), method_dir="nope")


def test_options_are_checked(layout, tmp_path):
    paper, pairs = layout
    m = methods.create("precomputed")
    assert not m.in_benchmark and not m.in_smoke
    with pytest.raises(ConfigError, match="root=DIR"):
        m.run(pairs[0], RunSettings())
    with pytest.raises(ConfigError, match="unknown --method-args methoddir"):
        m.run(pairs[0], RunSettings(options={"root": str(paper), "methoddir": "ours"}))
    assert [r.ready for r in m.requirements(RunSettings())] == [False]
    a = m.config(RunSettings(options={"root": str(paper), "method_dir": "ours"}))
    (tmp_path / "copy-elsewhere").mkdir()
    b = m.config(RunSettings(options={"root": str(tmp_path / "copy-elsewhere"), "method_dir": "ours"}))
    assert a == b and a != m.config(RunSettings(options={"root": str(paper), "method_dir": "sa"}))


def _manifest(path: Path, pairs: list[Pair]) -> Path:
    """A project manifest (datasets/README.md format) whose paths are relative to the layout's data/ folder."""
    with open(path, "w", newline="") as f:
        f.write("# splice-bench manifest\n# name: afhq\n# version: 1\n")
        w = csv.writer(f)
        w.writerow(["pair_id", "structure", "structure_sha256", "appearance", "appearance_sha256"])
        for p in pairs:
            w.writerow([p.pair_id, p.structure.name, sha256_file(p.structure), p.appearance.name, sha256_file(p.appearance)])
    return path


def test_import_into_run_store_with_manifest_ids(layout, tmp_path):
    paper, pairs = layout
    manifest = load_manifest(_manifest(tmp_path / "afhq.csv", pairs[:2]))  # folder 2 is unknown to this manifest
    found = pairs_from_folder(paper, manifest)
    assert [(f.pair.pair_id, f.folder.name, f.line) for f in found] == [("afhq-00", "0", 5), ("afhq-01", "1", 6)]
    assert found[0].pair.structure == paper / "0" / "A" / "img.png"
    out = tmp_path / "runs" / "paper"
    rows = import_outputs(found, out, "paper-sa", {"root": str(paper), "method_dir": "sa"}, manifest=manifest)
    assert [r["state"] for r in rows] == ["done", "done"]
    records = dict(RunStore(out).iter_records())
    assert {k.pair_id for k in records} == {"afhq-00", "afhq-01"} and {k.method for k in records} == {"paper-sa"}
    key = next(k for k in records if k.pair_id == "afhq-01")
    rec = records[key]
    assert rec["status"] == "ok" and rec["output"] == "output.png" and rec["random_weights"] is False
    assert rec["geometry"] == {"kind": "center-crop", "source": [120, 80], "box": [20, 0, 100, 80], "output": [64, 64]}
    assert rec["inputs"]["structure"]["sha256"] == sha256_file(pairs[1].structure)
    assert rec["pair"]["manifest"] == {"name": "afhq", "version": 1, "line": 6}
    assert rec["info"]["label"] == "paper-sa" and rec["info"]["precomputed"]["matched_by"] == "hash"
    saved = Image.open(RunStore(out).output_path(key))
    assert np.array_equal(np.asarray(saved), np.asarray(Image.open(paper / "1" / "sa" / "out.png").convert("RGB")))
    again = import_outputs(found, out, "paper-sa", {"root": str(paper), "method_dir": "sa"}, manifest=manifest)
    assert [r["state"] for r in again] == ["skipped", "skipped"]  # resumable like any benchmark job
    with_root = pairs_from_folder(paper, manifest, data_root=pairs[0].structure.parent)
    assert with_root[1].pair.structure == pairs[1].structure  # the data root's file, as `splice bench` records it


def test_import_failure_becomes_failed_record(layout, tmp_path):
    paper, pairs = layout
    (paper / "1" / "sa" / "out.png").unlink()
    rows = import_outputs(pairs, tmp_path / "runs", "paper-sa", {"root": str(paper), "method_dir": "sa"})
    assert [r["state"] for r in rows] == ["done", "failed", "done"]
    assert "no image in" in rows[1]["error"]


def test_import_cli(layout, tmp_path, capsys):
    paper, pairs = layout
    manifest = _manifest(tmp_path / "afhq.csv", pairs)
    out = tmp_path / "runs"
    rc = _main(["--root", str(paper), "--dataset", str(manifest), "--method-dir", "ours", "--out", str(out), "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["pair_id"] for r in rows] == ["afhq-00", "afhq-01", "afhq-02"] and rows[0]["method"] == "paper-ours"
    assert "imported 3/3 outputs" in captured.err
    assert _main(["--root", str(tmp_path / "nope"), "--dataset", str(manifest), "--method-dir", "ours", "--out", str(out)]) == 2
    assert "error: --root" in capsys.readouterr().err


@pytest.mark.paper_data
def test_authors_sample_sa_is_a_256_resize(paper_data):
    """The real ../shared/data/paper/afhq folder: SA outputs import as 512 -> 256 resizes, matched by hash."""
    afhq = paper_data / "afhq"
    first = sorted(p for p in afhq.iterdir() if (p / "A").is_dir())[0]
    pair = Pair("any", next((first / "A").iterdir()), next((first / "B").iterdir()), "afhq")
    res = _run(pair, root=str(afhq), method_dir="sa")
    assert res.info["precomputed"]["matched_by"] == "hash" and res.info["precomputed"]["key"] == first.name
    assert res.geometry.kind == "resize" and res.geometry.output == (256, 256)
