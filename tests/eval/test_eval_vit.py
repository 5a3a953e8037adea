"""ViT distances over a run (eval.vit_metrics): the lead's extractor behind the cache.

Checked against reference_values.json (values of the public reference Splice code with
deterministic stand-in weights) on the embedded giraffe/zebra demo pair, then re-scored
from the cache with zero forward passes.
"""

from __future__ import annotations

import json

import pytest

from eval.cache import FeatureCache
from eval.vit_metrics import CachedViT, score_vit
from splice.core.geometry import Geometry
from splice.core.imageio import load_rgb
from tests.support import PROJECT, SHARED

REF = SHARED / "design" / "reference_values.json"
DEMO = PROJECT / "datasets" / "demo" / "giraffe_zebra"


@pytest.mark.skipif(not REF.exists(), reason="../shared/design/reference_values.json is absent")
def test_cached_vit_matches_reference_and_rescoring_is_free(tmp_path):
    from splice.model.vit import load_vit
    from tests.support.vit import save_recipe_weights

    arch = "vit_small_patch8_224"
    expected = json.loads(REF.read_text())["values"][arch]["giraffe_zebra"]  # output = the appearance image
    ext = load_vit(arch, weights=str(save_recipe_weights(arch, tmp_path / "w.pth")))
    s = load_rgb(DEMO / "structure.png").image
    a = load_rgb(DEMO / "appearance.png").image
    geo = Geometry.identity(s.size).to_dict()

    vit = CachedViT(ext, FeatureCache(tmp_path / "cache", "vit", arch))
    rec = score_vit(s, a, a, vit, geo)
    assert vit.model_calls == 2  # the output is the appearance image: one pass serves both
    assert rec["structure_distance"] == pytest.approx(expected["structure_distance"], rel=3e-5)
    assert rec["appearance_distance"] == 0.0 and rec["appearance_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert rec["backbone"] == arch and rec["random_weights"] is False and rec["aligned"] == "identity"
    assert rec["weights"]["sha256"] and rec["protocol_version"] == "2"

    again = CachedViT(ext, FeatureCache(tmp_path / "cache", "vit", arch))
    assert score_vit(s, a, a, again, geo) == rec
    assert again.model_calls == 0

    # a centre-cropped output is compared with the equally cropped structure image
    crop = Geometry.center_crop(s.size, (256, 128))
    rec2 = score_vit(s, a, crop.apply(s), again, crop)
    assert rec2["aligned"] == "geometry" and rec2["structure_distance"] == pytest.approx(0.0, abs=1e-10)
