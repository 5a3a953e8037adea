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


# ------------------------------------------------------------------- the headline: two-way clustered
def test_jackknife_with_one_vote_per_cluster_is_the_textbook_variance():
    y = np.array([1, 0, 1, 1, 0, 1, 1, 1.0])
    v, g = stats.jackknife_cluster_variance(y, np.arange(8))
    assert g == 8 and v == pytest.approx(y.var(ddof=1) / 8, rel=1e-12)


def test_clustered_share_hand_computed():
    # 3 raters x 4 items, every rater judges every item (a lab):
    #   R1: 1 1 1 1   R2: 1 1 1 0   R3: 0 0 1 0      8 of 12 -> share 2/3
    # leave one rater out: 4/8, 5/8, 7/8 -> V_raters = 2/3 * ((1/6)^2 + (1/24)^2 + (5/24)^2) = 28/576
    # leave one item out: 6/9, 6/9, 5/9, 7/9 -> V_items = 3/4 * 2 * (1/9)^2 = 1/54
    # votes: s^2/n = (8 (1/3)^2 + 4 (2/3)^2) / (12 * 11) = 8/396;  V = 28/576 + 1/54 - 8/396 (above the floor
    # 0.625 * 0.375 / 12 of independent votes); df = min(3, 4) - 1 = 2
    votes = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0]
    raters = np.repeat(["R1", "R2", "R3"], 4)
    items = np.tile(["I1", "I2", "I3", "I4"], 3)
    e = stats.clustered_share(votes, raters, items)
    var = 28 / 576 + 1 / 54 - 8 / 396
    assert (e.share, e.votes, e.wins, e.raters, e.items, e.df) == (pytest.approx(2 / 3), 12, 8, 3, 4, 2)
    assert e.se == pytest.approx(math.sqrt(var), rel=1e-12)
    t = (2 / 3 - 0.5) / math.sqrt(var)
    assert e.p_value == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)  # t with 2 df, closed form
    assert e.p_value == pytest.approx(0.52212, abs=1e-5)
    q = 4.302653  # t quantile, 97.5%, 2 df
    assert e.low == pytest.approx(max(0, 2 / 3 - q * e.se), abs=1e-6) and e.high == 1.0
    # the vote-level test of the same votes claims far more
    assert stats.binomial_p(8, 12) < e.p_value / 1.3


def test_clustered_share_floor_and_degenerate_designs():
    # unanimous: the clustered variance is 0; the floor is the binomial variance at (w+2)/(n+4)
    e = stats.clustered_share([1] * 6, ["a", "a", "b", "b", "c", "c"], [1, 2, 1, 2, 1, 2])
    assert e.se == pytest.approx(math.sqrt(0.8 * 0.2 / 6)) and e.df == 1 and 0.05 < e.p_value < 1
    one_item = stats.clustered_share([1, 0, 1], ["a", "b", "c"], ["x", "x", "x"])
    assert one_item.df == 0 and math.isnan(one_item.p_value) and math.isnan(one_item.low)
    assert one_item.share == pytest.approx(2 / 3)
    assert math.isnan(stats.clustered_share([], [], []).share)


# --------------------------------------------------------------------------------------- agreement
def test_agreement_hand_computed():
    # comparisons: [1,1,1], [0,0,1], [1,0]: agreeing pairs 6 + 2 + 0 of 6 + 6 + 2 -> 8/14
    # Krippendorff: D_o = (0 + 2*1*2/2 + 2*1*1/1) / 8 = 0.5, D_e = 2*5*3 / (8*7) = 30/56 -> alpha = 1 - 28/30
    ag = stats.agreement([1, 1, 1, 0, 0, 1, 1, 0], [1, 1, 1, 2, 2, 2, 3, 3])
    assert (ag.items, ag.votes) == (3, 8)
    assert ag.pairwise == pytest.approx(8 / 14) and ag.alpha == pytest.approx(1 / 15)
    one_way = stats.agreement([1, 1, 1, 1, 1], [1, 1, 2, 2, 3])  # item 3 has one vote: left out
    assert (one_way.items, one_way.votes, one_way.pairwise) == (2, 4, 1.0) and math.isnan(one_way.alpha)
    perfect = stats.agreement([1, 1, 0, 0], ["a", "a", "b", "b"])
    assert perfect.alpha == pytest.approx(1.0) and perfect.pairwise == 1.0


# ---------------------------------------------------------------------------------- Bradley-Terry
def test_bradley_terry_two_methods_is_the_smoothed_logit():
    from eval.study.ranking import bradley_terry

    rng = np.random.default_rng(0)
    n = 200
    won = rng.random(n) < 0.7
    a, b = np.full(n, "splice"), np.full(n, "wct2")
    r = bradley_terry(a, b, np.where(won, a, b), rng.integers(0, 20, n), rng.integers(0, 25, n))
    w = int(won.sum())
    assert [x.method for x in r] == ["splice", "wct2"] and (r[0].wins, r[0].votes) == (w, n)
    assert r[0].score - r[1].score == pytest.approx(math.log((w + 0.5) / (n - w + 0.5)), rel=1e-9)
    assert r[0].score == pytest.approx(-r[1].score) and r[0].ci_low > 0 and (r[0].rank_low, r[0].rank_high) == (1, 1)


def test_bradley_terry_three_methods_matches_a_direct_fit():
    from scipy.optimize import minimize

    from eval.study.ranking import bradley_terry

    rng = np.random.default_rng(1)
    true = {"a": 1.0, "b": 0.0, "c": -0.3}
    pairs = [("a", "b"), ("a", "c"), ("b", "c")] * 60
    win_first = [rng.random() < 1 / (1 + math.exp(true[y] - true[x])) for x, y in pairs]
    first, second = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    chosen = np.where(win_first, first, second)
    r = {x.method: x for x in bradley_terry(first, second, chosen, np.arange(180) % 30, np.arange(180) % 12)}

    def nll(theta):  # the same likelihood with half a pseudo-vote each way per compared pair
        s = {"a": theta[0], "b": theta[1], "c": 0.0}
        out = 0.0
        for (x, y), w in zip(pairs, win_first):
            d = s[x] - s[y]
            out += np.logaddexp(0, -d) if w else np.logaddexp(0, d)
        for x, y in set(pairs):
            d = s[x] - s[y]
            out += 0.5 * (np.logaddexp(0, -d) + np.logaddexp(0, d))
        return out

    th = minimize(nll, [0.0, 0.0], method="BFGS", options={"gtol": 1e-8}).x
    direct = np.array([th[0], th[1], 0.0])
    direct -= direct.mean()
    assert [r[m].score for m in "abc"] == pytest.approx(list(direct), abs=1e-5)
    assert r["a"].rank == 1 and r["a"].ci_low < r["a"].score < r["a"].ci_high
