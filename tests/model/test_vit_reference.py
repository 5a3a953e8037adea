"""`splice score vit` against values the public reference code produced (reference_values.json)."""

from __future__ import annotations

import json

import pytest

from eval.vit_metrics import cached_vit, score_vit
from splice.core.imageio import load_rgb
from splice.model.vit import load_vit
from tests.support import SHARED
from tests.support.vit import save_recipe_weights

REF = SHARED / "design" / "reference_values.json"
pytestmark = pytest.mark.skipif(not REF.exists(), reason="../shared/design/reference_values.json is absent")


def _cases():
    if not REF.exists():
        return []
    ref = json.loads(REF.read_text())
    out = []
    for arch, per_case in ref["values"].items():
        for case, values in per_case.items():
            out.append(pytest.param(arch, ref["images"][case], values, id=f"{arch}-{case}"))
    return out


@pytest.fixture(scope="module")
def extractors(tmp_path_factory):
    cache = {}

    def get(arch):
        if arch not in cache:
            path = save_recipe_weights(arch, tmp_path_factory.mktemp("w") / f"{arch}.pth")
            cache[arch] = load_vit(arch, weights=str(path))
        return cache[arch]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("arch,images,expected", _cases())
def test_matches_reference(extractors, arch, images, expected):
    paths = [SHARED / p for p in images]
    if not all(p.exists() for p in paths):
        pytest.skip("reference images absent (../shared/data/paper is optional)")
    s, t, o = (load_rgb(p).image for p in paths)
    got = score_vit(s, t, o, cached_vit(extractors(arch), memory_only=True))  # same size: identity alignment
    for key, want in expected.items():
        if want == 0.0:
            assert abs(got[key]) < 1e-9, (key, got[key])
        else:
            assert got[key] == pytest.approx(want, rel=3e-5), (key, got[key], want)
