"""reinhard and histogram: numbers against hand-computed values, end to end on a tiny pair."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from baselines.colour import (
    Histogram,
    Reinhard,
    histogram_map,
    histogram_transfer,
    lab_to_rgb,
    reinhard_transfer,
    rgb_to_lab,
)
from splice.core.errors import ImageError
from splice.core.method import Pair, RunSettings
from splice.core.registry import methods
from tests.support.images import make_image


def _pair(s, a) -> Pair:
    return Pair(pair_id="p", structure=s, appearance=a, dataset="test")


def _lab_stats(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = rgb_to_lab(arr.astype(np.float64) / 255.0).reshape(-1, 3)
    return lab.mean(0), lab.std(0)


# -- reinhard -----------------------------------------------------------------------------------------------------
def test_lab_of_white_matches_the_papers_matrices_by_hand():
    # RGB (1,1,1) -> LMS = row sums of the paper's matrix; then log10 and the l-alpha-beta rotation.
    L, M, S = math.log10(0.9996), math.log10(0.9993), math.log10(0.9973)
    expected = [(L + M + S) / math.sqrt(3), (L + M - 2 * S) / math.sqrt(6), (L - M) / math.sqrt(2)]
    assert rgb_to_lab(np.ones(3)) == pytest.approx(expected, abs=1e-12)


def test_lab_round_trip_is_exact():
    x = np.random.default_rng(0).uniform(0.05, 1.0, (100, 3))
    assert np.abs(lab_to_rgb(rgb_to_lab(x)) - x).max() < 1e-12


def test_reinhard_matches_appearance_statistics_when_nothing_clips():
    rng = np.random.default_rng(0)
    s = rng.integers(80, 170, (40, 50, 3)).astype(np.uint8)
    a = (rng.integers(90, 150, (30, 30, 3)) + np.array([20, 0, -30])).astype(np.uint8)
    out, stats = reinhard_transfer(s, a)
    assert out.shape == s.shape and out.dtype == np.uint8
    assert stats["clipped_share"] == 0.0
    mo, so = _lab_stats(out)
    ma, sa = _lab_stats(a)
    assert np.abs(mo - ma).max() < 2e-4  # only 8-bit rounding separates them
    assert np.abs(so / sa - 1).max() < 3e-3
    # the statistics recorded are the two inputs' own
    assert stats["appearance_lab"]["mean"] == pytest.approx(ma.tolist(), abs=1e-12)


def test_reinhard_flat_structure_is_only_shifted():
    s = np.full((8, 8, 3), 100, np.uint8)
    a = np.full((8, 8, 3), (180, 120, 60), np.uint8)
    out, stats = reinhard_transfer(s, a)
    assert stats["scale"] == [1.0, 1.0, 1.0]
    assert np.abs(out.astype(int) - np.array([180, 120, 60])).max() <= 1  # a flat image takes the flat colour


def test_reinhard_end_to_end_on_tiny_pair(tiny_pair):
    s, a = tiny_pair
    res = Reinhard().run(_pair(s, a), RunSettings(preset="smoke"))
    assert res.image.mode == "RGB" and res.image.size == (96, 80)
    assert res.geometry.is_identity and res.geometry.to_dict()["kind"] == "identity"
    assert res.info["random_weights"] is False and res.info["weights"] == {}
    assert res.info["inputs"]["structure"]["size"] == [96, 80]
    assert res.info["inputs"]["appearance"]["size"] == [72, 72]
    mo, so = _lab_stats(np.asarray(res.image))
    ma, sa = _lab_stats(np.asarray(Image.open(a).convert("RGB")))
    # make_image saturates some pixels (about 10 % clip), so the match is close but not exact
    assert np.abs(mo - ma).max() < 0.02
    assert np.abs(so / sa - 1).max() < 0.06


# -- histogram ----------------------------------------------------------------------------------------------------
def test_histogram_maps_quartiles_onto_quartiles_by_hand():
    s = np.repeat(np.array([10, 20, 30, 40], np.uint8), 4).reshape(4, 4, 1).repeat(3, axis=2)
    a = np.repeat(np.array([100, 150, 200, 250], np.uint8), 9).reshape(6, 6, 1).repeat(3, axis=2)
    out, _ = histogram_transfer(s, a)
    assert out[..., 0].ravel().tolist() == [100] * 4 + [150] * 4 + [200] * 4 + [250] * 4


def _reference_lut(source: np.ndarray, target: np.ndarray) -> list[int]:
    """T(v) = min{t : CDF_t(t) >= CDF_s(v)} with exact fractions, the slow way."""
    hs, ht = np.bincount(source.ravel(), minlength=256), np.bincount(target.ravel(), minlength=256)
    cs = [Fraction(int(hs[: v + 1].sum()), source.size) for v in range(256)]
    ct = [Fraction(int(ht[: t + 1].sum()), target.size) for t in range(256)]
    return [next(t for t in range(256) if ct[t] >= cs[v]) for v in range(256)]


def test_histogram_lut_equals_exact_reference():
    rng = np.random.default_rng(3)
    src = rng.integers(0, 256, 997).astype(np.uint8)  # prime sizes: no shared CDF steps by accident
    tgt = (rng.normal(90, 30, 613).clip(0, 255)).astype(np.uint8)
    assert histogram_map(src, tgt).tolist() == _reference_lut(src, tgt)


def test_histogram_output_histogram_equals_target_when_cdf_steps_align():
    rng = np.random.default_rng(5)
    s = np.tile(np.arange(256, dtype=np.uint8), 12).reshape(48, 64)  # every level 12 times: steps of 1/256
    counts = rng.multinomial(256, rng.dirichlet(np.ones(256) * 0.3))  # 256 target pixels: steps k/256
    t = np.repeat(np.arange(256, dtype=np.uint8), counts).reshape(16, 16)
    s3, t3 = np.stack([s] * 3, -1), np.stack([t] * 3, -1)
    out, _ = histogram_transfer(s3, t3)
    for c in range(3):
        assert (np.bincount(out[..., c].ravel(), minlength=256) == counts * 12).all()


def test_histogram_end_to_end_properties(tiny_pair):
    s, a = tiny_pair
    res = Histogram().run(_pair(s, a), RunSettings(preset="smoke", seed=7))
    out = np.asarray(res.image)
    src = np.asarray(Image.open(s).convert("RGB"))
    app = np.asarray(Image.open(a).convert("RGB"))
    assert res.geometry.is_identity and res.image.size == (96, 80)
    for c in range(3):
        assert set(np.unique(out[..., c])) <= set(np.unique(app[..., c]))  # only the appearance's values
        lut = _reference_lut(src[..., c], app[..., c])
        assert (out[..., c] == np.array(lut, np.uint8)[src[..., c]]).all()


# -- both ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["reinhard", "histogram"])
def test_registered_deterministic_and_seed_free(name, tiny_pair):
    m = methods.create(name)
    assert m.in_smoke and m.in_benchmark and m.requirements(RunSettings()) == []
    s, a = tiny_pair
    r1 = m.run(_pair(s, a), RunSettings(seed=0))
    r2 = methods.create(name).run(_pair(s, a), RunSettings(seed=123, preset="paper"))
    assert r1.image.tobytes() == r2.image.tobytes()
    assert m.config(RunSettings(preset="smoke")) == m.config(RunSettings(preset="paper"))


@pytest.mark.parametrize("name", ["reinhard", "histogram"])
def test_odd_modes_and_missing_files(name, tmp_path):
    s = tmp_path / "s.png"
    a = tmp_path / "a.png"
    make_image(80, 64, seed=1).convert("L").save(s)  # grayscale structure
    rgba = make_image(70, 70, seed=2).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(a)  # translucent appearance: composited over white by load_rgb
    res = methods.create(name).run(_pair(s, a), RunSettings())
    assert res.image.mode == "RGB" and res.image.size == (80, 64)
    assert res.info["inputs"]["appearance"]["conversions"] == ["RGBA composited over white"]
    with pytest.raises(ImageError, match="appearance image not found"):
        methods.create(name).run(_pair(s, tmp_path / "nope.png"), RunSettings())
