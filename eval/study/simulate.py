"""Simulated 2AFC studies: how the study's statistics behave, and planning a study (``splice study power``).

A simulated study follows the design of PROTOCOL.md (version 2): ``items`` comparisons of our
method against one baseline (one row of Table 1), each judged by ``judgments`` *different*
raters drawn from a pool of ``raters`` (when the pool is exactly ``judgments`` raters, every rater
judges every comparison, as in a lab). A rater r votes for our method on item i with probability

    expit(beta + u_r + v_i),   u_r ~ N(0, rater_sd^2),  v_i ~ N(0, item_sd^2)  (logit scale),

and ``beta`` is chosen so that the *population share* ``E[expit(beta + u + v)]`` (over raters and
items) equals ``share``: that share is what a study estimates and what its interval must cover.
``share = 0.5`` is "no preference".

For each simulated study the headline analysis (:func:`eval.study.stats.clustered_share`), the
vote-level binomial test and Wilson interval (which assume independent votes) and, optionally,
the crossed bootstrap are run; :func:`operating_characteristics` reports how often each rejects
``share = 0.5`` at level ``alpha``, how often its interval covers ``share``, and its mean width.

``python -m eval.study.simulate --figures docs/study`` draws the figures of docs/study.md;
``--example-votes docs/study/example_votes_synthetic.csv`` writes its synthetic example votes.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.stats import binomtest

from splice.core.errors import ConfigError

from . import stats

METHODS = ("clustered", "naive", "bootstrap")
LABELS = {
    "clustered": "two-way clustered (ours, the headline)",
    "naive": "binomial / Wilson (assumes independent votes)",
    "bootstrap": "crossed bootstrap over raters and items",
}


MAX_ITEMS = 10_000  # comparisons per row of Table 1: the paper's rows have about 25
MAX_RATERS = 10_000
MAX_SIMS = 100_000
MAX_WORK = 1_000_000_000
"""Limit of ``sims x items x (raters + 100)`` in :func:`plan`, about its cost: drawing one study visits every
rater of the pool for every comparison, plus a fixed cost per comparison worth about 100 raters.
``splice study power --items 500 --raters 5000 --share 0.6 --sims 100`` (2.6e8) took 36 s on the project's
2-core machine, so the limit is about two and a half minutes there."""


@dataclass(frozen=True)
class Scenario:
    """One design and one truth (see the module docstring)."""

    items: int = 25
    judgments: int = 5
    raters: int = 40
    share: float = 0.5
    rater_sd: float = 1.0
    item_sd: float = 1.0
    skew: float = 0.0  # lognormal sd of rater activity (0: every rater judges about as many comparisons)

    def check(self) -> "Scenario":
        if self.items < 2:
            raise ConfigError(f"--items must be at least 2, got {self.items}")
        if self.judgments < 1:
            raise ConfigError(f"--judgments must be at least 1, got {self.judgments}")
        if self.raters < self.judgments:
            raise ConfigError(f"--raters ({self.raters}) must be at least --judgments ({self.judgments}): "
                              "each comparison needs that many different raters")
        if not 0 < self.share < 1:
            raise ConfigError(f"--share must be between 0 and 1 (exclusive), got {self.share}")
        for option, sd in (("--rater-sd", self.rater_sd), ("--item-sd", self.item_sd)):
            if not (math.isfinite(sd) and sd >= 0):  # NaN fails every comparison, so `sd < 0` let it through
                raise ConfigError(f"{option} must be a finite number, 0 or more, got {sd}")
        for option, n, limit in (("--items", self.items, MAX_ITEMS), ("--raters", self.raters, MAX_RATERS)):
            if n > limit:
                raise ConfigError(f"{option} {n} is above the limit of {limit:,} of a simulated study; plan fewer")
        return self


_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(64)
_GH_W = _GH_W / _GH_W.sum()


def population_share(beta: float, sd: float) -> float:
    """``E[expit(beta + sd * Z)]`` for a standard normal Z (Gauss-Hermite, 64 nodes)."""
    return float((_GH_W * expit(beta + sd * _GH_X)).sum())


def marginal_logit(share: float, sd: float) -> float:
    """The ``beta`` whose population share is ``share`` when effects add up to ``sd`` (bisection)."""
    lo, hi = -30.0, 30.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if population_share(mid, sd) < share:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def draw_design(rng: np.random.Generator, sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Rater and item index of every judgment: ``judgments`` different raters per item."""
    k, n_i, n_r = sc.judgments, sc.items, sc.raters
    items = np.repeat(np.arange(n_i), k)
    if n_r == k:
        return np.tile(np.arange(k), n_i), items
    raters = np.empty(n_i * k, dtype=int)
    if sc.skew > 0:
        activity = rng.lognormal(0.0, sc.skew, n_r)
        activity /= activity.sum()
        for i in range(n_i):
            raters[i * k:(i + 1) * k] = rng.choice(n_r, k, replace=False, p=activity)
        return raters, items
    load = np.zeros(n_r)
    for i in range(n_i):  # the k least busy raters, ties broken at random
        pick = np.argsort(load + rng.random(n_r) * 0.5, kind="stable")[:k]
        load[pick] += 1
        raters[i * k:(i + 1) * k] = pick
    return raters, items


def draw_votes(rng: np.random.Generator, sc: Scenario, beta: float | None = None):
    """One simulated study: (votes for our method 0/1, rater index, item index)."""
    if beta is None:
        beta = marginal_logit(sc.share, math.hypot(sc.rater_sd, sc.item_sd))
    raters, items = draw_design(rng, sc)
    u = rng.normal(0.0, sc.rater_sd, sc.raters)
    v = rng.normal(0.0, sc.item_sd, sc.items)
    y = (rng.random(items.size) < expit(beta + u[raters] + v[items])).astype(int)
    return y, raters, items


@dataclass(frozen=True)
class Operating:
    """How one method behaved over ``sims`` simulated studies of one scenario."""

    method: str
    rejection: float  # share of studies whose test rejected share = 0.5 at level alpha
    coverage: float  # share of studies whose interval covered the population share
    width: float  # mean interval width (share scale)
    sims: int


def operating_characteristics(sc: Scenario, sims: int = 1000, seed: int = 0, alpha: float = 0.05,
                              methods: tuple[str, ...] = ("clustered", "naive"), n_boot: int = 200,
                              confidence: float | None = None) -> dict[str, Operating]:
    """Rejection rate, coverage and mean width of each method over ``sims`` studies of ``sc``.

    The test is at level ``alpha``; the interval at ``confidence`` (default ``1 - alpha``). The
    bootstrap test rejects when 0.5 lies outside its interval.
    """
    sc.check()
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}")
    confidence = 1 - alpha if confidence is None else confidence
    rng = np.random.default_rng(seed)
    beta = marginal_logit(sc.share, math.hypot(sc.rater_sd, sc.item_sd))
    rej = dict.fromkeys(methods, 0)
    cov = dict.fromkeys(methods, 0)
    wid = dict.fromkeys(methods, 0.0)
    for _ in range(sims):
        y, r, i = draw_votes(rng, sc, beta)
        for m in methods:
            if m == "clustered":
                e = stats.clustered_share(y, r, i, confidence)
                lo, hi = e.low, e.high
                rejected = e.p_value < alpha
            elif m == "naive":
                w = stats.wilson_interval(int(y.sum()), int(y.size), confidence)
                lo, hi = w.low, w.high
                rejected = binomtest(int(y.sum()), int(y.size)).pvalue < alpha
            else:
                b = stats.crossed_bootstrap(y, r, i, n_boot, int(rng.integers(2**31)), 1 - alpha)
                lo, hi = b.low, b.high
                rejected = not lo <= 0.5 <= hi
                if confidence != 1 - alpha:
                    b = stats.crossed_bootstrap(y, r, i, n_boot, int(rng.integers(2**31)), confidence)
                    lo, hi = b.low, b.high
            rej[m] += bool(rejected)
            cov[m] += bool(lo <= sc.share <= hi)
            wid[m] += hi - lo
    return {m: Operating(m, rej[m] / sims, cov[m] / sims, wid[m] / sims, sims) for m in methods}


def plan(sc: Scenario, sims: int = 1000, seed: int = 0, alpha: float = 0.05, comparisons: int = 1) -> dict:
    """What ``splice study power`` prints: power, false-positive rate and expected CI width of a design.

    The test of each row runs at ``alpha / comparisons`` (Holm's first step over that many baselines,
    so the power shown is a lower bound for Holm's); the interval is at ``1 - alpha``.
    """
    sc.check()
    if not 100 <= sims <= MAX_SIMS:
        raise ConfigError(f"--sims must be between 100 and {MAX_SIMS:,}, got {sims}")
    work = sims * sc.items * (sc.raters + 100)
    if work > MAX_WORK:
        raise ConfigError(f"--sims x --items x (--raters + 100) is {work:.2g}, above the limit of {MAX_WORK:.0e} "
                          "(minutes of work); lower --sims (1000 gives power to +-1.6 points) or --items/--raters")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1, got {alpha}")
    if comparisons < 1:
        raise ConfigError(f"--comparisons must be at least 1, got {comparisons}")
    level = alpha / comparisons
    alt = operating_characteristics(sc, sims, seed, level, ("clustered",), confidence=1 - alpha)["clustered"]
    null = operating_characteristics(replace(sc, share=0.5), sims, seed + 1, level, ("clustered", "naive"),
                                     confidence=1 - alpha)
    mc = lambda p: math.sqrt(max(p * (1 - p), 1.0 / sims) / sims)  # noqa: E731
    return {
        "design": {**asdict(sc), "votes": sc.items * sc.judgments,
                   "votes_per_rater": sc.items * sc.judgments / sc.raters},
        "sims": sims, "seed": seed, "alpha": alpha, "comparisons": comparisons, "test_level": level,
        "power": alt.rejection, "power_mc_se": mc(alt.rejection),
        "false_positive_rate": null["clustered"].rejection,
        "false_positive_rate_mc_se": mc(null["clustered"].rejection),
        "ci_width": alt.width, "ci_coverage": alt.coverage,
        "naive_false_positive_rate": null["naive"].rejection,
    }  # fmt: skip


def format_plan(p: dict) -> str:
    """The plan as a few lines of text."""
    d = p["design"]
    holm = f" (alpha {p['alpha']:g} / {p['comparisons']} baselines)" if p["comparisons"] > 1 else ""
    return (
        f"design: {d['items']} comparisons x {d['judgments']} different raters = {d['votes']} votes, from a pool of "
        f"{d['raters']} raters (~{d['votes_per_rater']:.1f} votes each); rater sd {d['rater_sd']:g}, item sd "
        f"{d['item_sd']:g} (logit)\n"
        f"true share {d['share']:.3f}, test level {p['test_level']:.4g}{holm}, {p['sims']} simulated studies "
        f"(seed {p['seed']})\n"
        f"power:                {100 * p['power']:.1f}%  (+- {100 * p['power_mc_se']:.1f})\n"
        f"false-positive rate:  {100 * p['false_positive_rate']:.1f}%  (+- {100 * p['false_positive_rate_mc_se']:.1f}; "
        f"a vote-level binomial test: {100 * p['naive_false_positive_rate']:.1f}%)\n"
        f"expected CI width:    {100 * p['ci_width']:.1f} points  ({100 * (1 - p['alpha']):g}% CI; it covered the "
        f"true share in {100 * p['ci_coverage']:.1f}% of the studies)\n"
    )


# ------------------------------------------------------------------------------------ figures
def _cell(o: Operating) -> str:
    return f"{100 * o.rejection:.1f}% / {100 * o.coverage:.1f}% / {100 * o.width:.1f}"


def validation_figures(dest: Path, sims: int = 1000, seed: int = 0, n_boot: int = 200) -> str:
    """The figures of docs/study.md (PNG files in ``dest``) and a Markdown table of the numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dest.mkdir(parents=True, exist_ok=True)
    designs = {
        "crowd: 25 comparisons x 5 of 40 raters": Scenario(items=25, judgments=5, raters=40),
        "lab: 25 comparisons x the same 5 raters": Scenario(items=25, judgments=5, raters=5),
    }
    sds = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    methods = ("clustered", "naive", "bootstrap")
    lines = ["| design | rater sd = item sd | " + " | ".join(f"{m}: rejects / covers / width" for m in methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    null: dict[str, dict[str, list[Operating]]] = {}
    for d, sc in designs.items():
        null[d] = {m: [] for m in methods}
        for k, sd in enumerate(sds):
            oc = operating_characteristics(replace(sc, rater_sd=sd, item_sd=sd), sims, seed + k, 0.05, methods, n_boot)
            for m in methods:
                null[d][m].append(oc[m])
            lines.append(f"| {d} | {sd:g} | " + " | ".join(_cell(oc[m]) for m in methods) + " |")
    colours = {"clustered": "#1f6fb4", "naive": "#d1495b", "bootstrap": "#6a994e"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="constrained")
    for ax, (d, per) in zip(axes, null.items()):
        for m in methods:
            ax.plot(sds, [100 * o.rejection for o in per[m]], "o-", color=colours[m], label=LABELS[m])
        ax.axhline(5, color="grey", linestyle="--", linewidth=1)
        ax.axhline(8, color="grey", linestyle=":", linewidth=1)
        ax.set_title(d, fontsize=10)
        ax.set_xlabel("sd of rater effects = sd of item effects (logit scale)")
        ax.set_ylim(0, 45)
    axes[0].set_ylabel("% of studies rejecting 'no preference' (5% test)")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"No true preference: how often each test cries 'preferred' ({sims} simulated studies per point)",
                 fontsize=10)
    null_png = dest / "study_sim_null.png"
    fig.savefig(null_png, dpi=110)
    plt.close(fig)

    shares = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8]
    crowd = designs["crowd: 25 comparisons x 5 of 40 raters"]
    alt = {m: [] for m in methods}
    for k, sh in enumerate(shares):
        oc = operating_characteristics(replace(crowd, share=sh), sims, seed + 100 + k, 0.05, methods, n_boot)
        for m in methods:
            alt[m].append(oc[m])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for m in methods:
        axes[0].plot(shares, [100 * o.rejection for o in alt[m]], "o-", color=colours[m], label=LABELS[m])
        axes[1].plot(shares, [100 * o.coverage for o in alt[m]], "o-", color=colours[m], label=LABELS[m])
    axes[0].set_ylabel("% of studies rejecting 'no preference' (5% test)")
    axes[1].set_ylabel("% of 95% intervals covering the true share")
    axes[1].axhline(95, color="grey", linestyle="--", linewidth=1)
    axes[1].set_ylim(50, 100)
    for ax in axes:
        ax.set_xlabel("true population share of votes for our method")
    axes[1].legend(fontsize=8, loc="lower left")
    fig.suptitle("Power and coverage, crowd design (25 comparisons x 5 of 40 raters, rater sd = item sd = 1)",
                 fontsize=10)
    power_png = dest / "study_sim_power.png"
    fig.savefig(power_png, dpi=110)
    plt.close(fig)
    lines += ["", "| true share | " + " | ".join(f"{m}: rejects / covers / width" for m in methods) + " |",
              "|---|" + "---|" * len(methods)]
    for k, sh in enumerate(shares):
        lines.append(f"| {sh:g} | " + " | ".join(_cell(alt[m][k]) for m in methods) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ example votes
def example_votes(seed: int = 0, pairs: int = 10, judgments: int = 5, raters: int = 30, rater_sd: float = 0.5,
                  item_sd: float = 0.5):
    """A SYNTHETIC long table of votes shaped like the paper's study (docs/study/example_votes_synthetic.csv).

    Every (data set, baseline) of the paper's Table 1 gets ``pairs`` comparisons, each judged by ``judgments``
    different raters of a pool of ``raters``; the true population share of each row is the paper's item mean.
    Every rater meets two catch trials; two careless raters fail one and vote at random, one rater never met
    a catch trial, and one rater judges one comparison twice: the analysis drops and counts all of these.
    """
    import pandas as pd

    from .analyze import PAPER_TABLE1
    from .votes import CATCH_RIGHT, CATCH_WRONG, VOTE_COLUMNS

    rng = np.random.default_rng(seed)
    u = rng.normal(0.0, rater_sd, raters)
    careless = {raters - 1, raters - 2}
    unchecked = raters - 3
    rows = []
    for (dataset, baseline), (mean, _) in PAPER_TABLE1.items():
        sc = Scenario(items=pairs, judgments=judgments, raters=raters, share=mean / 100, rater_sd=rater_sd,
                      item_sd=item_sd)
        beta = marginal_logit(sc.share, math.hypot(rater_sd, item_sd))
        who, item = draw_design(rng, sc)
        v = rng.normal(0.0, item_sd, pairs)
        for r, i in zip(who.tolist(), item.tolist()):
            p = 0.5 if r in careless else float(expit(beta + u[r] + v[i]))
            ours_left = bool(rng.integers(2))
            a, b = ("splice", baseline) if ours_left else (baseline, "splice")
            pick = "splice" if rng.random() < p else baseline
            rows.append([f"R{r:02d}", dataset, f"{dataset}-{i + 1:02d}", a, b, pick, ""])
    keep = {f"R{r:02d}" for r in range(raters) if r not in careless and r != unchecked}
    first = next(row for row in rows if row[0] in keep)
    rows.append([first[0], first[1], first[2], first[4], first[3], first[5], ""])  # a repeat, sides swapped
    datasets = sorted({d for d, _ in PAPER_TABLE1})
    for r in range(raters):
        if r == unchecked:
            continue
        for n in range(2):
            ds = datasets[int(rng.integers(len(datasets)))]
            pair = f"{ds}-{int(rng.integers(pairs)) + 1:02d}"
            a, b = (CATCH_RIGHT, CATCH_WRONG) if rng.integers(2) else (CATCH_WRONG, CATCH_RIGHT)
            pick = CATCH_WRONG if (r in careless and n == 0) else CATCH_RIGHT
            rows.append([f"R{r:02d}", ds, pair, a, b, pick, CATCH_RIGHT])
    return pd.DataFrame(rows, columns=VOTE_COLUMNS)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Draw the simulation figures of docs/study.md, or write the "
                                 "synthetic example votes.")
    ap.add_argument("--figures", type=Path, help="folder for the PNG files")
    ap.add_argument("--example-votes", type=Path, help="write the synthetic example votes to this CSV")
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.example_votes:
        from .votes import write_votes

        write_votes(args.example_votes, example_votes(args.seed))
    if args.figures:
        print(validation_figures(args.figures, args.sims, args.seed), end="")


if __name__ == "__main__":
    main()
