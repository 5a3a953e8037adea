"""Geometry alignment before IoU: resize, centre-crop and stretch outputs (PROTOCOL.md, "Geometry first").

The structure image is 200x100 with a red 40x40 square at x 80..120, y 30..70. Each
output draws the square where the recorded transform puts it; the colour detector makes
the masks exact, so IoUs are hand-computable.
"""

from __future__ import annotations

import json

import pytest

from eval.align import AlignmentError, align_structure, geometry_from_option
from eval.cache import FeatureCache
from eval.layout import CachedDetector, score_layout
from splice.core.geometry import Geometry
from tests.support.fakes import ColourDetector, shapes_image

STRUCTURE = shapes_image((200, 100), red=(80, 30, 120, 70))


@pytest.fixture
def det(tmp_path):
    return CachedDetector(ColourDetector(), FeatureCache(tmp_path / "cache", "masks", "colour"))


def test_resize_keeps_aspect(det):
    geo = Geometry.resize((200, 100), (100, 50))
    out = shapes_image((100, 50), red=(40, 15, 60, 35))
    r = score_layout(STRUCTURE, out, det, geo.to_dict())
    assert r["aligned"] == "geometry" and r["iou"] == 1.0 and r["matched_iou"] == 1.0
    assert r["per_class"] == {"cat": 1.0}


def test_center_crop(det):
    geo = Geometry.center_crop((200, 100), (100, 100))
    assert geo.box == (50, 0, 150, 100)
    out = shapes_image((100, 100), red=(30, 30, 70, 70))
    assert score_layout(STRUCTURE, out, det, geo)["iou"] == 1.0
    # Without the recorded geometry the structure is squeezed to 100x100: square -> x 40..60,
    # 800 px inside the output's 1600 px square: IoU 800 / 1600.
    naive = score_layout(STRUCTURE, out, det, None)
    assert naive["aligned"] == "resize" and naive["iou"] == pytest.approx(0.5)


def test_stretch(det):
    geo = Geometry.stretch((200, 100), (100, 100))
    out = shapes_image((100, 100), red=(40, 30, 60, 70))
    assert score_layout(STRUCTURE, out, det, geo)["iou"] == 1.0
    # read as a centre crop instead, the structure square lands at x 30..70: IoU 800 / 1600
    wrong = Geometry.center_crop((200, 100), (100, 100))
    assert score_layout(STRUCTURE, out, det, wrong)["iou"] == pytest.approx(0.5)


def test_stretch_upscale_and_identity(det):
    geo = Geometry.stretch((200, 100), (200, 200))
    out = shapes_image((200, 200), red=(80, 60, 120, 140))
    assert score_layout(STRUCTURE, out, det, geo)["iou"] == pytest.approx(1.0, abs=0.03)
    same = score_layout(STRUCTURE, STRUCTURE, det, Geometry.identity((200, 100)))
    assert same["aligned"] == "identity" and same["iou"] == 1.0


def test_alignment_errors():
    with pytest.raises(AlignmentError, match="expects a 300x100 structure image"):
        align_structure(STRUCTURE, (100, 100), Geometry.stretch((300, 100), (100, 100)), where="job x")
    with pytest.raises(AlignmentError, match="says the output is 100x100 but it is 64x64"):
        align_structure(STRUCTURE, (64, 64), Geometry.stretch((200, 100), (100, 100)))
    with pytest.raises(AlignmentError, match="not a geometry record"):
        align_structure(STRUCTURE, (64, 64), {"kind": "resize"})


def test_geometry_option(tmp_path):
    s, o = (200, 100), (100, 100)
    assert geometry_from_option(None, s, o) is None
    assert geometry_from_option("center-crop", s, o).box == (50, 0, 150, 100)
    assert geometry_from_option("stretch", s, o).kind == "stretch"
    assert geometry_from_option("identity", s, s).is_identity
    js = json.dumps(Geometry.center_crop(s, o).to_dict())
    assert geometry_from_option(js, s, o).box == (50, 0, 150, 100)
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"status": "ok", "geometry": Geometry.stretch(s, o).to_dict()}))
    assert geometry_from_option(str(record), s, o).kind == "stretch"
    with pytest.raises(AlignmentError, match="neither"):
        geometry_from_option("sideways", s, o)
    with pytest.raises(AlignmentError, match="not valid JSON"):
        geometry_from_option("{oops", s, o)
