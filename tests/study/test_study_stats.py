"""Statistics of the 2AFC study against hand-computed and reference values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.study import stats


def test_wilson_60_of_100():
    # Hand computation: z = 1.959964, centre = (0.6 + z^2/200) / (1 + z^2/100) = 0.596298,
    # half = z / (1 + z^2/100) * sqrt(0.24/100 + z^2/40000) = 0.094298 -> (0.5020, 0.6906).
    w = stats.wilson_interval(60, 100)
    assert w.low == pytest.approx(0.502003, abs=1e-6)
    assert w.high == pytest.approx(0.690599, abs=1e-6)


def test_wilson_edges():
    assert stats.wilson_interval(0, 10).low == 0.0
    assert stats.wilson_interval(10, 10).high == 1.0
    assert stats.wilson_interval(0, 10).high == pytest.approx(0.277533, abs=1e-6)  # z^2 / (n + z^2)
    assert all(math.isnan(v) for v in stats.wilson_interval(0, 0).as_tuple())
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)


def test_binomial_p_60_of_100():
    # Two-sided exact test: 2 * P(X >= 60 | n=100, p=0.5) = 0.056887933640980...
    assert stats.binomial_p(60, 100) == pytest.approx(0.0568879, abs=1e-7)
    assert stats.binomial_p(50, 100) == pytest.approx(1.0)
    assert stats.binomial_p(10, 10) == pytest.approx(2 * 0.5**10)
    assert math.isnan(stats.binomial_p(0, 0))


def test_holm_known_values():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = stats.holm([0.02, float("nan"), 0.04])
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert stats.holm([]) == []


def test_crossed_bootstrap_reproducible_and_sensible():
    rng = np.random.default_rng(0)
    raters = np.repeat(np.arange(20), 30)
    items = np.tile(np.arange(30), 20)
    votes = (rng.random(600) < 0.6).astype(int)
    a = stats.crossed_bootstrap(votes, raters, items, n_boot=500, seed=3)
    b = stats.crossed_bootstrap(votes, raters, items, n_boot=500, seed=3)
    assert a == b
    assert a.low < votes.mean() < a.high
    assert 0.03 < a.high - a.low < 0.2


def test_crossed_bootstrap_widens_when_raters_disagree():
    raters = np.repeat(np.arange(10), 20)
    items = np.tile(np.arange(20), 10)
    independent = (np.random.default_rng(1).random(200) < 0.6).astype(int)
    by_rater = (raters < 6).astype(int)  # 6 raters always vote ours, 4 never: same share 0.6
    wi = stats.crossed_bootstrap(independent, raters, items, n_boot=800, seed=0)
    wr = stats.crossed_bootstrap(by_rater, raters, items, n_boot=800, seed=0)
    assert (wr.high - wr.low) > 2 * (wi.high - wi.low)
