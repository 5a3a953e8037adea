"""The detectron2 backends against a stand-in ``detectron2`` package (tests/support/fake_detectron2) that
records what we call: the model-zoo config names, BGR ``uint8`` input resized by ``ResizeShortestEdge``
(PIL), ``ROI_HEADS.SCORE_THRESH_TEST``, the mask threshold of ``detector_postprocess``, local weights
found before any download, and Panoptic FPN's semantic head as the merged label map."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from eval.detector import load_detector
from eval.segmenter import load_segmenter
from splice.core.errors import ConfigError, WeightsError
from tests.support import PROJECT
from tests.support.fakes import GRASS, OBJECT, SKY

STAND_IN = PROJECT / "tests" / "support" / "fake_detectron2"
MASK_RCNN = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
PANOPTIC = "COCO-PanopticSegmentation/panoptic_fpn_R_101_3x.yaml"
D2 = "https://dl.fbaipublicfiles.com/detectron2/"


def _forget_detectron2(monkeypatch):
    for name in [m for m in sys.modules if m == "detectron2" or m.startswith("detectron2.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.fixture
def d2(monkeypatch, tmp_path):
    """The stand-in on sys.path, offline, with empty weight folders; yields its call log."""
    _forget_detectron2(monkeypatch)
    monkeypatch.syspath_prepend(str(STAND_IN))
    monkeypatch.setenv("SPLICE_OFFLINE", "1")
    monkeypatch.setenv("SPLICE_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "iopath"))
    import detectron2

    detectron2.CALLS.clear()
    yield detectron2.CALLS
    _forget_detectron2(monkeypatch)


def scene(size=(100, 60)) -> Image.Image:
    """Blue background, a bright red box, a dimmer red box (soft mask 150/255 = 0.59), a green box."""
    w, h = size
    a = np.zeros((h, w, 3), np.uint8)
    a[:] = (0, 0, 200)
    a[10:30, 10:40] = (255, 0, 0)
    a[35:55, 10:40] = (150, 0, 0)
    a[10:40, 60:90] = (0, 220, 0)
    return Image.fromarray(a, "RGB")


def test_mask_rcnn_is_fed_like_the_predictor_and_keeps_our_thresholds(d2):
    det = load_detector("detectron2", "random", allow_random=True, score_threshold=0.5, mask_threshold=0.5, min_size=40)
    assert det.identity["config"] == MASK_RCNN and det.random
    image = scene()
    (found,) = det.detect([image])
    assert ("get_config_file", MASK_RCNN) in d2 and ("build_model", "GeneralizedRCNN", "cpu") in d2
    cfg, _ = det._d2
    assert cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.5 and cfg.MODEL.WEIGHTS == "" and cfg.MODEL.DEVICE == "cpu"
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (40, 67)
    # the model saw the BGR uint8 image resized by PIL to the shortest edge (int(x + 0.5) rounding), as float32
    x = det.model.inputs[0]
    bgr = np.asarray(image)[:, :, ::-1].copy()
    expected = np.asarray(Image.fromarray(bgr).resize((67, 40), Image.BILINEAR)).transpose(2, 0, 1)
    assert x["image"].dtype.is_floating_point and (x["height"], x["width"]) == (60, 100)
    np.testing.assert_array_equal(x["image"].numpy(), expected.astype(np.float32))
    assert ("apply_image", "uint8", (60, 100, 3)) in d2
    # the dog scores 0.3 < 0.5: dropped by the ROI heads; the cat's mask pasted at 0.5 covers both red boxes
    assert [(i.name, i.label, i.score) for i in found] == [("cat", 17, pytest.approx(0.9))]
    assert ("detector_postprocess", 60, 100, 0.5) in d2
    mask = found[0].mask
    assert mask.shape == (60, 100) and mask[15, 20] and mask[45, 20] and not mask[20, 70]

    # a mask threshold of 0.7 reaches detector_postprocess and drops the dim box; a score threshold of 0.2 the dog
    det2 = load_detector(
        "detectron2", "random", allow_random=True, score_threshold=0.2, mask_threshold=0.7, min_size=40
    )
    (found2,) = det2.detect([image])
    assert det2._d2[0].MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.2 and ("detector_postprocess", 60, 100, 0.7) in d2
    assert [i.name for i in found2] == ["cat", "dog"]
    cat = found2[0].mask
    assert cat[15, 20] and not cat[45, 20] and found2[1].mask[20, 70]


def test_panoptic_fpn_label_maps_from_the_semantic_head(d2):
    seg = load_segmenter("auto", "random", allow_random=True, size=60)  # auto = panoptic_fpn with detectron2
    assert seg.name == "panoptic_fpn" and seg.identity["config"] == PANOPTIC
    image = scene()
    (lab,) = seg.label_maps([image])
    assert ("get_config_file", PANOPTIC) in d2 and ("build_model", "PanopticFPN", "cpu") in d2
    # size 60 = the image's short side: no resize, so the map is exact; red -> object, blue -> sky, green -> grass
    expected = np.full((60, 100), SKY, np.uint8)
    expected[10:30, 10:40] = OBJECT
    expected[35:55, 10:40] = OBJECT
    expected[10:40, 60:90] = GRASS
    np.testing.assert_array_equal(lab, expected)
    # at 40 px the model sees a PIL-resized BGR copy and answers at the original size
    (small,) = load_segmenter("panoptic_fpn", "random", allow_random=True, size=40).label_maps([image])
    assert small.shape == (60, 100) and (small == expected).mean() > 0.95


def test_model_zoo_weights_are_found_offline_or_named(d2, tmp_path):
    with pytest.raises(WeightsError) as e:
        load_detector("detectron2")
    msg = str(e.value)
    assert "\n" not in msg
    assert f"{D2}COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl" in msg
    assert str(tmp_path / "weights") in msg and "--detector-weights /path/to/model_final_f10217.pkl" in msg
    fallback = load_detector("detectron2", allow_random=True)
    assert fallback.random and fallback.identity["note"] == "default weights unavailable"
    with pytest.raises(WeightsError, match="model_final_cafdb1.pkl"):
        load_segmenter("panoptic_fpn")
    with pytest.raises(WeightsError, match="add --allow-random-weights"):
        load_detector("detectron2", "random")
    with pytest.raises(WeightsError, match="file not found"):
        load_detector("detectron2", str(tmp_path / "nope.pkl"))

    # the file under its own name in $SPLICE_WEIGHTS_DIR, or in iopath's cache: found, hashed, loaded
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model_final_f10217.pkl").write_bytes(b"mask rcnn")
    det = load_detector("detectron2")
    assert det.identity["spec"] == "model_zoo" and not det.random and len(det.identity["sha256"]) == 64
    det.detect([scene()])
    assert ("load", str(tmp_path / "weights" / "model_final_f10217.pkl")) in d2
    assert det._d2[0].MODEL.WEIGHTS == str(tmp_path / "weights" / "model_final_f10217.pkl")
    cached = tmp_path / "iopath" / "detectron2" / "COCO-PanopticSegmentation" / "panoptic_fpn_R_101_3x" / "139514519"
    cached.mkdir(parents=True)
    (cached / "model_final_cafdb1.pkl").write_bytes(b"panoptic fpn")
    seg = load_segmenter("panoptic_fpn")
    assert seg.identity["path"] == str(cached / "model_final_cafdb1.pkl")
    # where the file lives is not part of the cache identity
    assert "path" not in seg.cache_identity() and "url" not in seg.cache_identity()


def test_without_detectron2_the_backends_say_how_to_get_it(monkeypatch):
    import eval.d2

    monkeypatch.setattr(eval.d2, "available", lambda: False)
    with pytest.raises(ConfigError, match="--detector detectron2 needs detectron2 installed"):
        load_detector("detectron2")
    with pytest.raises(ConfigError, match="--panoptic-model panoptic_fpn needs detectron2 installed"):
        load_segmenter("panoptic_fpn")
