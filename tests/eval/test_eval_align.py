"""Geometry alignment before IoU: resize, centre-crop and stretch outputs (PROTOCOL.md, "Geometry first").

The structure image is 200x100 with a red 40x40 square at x 80..120, y 30..70. Each
output draws the square where the recorded transform puts it; the colour detector makes
the masks exact, so IoUs are hand-computable.
"""

from __future__ import annotations

import json

import pytest

from eval.align import AlignmentError, align_structure, geometry_from_text, read_job_record
from eval.cache import FeatureCache
from eval.layout import CachedDetector, score_layout
from splice.core.errors import UserError
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


def test_geometry_text_form(tmp_path):
    """--geometry takes the one text form of splice.core.geometry, fitted to the real output size."""
    s, o = (200, 100), (100, 100)
    assert geometry_from_text("center-crop 100x100", s, o).box == (50, 0, 150, 100)
    assert geometry_from_text("stretch 100x100", s, o).kind == "stretch"
    assert geometry_from_text("native", s, s).is_identity
    # a method that rounded 100 to 96 still matches (reconcile), the same box
    g = geometry_from_text("center-crop 100x100", s, (96, 96))
    assert g.box == (50, 0, 150, 100) and g.output == (96, 96)
    assert geometry_from_text("resize-short 50", s, (100, 50)).output == (100, 50)
    with pytest.raises(AlignmentError, match="unknown geometry 'sideways'"):
        geometry_from_text("sideways", s, o)
    with pytest.raises(AlignmentError, match="--record JOB_DIR/record.json"):
        geometry_from_text(json.dumps(Geometry.center_crop(s, o).to_dict()), s, o)
    with pytest.raises(AlignmentError, match="does not describe this method"):
        geometry_from_text("stretch 100x100", s, (200, 50))


def test_read_job_record(tmp_path):
    from tests.support.store import write_job

    key = write_job(tmp_path / "run", "d", "p", "m", geometry=Geometry.stretch((200, 100), (64, 64)).to_dict())
    job = tmp_path / "run" / key.relpath()
    path, rec = read_job_record(job / "record.json")
    assert rec.geometry["kind"] == "stretch" and path == job / "record.json"
    assert read_job_record(job)[0] == path  # the job folder works too
    with pytest.raises(UserError, match="no job record there"):
        read_job_record(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="is not a job record"):
        read_job_record(tmp_path / "bad.json")
    failed = write_job(tmp_path / "run", "d", "q", "m", status="failed")
    with pytest.raises(UserError, match="did not finish"):
        read_job_record(tmp_path / "run" / failed.relpath() / "record.json")
