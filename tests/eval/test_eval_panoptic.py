"""The panoptic segmenter: label maps of objects and stuff, their layout numbers, Mask2Former through
transformers (a tiny random COCO-panoptic model saved as a hub folder), offline errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from eval.cache import FeatureCache
from eval.labelmaps import VOID, coco_panoptic, label_scores, labels, merge_index
from eval.layout import CachedSegmenter
from eval.segmenter import DEFAULT_MASK2FORMER, default_segmenter, load_segmenter
from splice.core.errors import ConfigError, WeightsError
from tests.support.images import make_image

pytest.importorskip("transformers")


def test_label_space():
    classes = coco_panoptic()
    assert len(classes) == 133 and sum(c.isthing for c in classes) == 80
    assert (classes[119].name, classes[119].coco_id, classes[124].name) == ("sky-other-merged", 187, "mountain-merged")
    names = labels()
    assert len(names) == 54 and names[0] == "object" and names[40] == "sky-other-merged"
    assert names[45] == "mountain-merged" and names[46] == "grass-merged"
    m = merge_index()
    assert (m[:80] == 0).all() and list(m[80:]) == list(range(1, 54))
    assert default_segmenter("mountains") == "panoptic" and default_segmenter("afhq") == "maskrcnn"


def test_layout_miou_by_hand():
    sky, grass, obj = 40, 46, 0
    s = np.full((10, 10), sky, np.uint8)
    s[6:] = grass
    s[2:4, 2:4] = obj  # 4 object pixels
    o = np.full((10, 10), sky, np.uint8)
    o[7:] = grass  # grass one row shorter
    o[2:4, 2:5] = obj  # object one column wider
    o[0, 0] = 26  # a snow pixel the structure does not have
    r = label_scores(s, o)
    # sky: S 56 px, O 63 px, both 53 (O's wider object and snow pixel) -> 53/66; grass 30/40; object 4/6
    assert r.per_class == {"object": pytest.approx(4 / 6), "sky-other-merged": pytest.approx(53 / 66),
                           "grass-merged": pytest.approx(0.75)}  # fmt: skip
    assert r.iou == pytest.approx((4 / 6 + 53 / 66 + 0.75) / 3) and r.output_only == ["snow"]
    assert r.pixel_accuracy == pytest.approx((53 + 30 + 4) / 100) and not r.excluded
    same = label_scores(s, s)
    assert same.iou == 1.0 and same.pixel_accuracy == 1.0
    # void structure pixels are ignored; an all-void structure is excluded
    s2 = s.copy()
    s2[6:] = VOID
    r2 = label_scores(s2, o)
    assert set(r2.per_class) == {"object", "sky-other-merged"} and r2.pixel_accuracy == pytest.approx(57 / 60)
    r3 = label_scores(np.full((4, 4), VOID, np.uint8), o[:4, :4])
    assert r3.excluded and r3.iou is None and r3.exclusion_reason == "no labelled pixel in the structure image"
    with pytest.raises(ValueError, match="not aligned"):
        label_scores(s, o[:5])


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from tests.support.panoptic import save_tiny_mask2former

    return save_tiny_mask2former(tmp_path_factory.mktemp("m2f"))


def test_mask2former_from_a_folder(tiny_folder, tmp_path):
    seg = load_segmenter("mask2former", str(tiny_folder), size=64)
    assert seg.identity["file"] == "model.safetensors" and len(seg.identity["sha256"]) == 64 and not seg.random
    assert seg._model is None  # built lazily
    images = [make_image(96, 80, seed=1), make_image(96, 80, seed=2), make_image(64, 72, seed=3)]
    maps = seg.label_maps(images)
    assert [m.shape for m in maps] == [(80, 96), (80, 96), (72, 64)] and all(m.dtype == np.uint8 for m in maps)
    assert all(m.max() < 54 for m in maps) and any(len(np.unique(m)) >= 2 for m in maps)
    # one image alone gives the same map as in its batch; a reloaded folder gives the same maps
    np.testing.assert_array_equal(seg.label_maps(images[1:2])[0], maps[1])
    again = load_segmenter("mask2former", str(tiny_folder), size=64).label_maps(images)
    assert all(np.array_equal(a, b) for a, b in zip(again, maps))
    # another input size is another setting (cache key) and can give another map
    assert load_segmenter("mask2former", str(tiny_folder), size=96).settings.to_dict()["size"] == 96

    # through the cache: the second scorer never runs the model
    cache = FeatureCache(tmp_path / "cache", "labels", "tiny")
    first = CachedSegmenter(seg, cache)
    rec = first.score({"structure": images[0], "output": images[1]})
    assert first.model_calls == 2 and rec["segmenter"] == "panoptic" and rec["model"] == "mask2former"
    assert rec["size"] == 64 and rec["max_size"] == 107 and rec["protocol_version"] == "2"
    assert rec["iou"] == pytest.approx(label_scores(maps[0], maps[1]).iou)
    second = CachedSegmenter(load_segmenter("mask2former", str(tiny_folder), size=64),
                             FeatureCache(tmp_path / "cache", "labels", "tiny"))  # fmt: skip
    assert second.score({"structure": images[0], "output": images[1]}) == rec and second.model_calls == 0


def test_semantic_inference_matches_transformers(tiny_folder):
    """Our label map = transformers' semantic post-processing with the thing scores summed, on a square image
    (where its hard-coded 384x384 resize is the image size)."""
    import torch

    seg = load_segmenter("mask2former", str(tiny_folder), size=64)
    image = make_image(384, 384, seed=7)
    (ours,) = seg.label_maps([image])
    proc = seg._aux
    inputs = proc(images=[image], size={"shortest_edge": 64, "longest_edge": 107}, return_tensors="pt")
    with torch.inference_mode():
        out = seg.model(pixel_values=inputs["pixel_values"])
    res = proc.post_process_semantic_segmentation(out, target_sizes=[(384, 384)], return_segmentation_scores=True)[0]
    scores = res.segmentation_scores  # 133 x 384 x 384
    merged = torch.cat([scores[:80].sum(0, keepdim=True), scores[80:]])
    theirs = merged.argmax(0).numpy()
    assert len(np.unique(ours)) >= 2 and (ours == theirs).mean() > 0.999


def test_large_images_are_labelled_at_a_capped_size(tiny_folder, monkeypatch):
    import eval.segmenter

    seg = load_segmenter("mask2former", str(tiny_folder), size=64)
    image = make_image(200, 100, seed=4)
    (full,) = seg.label_maps([image])
    monkeypatch.setattr(eval.segmenter, "MAX_LABEL_PIXELS", 5000)  # 100x50 then nearest to 200x100
    (capped,) = seg.label_maps([image])
    assert capped.shape == (100, 200) and (capped == full).mean() > 0.9


def test_weights_errors_are_one_line_and_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLICE_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    start = time.monotonic()
    with pytest.raises(WeightsError) as e:
        load_segmenter("mask2former")
    assert time.monotonic() - start < 5
    msg = str(e.value)
    assert "\n" not in msg and f"'{DEFAULT_MASK2FORMER}' are not in the Hugging Face cache" in msg
    assert f"hf download {DEFAULT_MASK2FORMER} --local-dir DIR" in msg and "--panoptic-weights DIR" in msg
    fallback = load_segmenter("mask2former", allow_random=True)
    assert fallback.random and fallback.identity["note"] == "default weights unavailable"
    with pytest.raises(WeightsError, match="add --allow-random-weights"):
        load_segmenter("mask2former", "random")
    with pytest.raises(WeightsError, match="folder not found"):
        load_segmenter("mask2former", str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="holds no config.json and model.safetensors"):
        load_segmenter("mask2former", str(tmp_path / "empty"))
    with pytest.raises(WeightsError, match="not in the Hugging Face cache"):
        load_segmenter("mask2former", "someone/not-cached")
    with pytest.raises(ConfigError, match="unknown panoptic model"):
        load_segmenter("sam")
    with pytest.raises(ConfigError, match="too small"):
        load_segmenter("mask2former", "random", allow_random=True, size=16)


def test_a_folder_that_is_not_coco_panoptic(tmp_path):
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                          window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg = Mask2FormerConfig(backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32,
                            encoder_feedforward_dim=64, dim_feedforward=64, encoder_layers=1, decoder_layers=2,
                            num_attention_heads=2, num_queries=4, id2label={i: f"c{i}" for i in range(150)})
    Mask2FormerForUniversalSegmentation(cfg).save_pretrained(tmp_path / "ade")
    seg = load_segmenter("mask2former", str(tmp_path / "ade"), size=64)
    with pytest.raises(WeightsError, match="150 labels; a COCO panoptic checkpoint has 133"):
        seg.label_maps([make_image(64, 64)])
