"""Statistics of the 2AFC study: vote shares, confidence intervals, tests, multiplicity.

The Splice paper (Tumanyan et al., CVPR 2022, Table 1) reports, per baseline, the share
of judgments that preferred Splice's output in a two-alternative forced choice. PROTOCOL.md
asks for that share with a 95% confidence interval (Wilson, and a bootstrap over raters
and items), an exact binomial test against 50%, and Holm's correction across baselines.

Known values (used by the tests): 60 votes of 100 give the Wilson interval
(0.5020, 0.6906) and a two-sided exact binomial p-value of 0.0569.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import binomtest, norm


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
