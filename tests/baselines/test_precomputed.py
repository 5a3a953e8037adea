"""precomputed: stored outputs on a folder layout like the Splice authors', built in tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from baselines.precomputed import PrecomputedError, PrecomputedMethod, pair_names
from splice.core.errors import ConfigError
from splice.core.geometry import Geometry
from splice.core.imageio import sha256_file
from splice.core.method import Pair, RunSettings
from splice.core.registry import methods
from tests.support.images import make_image
from tests.support.precomputed import authors_layout


@pytest.fixture
def layout(tmp_path):
    return authors_layout(tmp_path)


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
    with pytest.raises(
        PrecomputedError, match=r"no image in .*afhq/0/nope; check method_dir= .folders there: A, B, ours, sa, strotss"
    ):
        _run(pairs[0], root=str(paper), method_dir="nope")


def test_options_are_checked(layout, tmp_path):
    paper, pairs = layout
    m = methods.create("precomputed")
    assert not m.in_benchmark and not m.in_smoke
    with pytest.raises(ConfigError, match="root=DIR"):
        m.run(pairs[0], RunSettings())
    with pytest.raises(ConfigError, match="precomputed: unknown option 'methoddir'; did you mean method_dir"):
        m.run(pairs[0], RunSettings(options={"root": str(paper), "methoddir": "ours"}))
    assert [r.ready for r in m.requirements(RunSettings())] == [False]
    a = m.config(RunSettings(options={"root": str(paper), "method_dir": "ours"}))
    (tmp_path / "copy-elsewhere").mkdir()
    b = m.config(RunSettings(options={"root": str(tmp_path / "copy-elsewhere"), "method_dir": "ours"}))
    assert a == b and a != m.config(RunSettings(options={"root": str(paper), "method_dir": "sa"}))


@pytest.mark.paper_data
def test_authors_sample_sa_is_a_256_resize(paper_data):
    """The real ../shared/data/paper/afhq folder: SA outputs import as 512 -> 256 resizes, matched by hash."""
    afhq = paper_data / "afhq"
    first = sorted(p for p in afhq.iterdir() if (p / "A").is_dir())[0]
    pair = Pair("any", next((first / "A").iterdir()), next((first / "B").iterdir()), "afhq")
    res = _run(pair, root=str(afhq), method_dir="sa")
    assert res.info["precomputed"]["matched_by"] == "hash" and res.info["precomputed"]["key"] == first.name
    assert res.geometry.kind == "resize" and res.geometry.output == (256, 256)
