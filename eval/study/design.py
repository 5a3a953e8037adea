"""The 2AFC study design: which trials exist, their left/right order, and how they fill HITs.

Following PROTOCOL.md (version 2) and the Splice paper's study (Tumanyan et al., CVPR 2022, Table 1):

- an *item* is one comparison, (data set, pair, baseline): our output against that
  baseline's output on the same pair;
- every item sits in exactly ONE trial of ONE HIT. Its ``k`` judgments come from publishing
  every HIT with ``k`` assignments: Mechanical Turk never gives one worker two assignments of
  the same HIT, so the ``k`` judgments of a comparison are by ``k`` different raters (the lab
  page, :mod:`eval.study.lab`, keeps the same rule);
- left/right order is drawn from the seed and balanced over items: within each (data set,
  baseline) stratum "ours left" and "ours right" differ by at most one, and so do the totals.
  All ``k`` raters of an item see the same order, so a position preference becomes part of the
  item effect, which the analysis accounts for (:func:`eval.study.stats.clustered_share`);
- vigilance (catch) trials make up about ``vigilance`` of every HIT (at least one per HIT
  when ``vigilance > 0``), so every worker meets some: image A/B from one pair, and as the
  alternatives that pair's structure image in colour (the obviously right answer) against
  an output made for a *different* pair, by a method drawn at random;
- each HIT holds at most ``trials_per_hit`` trials, in random order. The plan uses as few HITs
  as that allows, items are spread evenly over them, and the HIT size is the smallest that
  holds them plus the catch trials; a HIT with one item less gets one more catch trial, so
  every row of the batch CSV fills every slot of the template.

This module only plans (ids, sides, packing); :mod:`eval.study.export` renders the images.
Everything is a pure function of its arguments and the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from splice.core.errors import ConfigError

LEFT, RIGHT = "left", "right"


@dataclass(frozen=True, order=True)
class Item:
    """One comparison: our output against ``baseline``'s on pair ``pair_id`` of ``dataset``."""

    dataset: str
    pair_id: str
    baseline: str


@dataclass(frozen=True)
class PlannedTrial:
    """One trial. ``side`` is where OUR output is (comparison) or the right answer (vigilance)."""

    trial_id: str
    kind: str  # "comparison" | "vigilance"
    side: str  # "left" | "right"
    item: Item | None = None  # comparison trials
    pair: tuple[str, str] | None = None  # vigilance: (dataset, pair_id) shown as A/B
    other: tuple[str, str] | None = None  # vigilance: the pair whose output is the wrong answer
    other_method: str | None = None  # vigilance: the method whose output of ``other`` is shown


@dataclass
class PlannedHit:
    hit_id: str
    trials: list[PlannedTrial] = field(default_factory=list)


@dataclass
class StudyPlan:
    hits: list[PlannedHit]
    trials_per_hit: int
    judgments: int  # assignments per HIT: different raters per comparison
    vigilance_per_hit: int
    max_hits_per_worker: int | None = None

    @property
    def trials(self) -> list[PlannedTrial]:
        return [t for h in self.hits for t in h.trials]

    def counts(self) -> dict[str, int]:
        trials = self.trials
        comp = [t for t in trials if t.kind == "comparison"]
        return {
            "hits": len(self.hits),
            "trials": len(trials),
            "comparison_trials": len(comp),
            "vigilance_trials": len(trials) - len(comp),
            "ours_left": sum(t.side == LEFT for t in comp),
            "ours_right": sum(t.side == RIGHT for t in comp),
            "assignments_per_hit": self.judgments,
            "assignments": len(self.hits) * self.judgments,
            "judgments": len(comp) * self.judgments,
        }


class _Ids:
    """Unique random hex ids from one seeded stream."""

    def __init__(self, rng: np.random.Generator, nbytes: int):
        self.rng, self.nbytes, self.seen = rng, nbytes, set()

    def __call__(self) -> str:
        while True:
            value = self.rng.bytes(self.nbytes).hex()
            if value not in self.seen:
                self.seen.add(value)
                return value


def vigilance_per_hit(trials_per_hit: int, vigilance: float) -> int:
    """Catch trials per HIT: ``round(trials_per_hit * vigilance)``, at least 1 when vigilance > 0."""
    if vigilance <= 0:
        return 0
    return max(1, min(trials_per_hit - 1, round(trials_per_hit * vigilance)))


def balanced_sides(items: list[Item], rng: np.random.Generator) -> dict[Item, str]:
    """Side of our output for every item (see the module docstring).

    Within each (data set, baseline) stratum the sides alternate over the items in random order, and
    the alternation runs on across strata, so no stratum and not the total is off by more than one.
    """
    out: dict[Item, str] = {}
    strata: dict[tuple[str, str], list[Item]] = {}
    for it in items:
        strata.setdefault((it.dataset, it.baseline), []).append(it)
    turn = int(rng.integers(2))
    for key in sorted(strata):
        group = strata[key]
        for idx in rng.permutation(len(group)):
            out[group[idx]] = (LEFT, RIGHT)[turn % 2]
            turn += 1
    return out


def _balanced_sequence(n: int, rng: np.random.Generator) -> list[str]:
    sides = [LEFT, RIGHT] * (n // 2) + ([LEFT if rng.integers(2) else RIGHT] if n % 2 else [])
    return [sides[i] for i in rng.permutation(n)]


def _split_even(n: int, parts: int) -> list[int]:
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def plan_study(
    items: list[Item],
    vigilance_pairs: dict[tuple[str, str], list[str]],
    judgments: int = 5,
    vigilance: float = 0.1,
    trials_per_hit: int = 10,
    seed: int = 0,
    max_hits_per_worker: int | None = None,
) -> StudyPlan:
    """Plan every trial and HIT of a study (pure; reproducible from ``seed``).

    Args:
        items: the comparisons (each appears in exactly one trial of one HIT).
        vigilance_pairs: (dataset, pair_id) of the pairs usable for catch trials (at least 2), each with
            the methods that have an output for it; the wrong answer is one of these outputs of another
            pair, drawn at random so that no one method is always the wrong answer.
        judgments: k, the assignments every HIT is published with: the judgments per comparison, each by a
            different rater (PROTOCOL.md: 3-5).
        vigilance: share of catch trials per HIT (0 disables them).
        trials_per_hit: the most trials a HIT (row of the batch CSV) holds; the plan uses as few HITs as
            this allows and makes them only as large as needed to spread the items evenly.
        seed: the seed of every random choice.
        max_hits_per_worker: an optional cap of HITs one worker may take (recorded; the analysis and the
            lab page enforce it).
    """
    if not items:
        raise ConfigError("the study has no comparisons: no pair has outputs of both our method and a baseline")
    if judgments < 1:
        raise ConfigError(f"--judgments must be at least 1, got {judgments}")
    if not 0 <= vigilance < 1:
        raise ConfigError(f"--vigilance must be in [0, 1), got {vigilance}")
    if trials_per_hit < 2:
        raise ConfigError(f"--trials-per-hit must be at least 2, got {trials_per_hit}")
    if max_hits_per_worker is not None and max_hits_per_worker < 1:
        raise ConfigError(f"--max-hits-per-worker must be at least 1, got {max_hits_per_worker}")
    items = sorted(set(items))
    k_vig = vigilance_per_hit(trials_per_hit, vigilance)
    vig_pairs = sorted(set(vigilance_pairs))
    if k_vig and len(vig_pairs) < 2:
        raise ConfigError("vigilance trials need at least 2 pairs (an output of another pair is the wrong answer); "
                          "add pairs or pass --vigilance 0")
    # As few HITs as the limit allows, then as small as they can be: items spread evenly, so that
    # small studies do not fill their last HIT with catch trials.
    n_hits = math.ceil(len(items) / (trials_per_hit - k_vig))
    per_hit = math.ceil(len(items) / n_hits) + k_vig

    ss = np.random.SeedSequence(seed)
    r_sides, r_pack, r_vig, r_ids = (np.random.default_rng(s) for s in ss.spawn(4))
    new_id = _Ids(r_ids, 6)
    sides = balanced_sides(items, r_sides)

    hits: list[PlannedHit] = []
    vig_slots: list[tuple[PlannedHit, int]] = []  # (hit, how many catch trials it needs)
    order = [items[i] for i in r_pack.permutation(len(items))]
    start = 0
    for size in _split_even(len(items), n_hits):
        hit = PlannedHit(hit_id=new_id())
        for it in order[start : start + size]:
            hit.trials.append(PlannedTrial(new_id(), "comparison", sides[it], item=it))
        start += size
        vig_slots.append((hit, per_hit - size))
        hits.append(hit)

    n_vig = sum(n for _, n in vig_slots)
    vig_sides = _balanced_sequence(n_vig, r_vig)
    cycle: list[tuple[str, str]] = []
    for hit, n in vig_slots:
        for _ in range(n):
            if not cycle:  # every pair is used before any repeats
                cycle = [vig_pairs[i] for i in r_vig.permutation(len(vig_pairs))]
            pair = cycle.pop()
            others = [p for p in vig_pairs if p != pair]
            other = others[int(r_vig.integers(len(others)))]
            methods = sorted(vigilance_pairs[other])
            method = methods[int(r_vig.integers(len(methods)))]
            hit.trials.append(PlannedTrial(new_id(), "vigilance", vig_sides.pop(), pair=pair, other=other,
                                           other_method=method))
    for hit in hits:
        hit.trials = [hit.trials[i] for i in r_pack.permutation(len(hit.trials))]
    return StudyPlan(hits=hits, trials_per_hit=per_hit, judgments=judgments, vigilance_per_hit=k_vig,
                     max_hits_per_worker=max_hits_per_worker)
