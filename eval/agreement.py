"""Which automatic metric agrees with people: every registered metric against the 2AFC study's votes.

``splice study agreement`` (PROTOCOL.md's 2AFC study, after the Splice paper's Table 1, Tumanyan et al.
CVPR 2022). Inputs: a scored run store (its metric records, read through :func:`eval.aggregate.load_results`)
and the study's votes (the long table of :mod:`eval.study.votes`: ``rater,dataset,pair,a,b,chosen,correct``,
or Mechanical Turk / lab results with the answer key), filtered exactly as ``splice study analyze`` filters
them (:func:`eval.study.analyze.filter_votes`: raters who failed, skipped or never saw a catch trial are
dropped, unanswered trials and a rater's repeat of a comparison too).

- A **comparison** is one pair of a data set shown with two methods' outputs (``a``/``b`` in either order).
  Its votes say which output the raters preferred: the one with more than half of them; with exactly half
  the raters are **tied** and the comparison has no preferred output. Raters are **split** on a comparison
  when it got votes for both outputs (not unanimous).
- A metric **prefers** the output whose value is better in its direction (``higher_is_better`` of the
  registry); a method's value on a pair is the mean over its jobs of that pair (its seeds and variants, as
  in the tables); equal values are a **metric tie**; a missing value (not scored, excluded, failed) leaves
  the comparison out for that metric.
- **agreement** = the share of comparisons, among those where both raters and metric prefer an output, in
  which they prefer the same one (0.5 is chance). ``vote_agreement`` = the share of all votes of the
  comparisons where the metric prefers an output that went to that output; its ceiling is
  ``majority_share``, what always picking the raters' majority would get.
- **Bootstrap CI**: the comparisons of a data set are resampled with replacement (:data:`N_BOOT` times, seed
  :data:`BOOT_SEED`), each keeping all its votes; a metric's agreement is recomputed on each resample over
  the comparisons it can be judged on, and the interval is the 2.5 and 97.5 percentiles. Every metric sees
  the same resamples, so two metrics' intervals are comparable. Raters are not resampled: the interval is
  for these raters' judgments on comparisons like these, and is narrower than one that also accounted for
  the raters (``splice study analyze`` does that for the share of votes).

Votes on pairs the run does not hold are left out of every count (a warning and two vote counts say how
many); a vote on one of its pairs naming a method without a finished job in it is an error (docs/eval.md).

Rows are per data set (and ``all``, pooled, when there are several), every metric in registry order.
"""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from splice.core.atomic import atomic_write_json, atomic_write_text
from splice.core.errors import ConfigError, UserError, near_names

from .metrics import METRICS, scored_metrics
from .scorers import ALL as ALL_METRICS
from .scorers import SPECS
from .study.analyze import _records  # rows as JSON-able dicts (NaN -> None), as analyze writes them
from .study.votes import ordered_methods
from .tables import metric_values

log = logging.getLogger(__name__)

ALL = "all"
N_BOOT = 10_000
BOOT_SEED = 0
LEVEL = 0.95
RESAMPLED = ("comparisons (a pair shown with two methods' outputs), with replacement within each data set, each "
             "with all its votes; raters are not resampled; the same resamples for every metric")  # fmt: skip
RANDOM_NOTICE = ("RANDOM WEIGHTS: the outputs or the metric models were randomly initialised; these agreements "
                 "say nothing about the metrics.")  # fmt: skip
ROW_COLUMNS = ["dataset", "metric", "label", "higher_is_better", "compares", "agreement", "ci_low", "ci_high",
               "used", "agree", "metric_ties", "rater_ties", "no_value", "vote_agreement", "comparisons"]  # fmt: skip
DATASET_COLUMNS = ["dataset", "comparisons", "votes", "raters", "split", "split_share", "rater_ties",
                   "majority_share", "methods"]  # fmt: skip


@dataclass
class Agreement:
    """What :func:`metric_agreement` computed (module docstring for every number)."""

    rows: pd.DataFrame  # one row per data set and metric (ROW_COLUMNS)
    datasets: pd.DataFrame  # one row per data set: comparisons, votes, raters, split share (DATASET_COLUMNS)
    comparisons: pd.DataFrame  # one row per comparison: votes, the raters' pick, each metric's pick
    dropped: dict[str, int] = field(default_factory=dict)
    random_weights: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def notice(self) -> str | None:
        return RANDOM_NOTICE if self.random_weights else None

    def to_json(self) -> dict[str, Any]:
        return {"notice": self.notice, "random_weights": self.random_weights, "resampled": RESAMPLED,
                "settings": self.settings, "dropped": self.dropped, "datasets": _records(self.datasets),
                "rows": _records(self.rows), "files": self.files}  # fmt: skip


def comparison_table(votes: pd.DataFrame) -> pd.DataFrame:
    """Kept comparison votes -> one row per comparison: ``dataset, pair, lo, hi`` (the two methods, sorted),
    ``votes``, ``votes_lo`` (for ``lo``), ``raters`` and ``rater_pick`` (``lo``/``hi`` name, or "" when tied)."""
    lo, hi = ordered_methods(votes)
    v = pd.DataFrame({"dataset": votes["dataset"], "pair": votes["pair"], "lo": lo, "hi": hi,
                      "for_lo": (votes["chosen"] == lo).astype(int), "rater": votes["rater"]})  # fmt: skip
    g = v.groupby(["dataset", "pair", "lo", "hi"], sort=True)
    out = g.agg(votes=("for_lo", "size"), votes_lo=("for_lo", "sum"), raters=("rater", "nunique")).reset_index()
    twice = 2 * out["votes_lo"]
    out["rater_pick"] = np.where(twice > out["votes"], out["lo"], np.where(twice < out["votes"], out["hi"], ""))
    return out


def pair_values(df: pd.DataFrame, metric: str) -> pd.Series:
    """A method's value of ``metric`` on a pair: the mean over its jobs of the pair (NaN-free), indexed by
    ``(dataset, pair_id, method)``."""
    values = metric_values(df, metric)
    keep = values.notna()
    return values[keep].groupby([df.loc[keep, "dataset"], df.loc[keep, "pair_id"], df.loc[keep, "method"]]).mean()


def metric_pick(comparisons: pd.DataFrame, values: pd.Series, higher_is_better: bool) -> np.ndarray:
    """Per comparison, the method ``values`` prefers; "" for a metric tie; None when a value is missing."""

    def value(method_col: str) -> np.ndarray:
        idx = pd.MultiIndex.from_arrays([comparisons["dataset"], comparisons["pair"], comparisons[method_col]])
        return values.reindex(idx).to_numpy(dtype=float)

    v_lo, v_hi = value("lo"), value("hi")
    better_lo = v_lo > v_hi if higher_is_better else v_lo < v_hi
    out = np.where(better_lo, comparisons["lo"], comparisons["hi"]).astype(object)
    out[v_lo == v_hi] = ""
    out[np.isnan(v_lo) | np.isnan(v_hi)] = None
    return out


def _bootstrap(agree: np.ndarray, usable: np.ndarray, idx: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the agreement over resampled comparisons (``idx``: n_boot x n indices)."""
    if usable.sum() < 2:
        return math.nan, math.nan
    num = (agree * usable)[idx].sum(axis=1)
    den = usable[idx].sum(axis=1)
    stats = num[den > 0] / den[den > 0]
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def metric_agreement(df: pd.DataFrame, votes: pd.DataFrame, metrics: Iterable[str] | None = None, *,
                     n_boot: int = N_BOOT, seed: int = BOOT_SEED, level: float = LEVEL,
                     dropped: dict[str, int] | None = None, random_weights: bool = False) -> Agreement:  # fmt: skip
    """How often each metric prefers the output the raters preferred (module docstring).

    Args:
        df: rows of :func:`eval.aggregate.load_results` of the scored run.
        votes: the *kept* comparison votes (:func:`eval.study.analyze.filter_votes`).
        metrics: ``--metrics`` items (:func:`table_metrics`; default: every table metric with a value in ``df``).
        n_boot, seed, level: the bootstrap over comparisons.
        dropped: what filtering dropped (reported as is).
        random_weights: the votes were cast on outputs of random models (the run's records are checked too).
    """
    if votes.empty:
        raise UserError(
            "no comparison vote is left to compare the metrics with (check the votes, or lower --min-vigilance)"
        )
    wanted = table_metrics(df, metrics)
    if not wanted:
        raise UserError("the run has no metric records; score it first: splice score --out RUN --metrics all")
    known = set(zip(df["dataset"], df["pair_id"]))
    in_run = np.array([(d, p) in known for d, p in zip(votes["dataset"], votes["pair"])], dtype=bool)
    unmatched = sorted({f"{d}/{p}" for d, p in zip(votes["dataset"][~in_run], votes["pair"][~in_run])})
    if not in_run.any():
        raise UserError(f"none of the voted pairs ({', '.join(unmatched[:3])}, ...) is in the run store; give the run "
                        "the study was exported from (--out)")  # fmt: skip
    dropped = dict(dropped or {})
    if unmatched:  # left out of every count below: comparisons, votes, raters, split share, data sets
        log.warning("%d voted pair(s) are not in the run store (e.g. %s): their %d vote(s) are left out",
                    len(unmatched), unmatched[0], int((~in_run).sum()))  # fmt: skip
        votes = votes[in_run].reset_index(drop=True)
        used = dropped.pop("votes_used", None)
        dropped.update(pairs_not_in_run=len(unmatched), votes_of_pairs_not_in_run=int((~in_run).sum()))
        if used is not None:
            dropped["votes_used"] = len(votes)
    finished = set(df.loc[df["status"] == "ok", "method"])
    strangers = sorted((set(votes["a"]) | set(votes["b"])) - finished)
    if strangers:  # the study shows outputs of the run's finished jobs: a typo, or another run
        raise ConfigError(f"the votes name method(s) {', '.join(strangers)} that have no finished job in the run "
                          f"store (--out); methods with finished jobs: {', '.join(sorted(finished)) or 'none'}; give "
                          "the run the study was exported from, or fix the votes")  # fmt: skip
    comp = comparison_table(votes)
    picks = {m: metric_pick(comp, pair_values(df, m), METRICS[m].higher_is_better) for m in wanted}
    for m, p in picks.items():  # "" = a metric tie, None = no value (object dtype keeps None a None)
        comp[f"pick:{m}"] = pd.Series(p, index=comp.index, dtype=object)
    datasets = sorted(set(comp["dataset"]))
    rows, summaries = [], []
    for ds in datasets + ([ALL] if len(datasets) > 1 else []):
        sel = np.ones(len(comp), bool) if ds == ALL else (comp["dataset"] == ds).to_numpy()
        c = comp[sel]
        n = len(c)
        split = int(((c["votes_lo"] > 0) & (c["votes_lo"] < c["votes"])).sum())
        majority = np.maximum(c["votes_lo"], c["votes"] - c["votes_lo"]).sum() / c["votes"].sum()
        vv = votes if ds == ALL else votes[votes["dataset"] == ds]
        summaries.append({"dataset": ds, "comparisons": n, "votes": int(c["votes"].sum()),
                          "raters": int(vv["rater"].nunique()), "split": split, "split_share": split / n,
                          "rater_ties": int((c["rater_pick"] == "").sum()), "majority_share": float(majority),
                          "methods": ",".join(sorted(set(c["lo"]) | set(c["hi"])))})  # fmt: skip
        idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        rater = c["rater_pick"].to_numpy()
        for m in wanted:
            pick = picks[m][sel]
            has_value = np.array([p is not None for p in pick])
            prefers = has_value & (pick != "")
            usable = prefers & (rater != "")
            agree = usable & (pick == rater)
            used = int(usable.sum())
            chosen = np.where(pick == c["lo"].to_numpy(), c["votes_lo"], c["votes"] - c["votes_lo"])
            vote_total = c["votes"].to_numpy()[prefers].sum()
            low, high = _bootstrap(agree.astype(float), usable.astype(float), idx, level)
            metric = METRICS[m]
            rows.append({"dataset": ds, "metric": m, "label": metric.label, "higher_is_better": metric.higher_is_better,
                         "compares": metric.compares, "agreement": agree.sum() / used if used else math.nan,
                         "ci_low": low, "ci_high": high, "used": used, "agree": int(agree.sum()),
                         "metric_ties": int((has_value & (pick == "")).sum()),
                         "rater_ties": int((prefers & (rater == "")).sum()), "no_value": int((~has_value).sum()),
                         "vote_agreement": float(chosen[prefers].sum() / vote_total) if vote_total else math.nan,
                         "comparisons": n})  # fmt: skip
    random = random_weights or bool(df["random_weights"].any()) or bool(df["metrics_random_weights"].any())
    return Agreement(pd.DataFrame(rows, columns=ROW_COLUMNS), pd.DataFrame(summaries, columns=DATASET_COLUMNS), comp,
                     dropped=dropped, random_weights=random,
                     settings={"n_boot": n_boot, "seed": seed, "level": level, "metrics": wanted})  # fmt: skip


def table_metrics(df: pd.DataFrame, names: Iterable[str] | None = None) -> list[str]:
    """``--metrics`` items -> table metric keys: a table name of ``splice metrics`` is itself (``iou`` is the
    table number, not the record), a record name is its table numbers (``vit`` -> structure, appearance,
    cosine; ``panoptic`` -> iou, pixel_accuracy), ``all`` or nothing is every table metric the run has values
    for; anything else is a one-line error listing the accepted names."""
    names = [n for n in (names or []) if n]
    if not names or ALL_METRICS in names:
        return [k for k in scored_metrics() if _has_values(df, k)]
    out, unknown = [], []
    for n in names:
        if n in METRICS and METRICS[n].scored:
            out.append(n)
        elif n in SPECS:
            out += [number.table for number in SPECS[n].numbers]
        else:
            unknown.append(n)
    if unknown:
        near = [m for u in unknown for m in near_names(u, [*scored_metrics(), *SPECS])]
        hint = f"did you mean {', '.join(near)}? " if near else ""
        records = [r for r in SPECS if r not in METRICS]
        raise ConfigError(f"--metrics {','.join(unknown)}: not a metric of the registry; {hint}use all, the table "
                          f"names of `splice metrics` ({', '.join(scored_metrics())}) or a record name for all its "
                          f"numbers ({', '.join(records)}; e.g. vit = structure,appearance,cosine)")  # fmt: skip
    return list(dict.fromkeys(out))


def _has_values(df: pd.DataFrame, metric: str) -> bool:
    return bool(len(df)) and bool(metric_values(df, metric).notna().any())


# ------------------------------------------------------------------------------------------- text
def _pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def to_markdown(a: Agreement) -> str:
    """One table per data set, metrics by agreement (best first), then how it was computed."""
    lines = []
    if a.notice:
        lines += [f"> **{a.notice}**", ""]
    lines += ["# Which metric agrees with the raters", ""]
    for _, d in a.datasets.iterrows():
        lines += [f"## {d['dataset']}", "",
                  f"{d['comparisons']} comparisons ({d['methods']}), {d['votes']} votes from {d['raters']} raters; "
                  f"raters split (not unanimous) on {_pct(d['split_share'])} of the comparisons "
                  f"({d['split']}), tied on {d['rater_ties']}; picking the majority would match "
                  f"{_pct(d['majority_share'])} of the votes.", "",
                  "| metric | better | compares the output with | agreement [95% CI] | comparisons used | "
                  "metric ties | no value | votes for the metric's pick |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        part = a.rows[a.rows["dataset"] == d["dataset"]]
        part = part.sort_values("agreement", ascending=False, na_position="last", kind="stable")
        for _, r in part.iterrows():
            ci = "" if math.isnan(r["ci_low"]) else f" [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"
            compares = {"structure": "aligned structure image", "appearance": "appearance image"}.get(
                r["compares"], r["compares"]
            )
            lines.append(
                f"| {r['metric']} | {'↑' if r['higher_is_better'] else '↓'} | {compares} | "
                f"{_pct(r['agreement'])}{ci} | {r['used']} | {r['metric_ties']} | {r['no_value']} | "
                f"{_pct(r['vote_agreement'])} |"
            )
        lines.append("")
    s = a.settings
    lines += [
        f"_Agreement: share of the comparisons where raters and metric each prefer one output in which they "
        f"prefer the same (50% = chance). {int(100 * s.get('level', LEVEL))}% bootstrap interval over "
        f"{s.get('n_boot', N_BOOT)} resamples of {RESAMPLED} (seed {s.get('seed', BOOT_SEED)})._"
    ]
    if a.dropped:
        lines += ["", "Votes: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in a.dropped.items())]
    return "\n".join(lines) + "\n"


def to_csv(a: Agreement) -> str:
    buf = io.StringIO()
    if a.notice:
        buf.write(f"# {a.notice}\n")
    rows = a.rows.merge(a.datasets[["dataset", "votes", "raters", "split_share"]], on="dataset", how="left")
    rows.to_csv(buf, index=False, float_format="%.6g", lineterminator="\n")
    return buf.getvalue()


def write_outputs(a: Agreement, dest: Path) -> dict[str, str]:
    """``agreement.md``, ``agreement.csv`` (one row per data set and metric) and ``agreement.json`` in ``dest``."""
    dest = Path(dest)
    files = {"markdown": dest / "agreement.md", "csv": dest / "agreement.csv", "json": dest / "agreement.json"}
    a.files.update({k: str(v) for k, v in files.items()})
    atomic_write_text(files["markdown"], to_markdown(a))
    atomic_write_text(files["csv"], to_csv(a))
    atomic_write_json(files["json"], json.loads(json.dumps(a.to_json(), default=str)))
    return a.files


def agreement_from_sources(run_dir, settings, metrics: Iterable[str] | None = None, *, n_boot: int = N_BOOT,
                           seed: int = BOOT_SEED) -> Agreement:  # fmt: skip
    """The agreement of the scored run at ``run_dir`` with the votes ``settings``
    (:class:`eval.study.analyze.AnalysisSettings`: ``votes``, or ``results`` + ``key``, ``min_vigilance``,
    ``max_hits_per_worker``) names, written to ``settings.dest`` when given."""
    from .aggregate import load_results
    from .study.analyze import filter_votes, load_votes

    votes, dropped, prov = load_votes(settings)
    kept, _, counts = filter_votes(votes, settings.min_vigilance)
    df = load_results(run_dir)
    a = metric_agreement(df, kept, metrics, n_boot=n_boot, seed=seed, dropped={**dropped, **counts},
                         random_weights=bool(prov.get("random_weights")))  # fmt: skip
    a.settings.update(run=str(run_dir), votes_from=prov.get("source") or [str(p) for p in settings.results],
                      min_vigilance=settings.min_vigilance)  # fmt: skip
    if settings.dest is not None:
        write_outputs(a, Path(settings.dest))
    return a
