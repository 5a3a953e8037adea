"""The content-hash cache and `score_run`: a second scoring run performs zero model calls."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from eval.aggregate import load_results
from eval.cache import FeatureCache, cache_key
from eval.detector import DetectorSettings
from eval.layout import CachedDetector
from eval.scoring import ScoreOptions, score_run
from eval.tables import metric_table
from eval.vit_metrics import CachedViT
from splice.core.errors import ConfigError, UserError
from splice.core.geometry import Geometry
from tests.support.fakes import ColourDetector, TinyExtractor, shapes_image
from tests.support.store import add_job


def test_feature_cache_roundtrip(tmp_path):
    c = FeatureCache(tmp_path, "masks", "model/x y")
    k = cache_key("abc", {"arch": "m"}, {"t": 0.5})
    assert k != cache_key("abc", {"arch": "m"}, {"t": 0.6}) != cache_key("abd", {"arch": "m"}, {"t": 0.5})
    assert c.get(k) is None
    c.put(k, {"a": np.arange(3)})
    assert c.path(k).parent.parent.name == "model_x_y" and c.path(k).name == f"{k}.npz"
    np.testing.assert_array_equal(c.get(k)["a"], [0, 1, 2])
    assert c.stats() == {"hits": 1, "misses": 1, "writes": 1}
    c.path(k).write_bytes(b"garbage")  # an unreadable entry is a miss, not a crash
    assert c.get(k) is None


def make_run(tmp_path):
    """Three finished jobs (identity geometry, centre crop, no detection) and one failed job."""
    root = tmp_path / "runs" / "r"
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    s1, s2 = inputs / "s1.png", inputs / "s2.png"
    a = inputs / "a.png"
    shapes_image((200, 100), red=(80, 30, 120, 70)).save(s1)
    shapes_image((100, 100)).save(s2)  # nothing to detect
    shapes_image((64, 64), green=(0, 0, 32, 32)).save(a)
    # m1 keeps the structure exactly; m2 centre-crops to 100x100 but shifts the square by 10 px
    add_job(root, "d", "p1", "m1", structure=str(s1), appearance=str(a),
            output=shapes_image((200, 100), red=(80, 30, 120, 70)), geometry=Geometry.identity((200, 100)).to_dict())
    add_job(root, "d", "p1", "m2", structure=str(s1), appearance=str(a),
            output=shapes_image((100, 100), red=(40, 30, 80, 70)),
            geometry=Geometry.center_crop((200, 100), (100, 100)).to_dict())
    add_job(root, "d", "p2", "m1", structure=str(s2), appearance=str(a),
            output=shapes_image((100, 100), red=(0, 0, 10, 10)))
    add_job(root, "d", "p3", "m1", status="failed", structure=str(s1), appearance=str(a))
    return root


def fakes(cache_dir, threshold=0.5):
    det = ColourDetector(settings=DetectorSettings(score_threshold=threshold))
    return SimpleNamespace(
        detector=CachedDetector(det, FeatureCache(cache_dir, "masks", "colour")),
        vit=CachedViT(TinyExtractor(), FeatureCache(cache_dir, "vit", "tiny")),
    )


def test_second_run_makes_zero_model_calls(tmp_path):
    root = make_run(tmp_path)
    cache = tmp_path / "cache"
    first = fakes(cache)
    s1 = score_run(root, ScoreOptions(), models=first)
    assert s1.jobs == 3 and s1.scored == {"iou": 3, "vit": 3} and s1.errors == []
    assert s1.excluded == 1
    # distinct images: s1 (identity), s1 cropped, m2 output, s2, p2 output -> 5 detections;
    # m1/p1's output equals s1 pixel for pixel and is served by the cache
    assert first.detector.model_calls == 5 and first.detector.detector.calls == 5
    assert first.vit.model_calls == 6  # the 5 images above + the appearance image

    iou_path = root / "outputs/d/p1/m2/s0-abc123/metrics/iou.json"
    rec = json.loads(iou_path.read_text())
    # m2: cropped square at x 30..70 vs output 40..80: 30*40 / (50*40)
    assert rec["iou"] == pytest.approx(0.6) and rec["aligned"] == "geometry" and rec["protocol_version"] == "1"
    assert rec["job"]["method"] == "m2" and rec["detector"] == "colour-test" and rec["random_weights"] is False
    mtime = iou_path.stat().st_mtime_ns
    vit_path = root / "outputs/d/p1/m2/s0-abc123/metrics/vit.json"
    vit_first = json.loads(vit_path.read_text())

    # second run, new process state (fresh wrappers), same cache: nothing is computed or rewritten
    second = fakes(cache)
    s2 = score_run(root, ScoreOptions(), models=second)
    assert s2.skipped == {"iou": 3, "vit": 3} and s2.scored == {"iou": 0, "vit": 0}
    assert second.detector.model_calls == 0 and second.vit.model_calls == 0
    assert iou_path.stat().st_mtime_ns == mtime

    # --force rescoring rewrites every record from the cache alone
    third = fakes(cache)
    s3 = score_run(root, ScoreOptions(force=True), models=third)
    assert s3.scored == {"iou": 3, "vit": 3}
    assert third.detector.model_calls == 0 and third.vit.model_calls == 0
    assert s3.cache["masks"]["hits"] == 5 and s3.cache["masks"]["misses"] == 0  # 6 images, 5 distinct
    assert json.loads(iou_path.read_text())["iou"] == pytest.approx(0.6)
    assert json.loads(vit_path.read_text()) == vit_first  # from the cache, bit for bit

    # other settings are another cache entry and another record: the detector runs again
    fourth = fakes(cache, threshold=0.7)
    s4 = score_run(root, ScoreOptions(metrics=("iou",)), models=fourth)
    assert s4.scored["iou"] == 3 and fourth.detector.model_calls == 5


def test_scores_reach_the_table(tmp_path):
    root = make_run(tmp_path)
    score_run(root, ScoreOptions(), models=fakes(tmp_path / "cache"))
    df = load_results(root)
    t = metric_table(df, "iou").set_index("method")
    # m1: p1 IoU 1.0 used, p2 excluded (no detection in its structure image), p3 failed
    assert t.loc["m1", "mean"] == 1.0
    assert (t.loc["m1", "n_used"], t.loc["m1", "n_excluded"], t.loc["m1", "n_failed"]) == (1, 1, 1)
    assert t.loc["m2", "mean"] == pytest.approx(0.6)
    vit = df[(df.method == "m1") & (df.pair_id == "p1")].iloc[0]
    assert vit.structure_distance == pytest.approx(0.0, abs=1e-7) and vit.vit_scored and vit.metrics_random_weights


def test_filters_errors_and_options(tmp_path):
    root = make_run(tmp_path)
    s = score_run(root, ScoreOptions(metrics=("iou",), methods=["m2"]), models=fakes(tmp_path / "c"))
    assert s.jobs == 1 and s.scored["iou"] == 1 and s.scored["vit"] == 0
    # a missing input image is one error entry; the other jobs are scored
    (tmp_path / "inputs" / "s2.png").unlink()
    s = score_run(root, ScoreOptions(metrics=("iou",), force=True), models=fakes(tmp_path / "c"))
    assert s.scored["iou"] == 2 and len(s.errors) == 1 and "structure image not found" in s.errors[0]["error"]
    with pytest.raises(ConfigError, match="unknown metric"):
        ScoreOptions(metrics=("fid",))
    with pytest.raises(UserError, match="no run store"):
        score_run(tmp_path / "nothing", ScoreOptions())
