"""The Mask R-CNN path end to end on random weights (small inputs so it takes seconds on a CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval.cache import FeatureCache
from eval.detector import load_detector
from eval.layout import CachedDetector, score_layout
from splice.core.errors import ConfigError, WeightsError
from splice.core.geometry import Geometry
from tests.support.images import make_image

V1 = "maskrcnn_resnet50_fpn"  # cheaper heads than v2; the v2 path is exercised once below


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No network, empty weight caches."""
    monkeypatch.setenv("SPLICE_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SPLICE_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch" / "hub"))
    return tmp_path


def test_missing_weights_is_one_line(offline):
    with pytest.raises(WeightsError) as e:
        load_detector()
    msg = str(e.value)
    assert "\n" not in msg
    assert "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth" in msg
    assert str(offline / "torch" / "hub" / "checkpoints") in msg and "--detector-weights" in msg
    with pytest.raises(WeightsError, match="add --allow-random-weights"):
        load_detector(weights="random")
    with pytest.raises(WeightsError, match="detector weights file not found"):
        load_detector(weights=str(offline / "nope.pth"))
    with pytest.raises(WeightsError, match="not a torchvision tag"):
        load_detector(weights="IMAGENET1K_V2")
    with pytest.raises(ConfigError, match="unknown detector"):
        load_detector("yolo")
    # the default weights fall back to random only when allowed, and say so
    d = load_detector(allow_random=True)
    assert d.random and d.identity["spec"] == "random" and d.identity["note"] == "default weights unavailable"


def test_random_detector_end_to_end(tmp_path):
    # score threshold 0: random heads keep up to 100 detections per image, so masks are really compared
    det = load_detector(V1, "random", allow_random=True, min_size=64, score_threshold=0.0)
    assert det._model is None  # built lazily
    images = [make_image(96, 80, seed=1), make_image(64, 64, seed=2), make_image(64, 64, seed=5)]
    res = det.detect(images)  # the two 64x64 images share a batch
    assert len(res) == 3 and all(len(r) >= 10 for r in res)
    for im, instances in zip(images, res):
        for inst in instances:
            assert inst.mask.shape == (im.size[1], im.size[0]) and inst.mask.dtype == bool
            assert 1 <= inst.label <= 90 and inst.name not in ("N/A", "__background__")
    assert sum(int(i.mask.sum()) for i in res[1]) > 0  # some masks are not empty
    # the same image alone gives the same instances and masks (batching does not change results)
    alone = det.detect(images[1:2])[0]
    assert len(alone) == len(res[1])
    assert [i.label for i in alone] == [i.label for i in res[1]]
    assert [i.score for i in alone] == pytest.approx([i.score for i in res[1]], abs=1e-5)
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(alone, res[1]))
    # a higher mask threshold gives smaller masks on the same detections
    strict = load_detector(V1, "random", allow_random=True, min_size=64, score_threshold=0.0, mask_threshold=0.9)
    tight = strict.detect(images[1:2])[0]
    assert [i.label for i in tight] == [i.label for i in alone]
    assert all((t.mask <= a.mask).all() for t, a in zip(tight, alone))
    assert sum(int(t.mask.sum()) for t in tight) < sum(int(a.mask.sum()) for a in alone)

    # through the cache and the IoU record: a stretched output, then zero model calls on re-scoring
    cached = CachedDetector(det, FeatureCache(tmp_path / "cache", "masks", "v1-random"))
    out = make_image(64, 64, seed=1)
    rec = score_layout(images[0], out, cached, Geometry.stretch((96, 80), (64, 64)))
    assert cached.model_calls == 2
    assert rec["random_weights"] is True and rec["detector"] == V1 and rec["aligned"] == "geometry"
    assert rec["score_threshold"] == 0.0 and rec["mask_threshold"] == 0.5 and rec["detector_size"] == 64
    assert rec["excluded"] or 0.0 <= rec["iou"] <= 1.0
    again = CachedDetector(det, FeatureCache(tmp_path / "cache", "masks", "v1-random"))
    assert score_layout(images[0], out, again, Geometry.stretch((96, 80), (64, 64))) == rec
    assert again.model_calls == 0


def test_local_state_dict_file(tmp_path):
    ref = load_detector(V1, "random", allow_random=True, min_size=64, score_threshold=0.0)
    path = tmp_path / "v1.pth"
    torch.save(ref.model.state_dict(), path)
    from_file = load_detector(V1, str(path), min_size=64, score_threshold=0.0)
    assert not from_file.random and from_file.identity["sha256"] and from_file.identity["file"] == "v1.pth"
    # v1 weights from a file get BatchNorm eps 0 (torchvision's COCO v1 weights were trained that way); at score
    # threshold 0 even that 1e-5 reorders near-tied random detections, so the reference gets it too
    for m in ref.model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 0.0
    im = [make_image(64, 64, seed=3)]
    a, b = ref.detect(im)[0], from_file.detect(im)[0]
    assert len(a) >= 10 and len(a) == len(b)
    assert [i.label for i in a] == [i.label for i in b]
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a, b))
    # another seed's random weights give other detections: the comparison above can fail
    other = load_detector(V1, "random", allow_random=True, min_size=64, score_threshold=0.0, seed=1).detect(im)[0]
    assert [i.label for i in other] != [i.label for i in a] or any(
        not np.array_equal(x.mask, y.mask) for x, y in zip(other, a))
    # v1 weights do not fit v2: one line that names the file and suggests the other detector
    fit = r"do not fit maskrcnn_resnet50_fpn_v2: .*try --detector maskrcnn_resnet50_fpn$"
    with pytest.raises(WeightsError, match=fit):
        load_detector("maskrcnn_resnet50_fpn_v2", str(path)).model


def test_v2_default_architecture_runs():
    det = load_detector(weights="random", allow_random=True, min_size=64, score_threshold=0.0)
    (res,) = det.detect([make_image(64, 64, seed=4)])
    assert det.name == "maskrcnn_resnet50_fpn_v2" and len(res) >= 10
    high = load_detector(weights="random", allow_random=True, min_size=64, score_threshold=0.2).detect(
        [make_image(64, 64, seed=4)])[0]
    kept = [i for i in res if i.score >= 0.2]
    assert [i.label for i in high] == [i.label for i in kept] and all(i.score >= 0.2 for i in high)
