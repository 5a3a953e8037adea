"""A Bradley-Terry ranking of every compared method from the pairwise votes of the 2AFC study.

PROTOCOL.md (version 2) asks for "a ranking of all compared methods from the pairwise votes
(Bradley-Terry)", next to the share of votes for our method (Splice paper, Tumanyan et al.,
CVPR 2022, Table 1). Each method has a score ``s``; a rater prefers ``i`` over ``j`` with
probability ``1 / (1 + exp(s_j - s_i))``.

- Fit: maximum likelihood by Newton's method, with half a pseudo-vote each way for every pair
  of methods that was compared (so that a unanimous comparison gives a large, finite score gap).
  Scores are centred (mean 0): only differences mean anything.
- Intervals: the votes are clustered by rater and by image pair, so the covariance is the
  two-way cluster-robust sandwich ``H^-1 (B_raters + B_pairs - B_votes) H^-1`` (Cameron, Gelbach &
  Miller 2011), never below the model-based ``H^-1`` of independent votes, with a t reference at
  ``min(raters, pairs) - 1`` degrees of freedom, as for the headline share
  (:func:`eval.study.stats.clustered_share`).
- Rank intervals: the 2.5% and 97.5% quantiles of each method's rank over draws of the scores
  from that (multivariate t) distribution; rank 1 is the most preferred.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import t as student_t

PSEUDO = 0.5  # pseudo-votes each way per compared pair of methods


@dataclass(frozen=True)
class Ranked:
    method: str
    score: float
    se: float
    ci_low: float
    ci_high: float
    rank: int
    rank_low: int
    rank_high: int
    wins: int
    votes: int

    def as_dict(self) -> dict:
        return asdict(self)


def _components(n: int, edges: set[tuple[int, int]]) -> int:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in edges:
        parent[find(i)] = find(j)
    return len({find(i) for i in range(n)})


def _cluster_meat(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """``G/(G-1) * sum_g (sum of the scores of cluster g)(...)^T`` and G."""
    _, idx = np.unique(labels, return_inverse=True)
    g = int(idx.max()) + 1
    sums = np.zeros((g, scores.shape[1]))
    np.add.at(sums, idx.reshape(-1), scores)
    factor = g / (g - 1) if g > 1 else math.nan
    return factor * sums.T @ sums, g


def bradley_terry(
    a: np.ndarray,
    b: np.ndarray,
    chosen: np.ndarray,
    raters: np.ndarray,
    items: np.ndarray,
    confidence: float = 0.95,
    draws: int = 4000,
    seed: int = 0,
) -> list[Ranked]:
    """Scores, intervals and ranks of every method in ``a`` and ``b`` (best first).

    Args:
        a, b: the two methods of each vote; chosen: the one the rater picked (``a`` or ``b``).
        raters, items: each vote's rater and image pair (the clusters of the interval).
        draws: draws of the scores for the rank intervals; seed: makes them reproducible.
    """
    a, b, chosen = (np.asarray(x, dtype=str) for x in (a, b, chosen))
    if a.size == 0:
        return []
    methods = sorted({str(v) for v in set(a) | set(b)})
    m = len(methods)
    pos = {name: k for k, name in enumerate(methods)}
    ia, ib = np.array([pos[x] for x in a]), np.array([pos[x] for x in b])
    y = (chosen == a).astype(float)
    wins = np.zeros(m, int)
    np.add.at(wins, np.where(y == 1, ia, ib), 1)
    votes = np.bincount(ia, minlength=m) + np.bincount(ib, minlength=m)
    if m == 1:
        return [Ranked(methods[0], 0.0, math.nan, math.nan, math.nan, 1, 1, 1, int(wins[0]), int(votes[0]))]

    # Design rows x = e_a - e_b, reduced to the last m - 1 methods (the first is the reference, score 0).
    x = np.zeros((a.size, m))
    x[np.arange(a.size), ia] += 1.0
    x[np.arange(a.size), ib] -= 1.0
    pairs = sorted({(min(i, j), max(i, j)) for i, j in zip(ia, ib) if i != j})
    px = np.zeros((len(pairs), m))
    for k, (i, j) in enumerate(pairs):
        px[k, i], px[k, j] = 1.0, -1.0
    connected = _components(m, set(pairs)) == 1
    xr, pxr = x[:, 1:], px[:, 1:]

    theta = np.zeros(m - 1)
    ridge = 0.0 if connected else 1e-6
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(xr @ theta)))
        pp = 1.0 / (1.0 + np.exp(-(pxr @ theta)))
        grad = xr.T @ (y - p) + pxr.T @ (PSEUDO * (1.0 - 2.0 * pp)) - ridge * theta
        hess = (xr * (p * (1 - p))[:, None]).T @ xr + (pxr * (2 * PSEUDO * pp * (1 - pp))[:, None]).T @ pxr
        hess += ridge * np.eye(m - 1)
        step = np.linalg.solve(hess, grad)
        theta += step
        if np.abs(step).max() < 1e-10:
            break
    p = 1.0 / (1.0 + np.exp(-(xr @ theta)))
    h_data = (xr * (p * (1 - p))[:, None]).T @ xr
    h_inv = np.linalg.inv(hess)
    s = xr * (y - p)[:, None]  # per-vote scores
    b_r, g_r = _cluster_meat(s, np.asarray(raters, dtype=str))
    b_i, g_i = _cluster_meat(s, np.asarray(items, dtype=str))
    n = a.size
    b_e = (n / (n - 1) if n > 1 else math.nan) * s.T @ s
    df = min(g_r, g_i) - 1
    full = np.zeros(m)
    full[1:] = theta
    centre = np.eye(m) - 1.0 / m
    score = centre @ full
    if df < 1 or not connected:
        cov = np.full((m, m), math.nan)
    else:
        extra = b_r + b_i - b_e - h_data
        w, v = np.linalg.eigh((extra + extra.T) / 2)
        meat = h_data + (v * np.clip(w, 0, None)) @ v.T  # never below independent votes
        cov_r = h_inv @ meat @ h_inv
        cov_full = np.zeros((m, m))
        cov_full[1:, 1:] = cov_r
        cov = centre @ cov_full @ centre
    se = np.sqrt(np.clip(np.diag(cov), 0, None)) if df >= 1 and connected else np.full(m, math.nan)
    rank = _ranks(score[None, :])[0]
    if df >= 1 and connected:
        q = float(student_t.ppf(0.5 + confidence / 2.0, df))
        rng = np.random.default_rng(seed)
        z = rng.multivariate_normal(np.zeros(m - 1), cov_r, size=draws, method="eigh")
        z *= np.sqrt(df / rng.chisquare(df, size=draws))[:, None]
        sims = np.zeros((draws, m))
        sims[:, 1:] = theta + z
        ranks = _ranks(sims)
        alpha = (1.0 - confidence) / 2.0
        r_lo = np.floor(np.quantile(ranks, alpha, axis=0)).astype(int)
        r_hi = np.ceil(np.quantile(ranks, 1 - alpha, axis=0)).astype(int)
        lo, hi = score - q * se, score + q * se
    else:
        lo = hi = np.full(m, math.nan)
        r_lo, r_hi = np.ones(m, int), np.full(m, m)
    out = [Ranked(methods[k], float(score[k]), float(se[k]), float(lo[k]), float(hi[k]), int(rank[k]), int(r_lo[k]),
                  int(r_hi[k]), int(wins[k]), int(votes[k])) for k in range(m)]  # fmt: skip
    return sorted(out, key=lambda r: (r.rank, r.method))


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Rank 1 = highest score, per row (ties broken by column order)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(scores.shape[0])[:, None]
    ranks[rows, order] = np.arange(1, scores.shape[1] + 1)
    return ranks
