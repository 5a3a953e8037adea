"""The content-hash cache and `score_run`: a second scoring run performs zero model calls."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eval.aggregate import load_results
from eval.cache import FeatureCache, cache_key
from eval.detector import DetectorSettings
from eval.layout import CachedDetector, CachedSegmenter
from eval.scoring import ScoreOptions, score_run, summary_lines
from eval.tables import metric_table
from eval.vit_metrics import CachedViT
from splice.core.errors import ConfigError, UserError
from splice.core.geometry import Geometry
from splice.core.imageio import sha256_file
from tests.support.fakes import ColourDetector, ColourSegmenter, TinyExtractor, shapes_image
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
    """Scorers by record name, with stand-in models (hand-computable masks, label maps and features)."""
    det = ColourDetector(settings=DetectorSettings(score_threshold=threshold))
    return {
        "iou": CachedDetector(det, FeatureCache(cache_dir, "masks", "colour")),
        "panoptic": CachedSegmenter(ColourSegmenter(), FeatureCache(cache_dir, "labels", "colour")),
        "vit": CachedViT(TinyExtractor(), FeatureCache(cache_dir, "vit", "tiny")),
    }


def test_second_run_makes_zero_model_calls(tmp_path):
    root = make_run(tmp_path)
    cache = tmp_path / "cache"
    first = fakes(cache)
    s1 = score_run(root, ScoreOptions(), models=first)
    assert s1.jobs == 3 and s1.scored == {"iou": 3, "panoptic": 0, "vit": 3} and s1.errors == []
    assert s1.excluded["iou"] == 1 and s1.reasons == {"iou": {"new": 3}, "vit": {"new": 3}}
    assert s1.segmenters == {"d": "maskrcnn"} and s1.missing_outputs == []
    # distinct images: s1 (identity), s1 cropped, m2 output, s2, p2 output -> 5 detections;
    # m1/p1's output equals s1 pixel for pixel and is served by the cache
    assert first["iou"].model_calls == 5 and first["iou"].detector.calls == 5
    assert first["vit"].model_calls == 6  # the 5 images above + the appearance image

    iou_path = root / "outputs/d/p1/m2/s0-abc123/metrics/iou.json"
    rec = json.loads(iou_path.read_text())
    # m2: cropped square at x 30..70 vs output 40..80: 30*40 / (50*40)
    assert rec["iou"] == pytest.approx(0.6) and rec["aligned"] == "geometry" and rec["protocol_version"] == "2"
    assert rec["job"]["method"] == "m2" and rec["detector"] == "colour-test" and rec["random_weights"] is False
    assert rec["segmenter"] == "maskrcnn"
    # the sha256 of every image file it read
    out_file = root / "outputs/d/p1/m2/s0-abc123/output.png"
    assert rec["images"] == {"structure": {"path": str(tmp_path / "inputs" / "s1.png"),
                                           "sha256": sha256_file(tmp_path / "inputs" / "s1.png")},
                             "output": {"path": "output.png", "sha256": sha256_file(out_file)}}  # fmt: skip
    mtime = iou_path.stat().st_mtime_ns
    vit_path = root / "outputs/d/p1/m2/s0-abc123/metrics/vit.json"
    vit_first = json.loads(vit_path.read_text())
    assert set(vit_first["images"]) == {"structure", "appearance", "output"}

    # second run, new process state (fresh wrappers), same cache: nothing is computed or rewritten
    second = fakes(cache)
    s2 = score_run(root, ScoreOptions(), models=second)
    assert s2.skipped == {"iou": 3, "panoptic": 0, "vit": 3} and s2.scored == {"iou": 0, "panoptic": 0, "vit": 0}
    assert second["iou"].model_calls == 0 and second["vit"].model_calls == 0
    assert iou_path.stat().st_mtime_ns == mtime

    # --force rescoring rewrites every record from the cache alone
    third = fakes(cache)
    s3 = score_run(root, ScoreOptions(force=True), models=third)
    assert s3.scored == {"iou": 3, "panoptic": 0, "vit": 3} and s3.reasons["iou"] == {"forced": 3}
    assert third["iou"].model_calls == 0 and third["vit"].model_calls == 0
    assert s3.cache["iou"]["hits"] == 5 and s3.cache["iou"]["misses"] == 0  # 6 images, 5 distinct
    assert json.loads(iou_path.read_text())["iou"] == pytest.approx(0.6)
    assert json.loads(vit_path.read_text()) == vit_first  # from the cache, bit for bit

    # other settings are another cache entry and another record: the detector runs again
    fourth = fakes(cache, threshold=0.7)
    s4 = score_run(root, ScoreOptions(metrics=("iou",)), models=fourth)
    assert s4.scored["iou"] == 3 and fourth["iou"].model_calls == 5 and s4.reasons["iou"] == {"settings changed": 3}


def test_a_changed_image_rescores_only_its_jobs(tmp_path):
    root = make_run(tmp_path)
    cache = tmp_path / "cache"
    score_run(root, ScoreOptions(), models=fakes(cache))
    job = root / "outputs/d/p1/m2/s0-abc123"
    before = {p: p.stat().st_mtime_ns for p in root.glob("outputs/*/*/*/*/metrics/*.json")}
    # overwrite one output with another image: the square moved onto the cropped structure's one, 1 px shorter
    shapes_image((100, 100), red=(30, 30, 70, 69)).save(job / "output.png")
    again = fakes(cache)
    s = score_run(root, ScoreOptions(), models=again)
    assert s.scored == {"iou": 1, "panoptic": 0, "vit": 1} and s.skipped == {"iou": 2, "panoptic": 0, "vit": 2}
    assert s.reasons == {"iou": {"output image changed": 1}, "vit": {"output image changed": 1}}
    assert again["iou"].model_calls == 1 and again["vit"].model_calls == 1  # only the new image meets a model
    assert json.loads((job / "metrics/iou.json").read_text())["iou"] == pytest.approx(39 / 40)  # was 0.6
    changed = {p for p, t in before.items() if p.stat().st_mtime_ns != t}
    assert changed == {job / "metrics/iou.json", job / "metrics/vit.json"}
    line = summary_lines(s, ("iou", "vit"))[1]
    assert line.startswith("iou: 1 scored (1 output image changed), 2 up to date, 1 model")

    # a changed structure image rescores every job that read it (p1: m1 and m2), but not p2's
    shapes_image((200, 100), red=(80, 30, 121, 70)).save(tmp_path / "inputs" / "s1.png")
    s = score_run(root, ScoreOptions(metrics=("iou",)), models=fakes(cache))
    assert s.scored["iou"] == 2 and s.reasons["iou"] == {"structure image changed": 2}

    # an ok job whose output is gone is reported by name, not skipped; the others are scored
    (job / "output.png").unlink()
    s = score_run(root, ScoreOptions(), models=fakes(cache))
    assert s.missing_outputs == ["m2/d/p1/s0-abc123"] and s.jobs == 2 and not s.ok


def test_default_segmenter_per_data_set(tmp_path):
    root = make_run(tmp_path)
    s1 = tmp_path / "inputs" / "s1.png"
    # a mountain: sky over grass (blue / green), no object; the output keeps the horizon 10 px lower
    sky = tmp_path / "inputs" / "m.png"
    shapes_image((100, 100), green=(0, 50, 100, 100)).save(sky)
    add_job(root, "mountains", "k1", "m1", structure=str(sky), appearance=str(s1),
            output=shapes_image((100, 100), green=(0, 60, 100, 100)), geometry=Geometry.identity((100, 100)).to_dict())
    models = fakes(tmp_path / "cache")
    s = score_run(root, ScoreOptions(metrics=("iou",)), models=models)
    assert s.segmenters == {"d": "maskrcnn", "mountains": "panoptic"}
    assert s.scored == {"iou": 3, "panoptic": 1}  # only the records --metrics selects
    job = root / "outputs/mountains/k1/m1/s0-abc123/metrics"
    assert not (job / "iou.json").exists()
    rec = json.loads((job / "panoptic.json").read_text())
    # sky 50 rows vs 60 rows, grass 50 vs 40: mIoU = (50/60 + 40/50) / 2; accuracy 90/100
    assert rec["segmenter"] == "panoptic" and rec["model"] == "colour-panoptic" and not rec["excluded"]
    assert rec["per_class"] == {"grass-merged": pytest.approx(0.8), "sky-other-merged": pytest.approx(50 / 60)}
    assert rec["iou"] == pytest.approx((50 / 60 + 0.8) / 2) and rec["pixel_accuracy"] == pytest.approx(0.9)
    # --segmenter panoptic on every data set: d gets panoptic.json beside its iou.json
    s = score_run(root, ScoreOptions(metrics=("iou",), segmenter="panoptic"), models=models)
    assert s.scored == {"iou": 0, "panoptic": 3} and s.skipped["panoptic"] == 1
    df = load_results(root)
    row = df[(df.dataset == "mountains")].iloc[0]
    assert row.panoptic_scored and row.panoptic_iou == pytest.approx(rec["iou"]) and row.pixel_accuracy == 0.9
    t = metric_table(df, "iou").set_index(["dataset", "method"])
    assert t.loc[("mountains", "m1"), "segmenter"] == "panoptic" and t.loc[("d", "m1"), "segmenter"] == "maskrcnn"
    t = metric_table(df, "iou", segmenter="panoptic").set_index(["dataset", "method"])
    assert t.loc[("d", "m1"), "segmenter"] == "panoptic"


def test_scores_reach_the_table(tmp_path):
    root = make_run(tmp_path)
    score_run(root, ScoreOptions(), models=fakes(tmp_path / "cache"))
    df = load_results(root)
    t = metric_table(df, "iou").set_index("method")
    # m1: p1 IoU 1.0 used, p2 excluded (no detection in its structure image), p3 failed; m2: p1 0.6
    assert t.loc["m1", "mean_all"] == 1.0 and t.loc["m1", "n_all"] == 1
    assert (t.loc["m1", "excluded"], t.loc["m1", "failed"]) == (1, 1)
    assert t.loc["m2", "mean_common"] == pytest.approx(0.6) and t.loc["m2", "n_common"] == 1
    vit = df[(df.method == "m1") & (df.pair_id == "p1")].iloc[0]
    assert vit.structure_distance == pytest.approx(0.0, abs=1e-7) and vit.vit_scored and vit.metrics_random_weights


def test_filters_errors_and_options(tmp_path):
    root = make_run(tmp_path)
    s = score_run(root, ScoreOptions(metrics=("iou",), methods=["m2"]), models=fakes(tmp_path / "c"))
    assert s.jobs == 1 and s.scored["iou"] == 1 and "vit" not in s.scored
    # a missing input image is one error entry; the other jobs are scored
    (tmp_path / "inputs" / "s2.png").unlink()
    s = score_run(root, ScoreOptions(metrics=("iou",), force=True), models=fakes(tmp_path / "c"))
    assert s.scored["iou"] == 2 and len(s.errors) == 1 and "structure image not found" in s.errors[0]["error"]
    with pytest.raises(ConfigError, match="unknown metric"):
        ScoreOptions(metrics=("fid",))
    with pytest.raises(ConfigError, match="unknown segmenter"):
        ScoreOptions(segmenter="sam")
    with pytest.raises(UserError, match="no run store"):
        score_run(tmp_path / "nothing", ScoreOptions())
