"""Statistics of the 2AFC study: vote shares, confidence intervals, tests, multiplicity, agreement.

The Splice paper (Tumanyan et al., CVPR 2022, Table 1) reports, per baseline, the share of
judgments that preferred Splice's output in a two-alternative forced choice. Judgments are not
independent: each rater casts many and each comparison (item) gets several, so PROTOCOL.md
(version 2) asks for a headline interval and test that account for both.

- :func:`clustered_share` (the headline): the vote share with a two-way (rater x item)
  cluster-robust standard error in the manner of Cameron, Gelbach & Miller (2011), its one-way
  parts computed by the delete-one-cluster jackknife, and never smaller than the standard error
  of independent votes; a t reference with min(raters, items) - 1 degrees of freedom. Why this
  one and not a bootstrap or a mixed model: docs/study.md, with the simulations
  (:mod:`eval.study.simulate`) that check it.
- :func:`wilson_interval`, :func:`binomial_p`: the vote-level numbers, which ASSUME INDEPENDENT
  VOTES (kept for comparison with other papers; they overclaim when raters or items differ).
- :func:`holm`: Holm's step-down correction across the baselines of one data set.
- :func:`agreement`: inter-rater agreement on each comparison (pairwise agreement and
  Krippendorff's alpha for nominal data).
- :func:`crossed_bootstrap`: the pigeonhole bootstrap over raters and items (Owen 2007); kept as
  a reference in the simulations (it is conservative in the designs a study uses).

Known values (used by the tests): 60 votes of 100 give the Wilson interval
(0.5020, 0.6906) and a two-sided exact binomial p-value of 0.0569.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def as_tuple(self) -> tuple[float, float]:
        return (self.low, self.high)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion (no continuity correction).

    ``n == 0`` gives (nan, nan): there is nothing to estimate.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return Interval(math.nan, math.nan)
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends (no rounding residue)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(low, high)


def binomial_p(successes: int, n: int, p0: float = 0.5) -> float:
    """Two-sided exact binomial test of ``successes`` of ``n`` against ``p0`` (scipy's binomtest)."""
    if n == 0:
        return math.nan
    return float(binomtest(int(successes), int(n), p0, alternative="two-sided").pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order.

    NaN p-values (comparisons without votes) stay NaN and do not count in the family.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return out.tolist()
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out.tolist()


def crossed_bootstrap(
    votes: np.ndarray,
    raters: np.ndarray,
    items: np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    chunk: int = 250,
) -> Interval:
    """Percentile interval of the vote share under a bootstrap over raters AND items.

    Each replicate draws raters with replacement and, independently, items with
    replacement; a judgment by rater r on item i then counts (times r was drawn) x (times i
    was drawn). This respects that votes by one rater, and votes on one item, are
    correlated (a two-way crossed random-effects design), so the interval is wider than a
    bootstrap over single votes when raters or items disagree systematically.

    Args:
        votes: 1 for a vote for our method, 0 otherwise (one entry per judgment).
        raters, items: labels of the judgment's rater and item (any hashable values).
        n_boot: number of replicates; seed: makes the interval reproducible.
    """
    votes = np.asarray(votes, dtype=float)
    if votes.size == 0:
        return Interval(math.nan, math.nan)
    _, r_idx = np.unique(np.asarray(raters, dtype=str), return_inverse=True)
    _, i_idx = np.unique(np.asarray(items, dtype=str), return_inverse=True)
    n_r, n_i = int(r_idx.max()) + 1, int(i_idx.max()) + 1
    rng = np.random.default_rng(seed)
    shares: list[np.ndarray] = []
    left = n_boot
    while left > 0:
        b = min(chunk, left)
        left -= b
        wr = rng.multinomial(n_r, np.full(n_r, 1.0 / n_r), size=b).astype(float)  # (b, n_r)
        wi = rng.multinomial(n_i, np.full(n_i, 1.0 / n_i), size=b).astype(float)  # (b, n_i)
        w = wr[:, r_idx] * wi[:, i_idx]  # (b, n_judgments)
        total = w.sum(axis=1)
        keep = total > 0  # a replicate may draw only raters and items that never met
        shares.append((w[keep] @ votes) / total[keep])
    s = np.concatenate(shares)
    if s.size == 0:
        return Interval(math.nan, math.nan)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(s, [alpha, 1.0 - alpha])
    return Interval(float(lo), float(hi))


# ------------------------------------------------------------------------------ the headline
@dataclass(frozen=True)
class ShareEstimate:
    """The share of votes for one side, with an interval and a test that respect raters and items."""

    share: float
    se: float
    df: int  # degrees of freedom of the t reference: min(raters, items) - 1
    low: float
    high: float
    p_value: float  # two-sided, against ``p0``
    votes: int
    wins: int
    raters: int
    items: int


def _codes(labels) -> tuple[np.ndarray, int]:
    """Labels (any hashable values; integers take a fast path) -> codes 0..G-1 and G."""
    arr = np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(str)
    _, idx = np.unique(arr, return_inverse=True)
    idx = idx.reshape(-1)
    return idx, (int(idx.max()) + 1 if idx.size else 0)


def jackknife_cluster_variance(votes: np.ndarray, clusters) -> tuple[float, int]:
    """Delete-one-cluster jackknife variance of the mean of ``votes`` (and the number of clusters).

    ``(G - 1) / G * sum_g (mean without cluster g - average of those means)^2``; with one vote per
    cluster it is the textbook ``s^2 / n``. Fewer than 2 clusters give NaN.
    """
    y = np.asarray(votes, dtype=float)
    idx, g = _codes(clusters)
    if g < 2:
        return math.nan, g
    sums, sizes = np.bincount(idx, y, g), np.bincount(idx, None, g)
    loo = (y.sum() - sums) / (y.size - sizes)
    return float((g - 1) / g * ((loo - loo.mean()) ** 2).sum()), g


def clustered_share(
    votes: Sequence[int] | np.ndarray,
    raters: Sequence,
    items: Sequence,
    confidence: float = 0.95,
    p0: float = 0.5,
) -> ShareEstimate:
    """The share of ``votes`` (1 = a vote for the side of interest) with a two-way clustered interval.

    Variance: ``V_raters + V_items - V_votes`` (each a delete-one-cluster jackknife, so a vote shared
    by a rater and an item is counted once), never below the binomial variance of independent
    votes at the Agresti-Coull share ``(wins + 2) / (votes + 4)`` (that floor keeps a unanimous
    handful of votes from looking infinitely precise). The interval is ``share +- t * se`` clipped
    to [0, 1]; the p-value is the two-sided t test of ``share = p0``; both use
    ``min(raters, items) - 1`` degrees of freedom. With one rater or one item nothing generalises:
    the interval and p-value are NaN.
    """
    y = np.asarray(votes, dtype=float)
    n, wins = int(y.size), int(y.sum())
    r_idx, n_r = _codes(raters)
    i_idx, n_i = _codes(items)
    if n == 0:
        return ShareEstimate(math.nan, math.nan, 0, math.nan, math.nan, math.nan, 0, 0, 0, 0)
    share = wins / n
    df = min(n_r, n_i) - 1
    if df < 1:
        return ShareEstimate(share, math.nan, max(df, 0), math.nan, math.nan, math.nan, n, wins, n_r, n_i)
    v_r, _ = jackknife_cluster_variance(y, r_idx)
    v_i, _ = jackknife_cluster_variance(y, i_idx)
    v_e = float(((y - share) ** 2).sum() / (n * (n - 1))) if n > 1 else 0.0
    p_ac = (wins + 2.0) / (n + 4.0)
    var = max(v_r + v_i - v_e, p_ac * (1.0 - p_ac) / n)
    se = math.sqrt(var)
    q = float(student_t.ppf(0.5 + confidence / 2.0, df))
    p = float(2.0 * student_t.sf(abs(share - p0) / se, df))
    return ShareEstimate(share, se, df, max(0.0, share - q * se), min(1.0, share + q * se), min(1.0, p), n, wins,
                         n_r, n_i)


# ------------------------------------------------------------------------------- agreement
@dataclass(frozen=True)
class Agreement:
    """Agreement of raters on the same comparison (binary choices), over comparisons with 2+ votes."""

    items: int  # comparisons with at least 2 votes
    votes: int  # their votes
    pairwise: float  # share of pairs of votes on one comparison that agree
    alpha: float  # Krippendorff's alpha, nominal: 1 - observed / expected disagreement


def agreement(choices: Sequence[int] | np.ndarray, items: Sequence) -> Agreement:
    """Pairwise agreement and Krippendorff's alpha of binary ``choices`` grouped by ``items``.

    For a comparison with ``a`` votes one way and ``b`` the other (``m = a + b``), the pairs that
    agree are ``a(a-1) + b(b-1)`` of ``m(m-1)``. Krippendorff's alpha (nominal) is
    ``1 - D_o / D_e`` with ``D_o = sum 2ab / (m - 1) / N`` and ``D_e = 2 A B / (N (N - 1))`` over the
    comparisons with ``m >= 2`` (``N`` their votes, ``A`` and ``B`` the totals each way). Alpha is NaN
    when every vote goes one way (no expected disagreement to compare with).
    """
    y = np.asarray(choices, dtype=float)
    idx, g = _codes(items)
    if g == 0:
        return Agreement(0, 0, math.nan, math.nan)
    a = np.bincount(idx, y, g)
    m = np.bincount(idx, None, g)
    keep = m >= 2
    a, m = a[keep], m[keep]
    b = m - a
    n = float(m.sum())
    if n == 0:
        return Agreement(0, 0, math.nan, math.nan)
    pairwise = float((a * (a - 1) + b * (b - 1)).sum() / (m * (m - 1)).sum())
    d_o = float((2 * a * b / (m - 1)).sum() / n)
    d_e = 2 * float(a.sum()) * float(b.sum()) / (n * (n - 1))
    alpha = 1.0 - d_o / d_e if d_e > 0 else math.nan
    return Agreement(int(keep.sum()), int(n), pairwise, alpha)
