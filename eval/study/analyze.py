"""``splice study analyze``: the 2AFC votes as the Splice paper's Table 1, with numbers one can defend.

Input: the long table of votes (:mod:`eval.study.votes`), read from ``--votes FILE.csv`` or
built from Mechanical Turk / lab results and the private answer key
(:func:`eval.study.results.votes_from_results`). Then, following PROTOCOL.md (version 2):

1. **Vigilance**: a rater who failed a catch trial (right on fewer than ``min_vigilance`` of
   those answered), skipped one, or never saw one is dropped, with all their votes; each count
   is reported. ``min_vigilance = 0`` turns the filter off.
2. **Votes**: unanswered comparison trials are dropped, and so is a rater's second judgment of
   the same comparison (same data set, pair and two methods): both counted.
3. **Table 1** for ``method`` (default ``splice``): per data set and other method, the share of
   votes for ``method`` with a 95% interval and p-value that account for raters and comparisons
   (:func:`eval.study.stats.clustered_share`), Holm-corrected across the baselines of each data
   set; the paper's format (mean over comparisons of the share, +- its standard deviation over
   comparisons, sample sd); and the paper's own numbers beside ours, marked as the paper's.
   A pooled ``all`` row per baseline is added when there are several data sets (its own Holm
   family).
4. **Also**: the vote-level Wilson interval and exact binomial test, labelled as assuming
   independent votes; inter-rater agreement (pairwise agreement, Krippendorff's alpha); a
   Bradley-Terry ranking of every compared method with intervals (:mod:`eval.study.ranking`).

Every output (Markdown, LaTeX, CSV, plot, JSON) carries the random-weights notice when the
compared outputs came from randomly initialised models.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from splice.core.atomic import atomic_write_json, atomic_write_text
from splice.core.errors import ConfigError, UserError

from ..latex import latex_escape
from . import stats
from .csvsafe import write_csv
from .ranking import bradley_terry
from .results import votes_from_results
from .votes import ordered_methods, read_provenance, read_votes, write_votes

log = logging.getLogger(__name__)

ALL = "all"
CONFIDENCE = 0.95
RANDOM_NOTICE = ("RANDOM WEIGHTS: the compared outputs were made with randomly initialised models; "
                 "these votes say nothing about the methods.")  # fmt: skip

#: The paper's Table 1 (Tumanyan et al., CVPR 2022): % of votes for Splice, mean over images +- std.
#: 65 images and about 7,000 judgments in all. Keys use this suite's data-set and method names.
PAPER_TABLE1: dict[tuple[str, str], tuple[float, float]] = {
    ("wild-pairs", "strotss"): (79.0, 13.0),
    ("wild-pairs", "wct2"): (83.1, 14.9),
    ("mountains", "swapping-autoencoder"): (56.3, 10.0),
    ("mountains", "strotss"): (58.8, 14.2),
    ("mountains", "wct2"): (60.3, 12.1),
    ("afhq", "swapping-autoencoder"): (71.8, 7.7),
    ("afhq", "strotss"): (59.7, 15.3),
    ("afhq", "wct2"): (61.0, 18.3),
}
PAPER_METHOD = "splice"
PAPER_NOTE = ("the paper's Table 1 (Tumanyan et al., CVPR 2022): % of votes for Splice, mean +- std over images; "
              "65 images, about 7,000 judgments")  # fmt: skip

COMPARISON_COLUMNS = ["dataset", "method", "baseline", "share", "ci_low", "ci_high", "p_value", "p_holm", "votes",
                      "wins", "raters", "items", "item_mean", "item_std", "se", "df", "paper_item_mean",
                      "paper_item_std"]  # fmt: skip
NAIVE_COLUMNS = ["dataset", "method", "baseline", "share", "wilson_low", "wilson_high", "p_binomial",
                 "p_binomial_holm", "votes", "wins"]  # fmt: skip


@dataclass
class AnalysisSettings:
    """Where the votes come from (``votes``, or ``results`` + ``key``) and how to analyse them."""

    results: list[Path] = field(default_factory=list)
    key: Path | None = None
    votes: Path | None = None
    method: str = "splice"
    dest: Path | None = None
    export_votes: Path | None = None
    min_vigilance: float = 1.0  # share of answered catch trials a rater must get right
    max_hits_per_worker: int | None = None  # default: the export's cap
    seed: int = 0  # of the rank-interval draws


@dataclass
class Analysis:
    method: str
    comparisons: pd.DataFrame
    naive: pd.DataFrame
    agreement: pd.DataFrame
    ranking: pd.DataFrame
    raters: pd.DataFrame
    dropped: dict[str, int]
    provenance: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def random_weights(self) -> bool:
        return bool(self.provenance.get("random_weights"))

    @property
    def notice(self) -> str | None:
        return RANDOM_NOTICE if self.random_weights else None

    def to_json(self) -> dict[str, Any]:
        """What ``analyze --json`` prints (and ``study_summary.json`` holds)."""
        return {
            "notice": self.notice,
            "random_weights": self.provenance.get("random_weights"),
            "method": self.method,
            "comparisons": _records(self.comparisons),
            "naive": {"note": "vote-level Wilson interval and exact binomial test: they ASSUME INDEPENDENT VOTES",
                      "rows": _records(self.naive)},
            "dropped": self.dropped,
            "agreement": _records(self.agreement),
            "ranking": _records(self.ranking),
            "paper": {"note": PAPER_NOTE, "method": PAPER_METHOD,
                      "rows": [{"dataset": d, "baseline": b, "item_mean": m, "item_std": s}
                               for (d, b), (m, s) in PAPER_TABLE1.items()]},
            "provenance": self.provenance,
            "summary": self.summary,
            "files": self.files,
        }  # fmt: skip


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else
                        v.item() if isinstance(v, np.generic) else v) for k, v in row.items()})  # fmt: skip
    return out


# -------------------------------------------------------------------------------------- filters
def rater_table(votes: pd.DataFrame, min_vigilance: float) -> pd.DataFrame:
    """One row per rater: catch trials seen / answered / right, judgments, and ``status``.

    ``status`` is ``kept``, ``no catch trial``, ``failed catch trial`` or ``skipped catch trial``
    (in that order of precedence); with ``min_vigilance == 0`` everyone is kept.
    """
    vig = votes[votes["correct"].ne("")]
    raters = pd.DataFrame(index=pd.Index(list(dict.fromkeys(votes["rater"])), name="rater"))
    raters["judgments"] = votes.groupby("rater").size().reindex(raters.index).fillna(0).astype(int)
    raters["catch_seen"] = vig.groupby("rater").size().reindex(raters.index).fillna(0).astype(int)
    answered = vig[vig["chosen"].ne("")]
    raters["catch_answered"] = answered.groupby("rater").size().reindex(raters.index).fillna(0).astype(int)
    right = answered[answered["chosen"] == answered["correct"]]
    raters["catch_right"] = right.groupby("rater").size().reindex(raters.index).fillna(0).astype(int)
    status = pd.Series("kept", index=raters.index)
    if min_vigilance > 0:
        share = raters["catch_right"] / raters["catch_answered"].where(raters["catch_answered"] > 0)
        skipped = raters["catch_answered"] < raters["catch_seen"]
        failed = share < min_vigilance - 1e-12
        status = status.where(~skipped, "skipped catch trial")
        status = status.where(~failed.fillna(False), "failed catch trial")
        status = status.where(raters["catch_seen"] > 0, "no catch trial")
    raters["status"] = status
    return raters.reset_index()


def filter_votes(votes: pd.DataFrame, min_vigilance: float) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(kept answered comparison votes, the rater table, counts of what was dropped)."""
    if not 0 <= min_vigilance <= 1:
        raise ConfigError(f"--min-vigilance must be in [0, 1], got {min_vigilance}")
    raters = rater_table(votes, min_vigilance)
    if min_vigilance > 0 and not votes["correct"].ne("").any():
        raise UserError("the votes hold no vigilance (catch) trial, so every rater would be dropped as one who never "
                        "saw one; add catch trials to the study, or pass --min-vigilance 0 to keep every rater")
    gone = raters[raters["status"] != "kept"]
    counts = {
        "raters": len(raters),
        "raters_kept": int((raters["status"] == "kept").sum()),
        "raters_failed_vigilance": int((raters["status"] == "failed catch trial").sum()),
        "raters_skipped_vigilance": int((raters["status"] == "skipped catch trial").sum()),
        "raters_without_vigilance": int((raters["status"] == "no catch trial").sum()),
        "judgments_of_dropped_raters": int(votes["rater"].isin(gone["rater"]).sum()),
    }
    kept = votes[~votes["rater"].isin(gone["rater"]) & votes["correct"].eq("")]
    unanswered = kept["chosen"].eq("")
    counts["unanswered_comparisons"] = int(unanswered.sum())
    kept = kept[~unanswered]
    lo, hi = ordered_methods(kept)
    same = pd.DataFrame({"r": kept["rater"], "d": kept["dataset"], "p": kept["pair"], "lo": lo, "hi": hi})
    repeat = same.duplicated()
    counts["repeat_judgments"] = int(repeat.sum())
    kept = kept[~repeat].reset_index(drop=True)
    counts["votes_used"] = len(kept)
    return kept, raters, counts


# ------------------------------------------------------------------------------------- numbers
def _family(rows: list[dict], key: str, out: str) -> None:
    for r, p in zip(rows, stats.holm([r[key] for r in rows])):
        r[out] = p


def comparison_tables(votes: pd.DataFrame, method: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Table 1 rows, vote-level rows) for ``method`` against every method it met, per data set."""
    mine = votes[(votes["a"] == method) | (votes["b"] == method)]
    mine = mine.assign(baseline=mine["b"].where(mine["a"] == method, mine["a"]),
                       win=(mine["chosen"] == method).astype(int))
    datasets = sorted(set(mine["dataset"]))
    rows, naive = [], []
    for ds in datasets + ([ALL] if len(datasets) > 1 else []):
        part = mine if ds == ALL else mine[mine["dataset"] == ds]
        fam, nfam = [], []
        for baseline, g in part.groupby("baseline", sort=True):
            item = g["dataset"] + "/" + g["pair"]
            e = stats.clustered_share(g["win"].to_numpy(), g["rater"].to_numpy(), item.to_numpy(), CONFIDENCE)
            per_item = g.groupby(item)["win"].mean()
            paper = PAPER_TABLE1.get((ds, baseline)) if method == PAPER_METHOD else None
            fam.append({
                "dataset": ds, "method": method, "baseline": baseline, "share": e.share, "ci_low": e.low,
                "ci_high": e.high, "p_value": e.p_value, "p_holm": math.nan, "votes": e.votes, "wins": e.wins,
                "raters": e.raters, "items": e.items, "item_mean": float(per_item.mean()),
                "item_std": float(per_item.std(ddof=1)) if len(per_item) > 1 else math.nan, "se": e.se, "df": e.df,
                "paper_item_mean": paper[0] / 100 if paper else math.nan,
                "paper_item_std": paper[1] / 100 if paper else math.nan,
            })  # fmt: skip
            w = stats.wilson_interval(e.wins, e.votes, CONFIDENCE)
            nfam.append({"dataset": ds, "method": method, "baseline": baseline, "share": e.share, "wilson_low": w.low,
                         "wilson_high": w.high, "p_binomial": stats.binomial_p(e.wins, e.votes),
                         "p_binomial_holm": math.nan, "votes": e.votes, "wins": e.wins})
        _family(fam, "p_value", "p_holm")
        _family(nfam, "p_binomial", "p_binomial_holm")
        rows += fam
        naive += nfam
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS), pd.DataFrame(naive, columns=NAIVE_COLUMNS)


def agreement_table(votes: pd.DataFrame, method: str) -> pd.DataFrame:
    """Agreement per data set and baseline of ``method``, and over every comparison of each data set."""
    rows = []
    for ds, d in votes.groupby("dataset", sort=True):
        lo, hi = ordered_methods(d)
        unit = d["pair"] + "\x1f" + lo + "\x1f" + hi
        choice = (d["chosen"] == lo).astype(int)  # which of the two, in a fixed order per comparison
        groups = [("all", np.ones(len(d), bool))]
        mine = (d["a"] == method) | (d["b"] == method)
        other = d["b"].where(d["a"] == method, d["a"])
        groups += [(b, (mine & (other == b)).to_numpy()) for b in sorted(set(other[mine]))]
        for name, sel in groups:
            ag = stats.agreement(choice.to_numpy()[sel], unit.to_numpy()[sel])
            rows.append({"dataset": ds, "baseline": name, "comparisons": ag.items, "votes": ag.votes,
                         "pairwise_agreement": ag.pairwise, "krippendorff_alpha": ag.alpha})
    return pd.DataFrame(rows, columns=["dataset", "baseline", "comparisons", "votes", "pairwise_agreement",
                                       "krippendorff_alpha"])  # fmt: skip


def ranking_table(votes: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Bradley-Terry ranking per data set (and pooled over data sets when there are several)."""
    rows = []
    datasets = sorted(set(votes["dataset"]))
    for ds in datasets + ([ALL] if len(datasets) > 1 else []):
        d = votes if ds == ALL else votes[votes["dataset"] == ds]
        ranked = bradley_terry(d["a"].to_numpy(), d["b"].to_numpy(), d["chosen"].to_numpy(), d["rater"].to_numpy(),
                               (d["dataset"] + "/" + d["pair"]).to_numpy(), CONFIDENCE, seed=seed)
        rows += [{"dataset": ds, **r.as_dict()} for r in ranked]
    return pd.DataFrame(rows, columns=["dataset", "method", "score", "se", "ci_low", "ci_high", "rank", "rank_low",
                                       "rank_high", "wins", "votes"])  # fmt: skip


def analyze_votes(votes: pd.DataFrame, method: str = "splice", min_vigilance: float = 1.0, seed: int = 0,
                  dropped: dict[str, int] | None = None, provenance: dict[str, Any] | None = None) -> Analysis:
    """Every number of the analysis from the long table ``votes`` (see the module docstring)."""
    compared = votes[votes["correct"].eq("")]
    methods = sorted(set(compared["a"]) | set(compared["b"]))
    if method not in methods:
        raise UserError(f"--method {method!r} is not among the compared methods of the votes: "
                        f"{', '.join(methods) or 'none'}")
    kept, raters, counts = filter_votes(votes, min_vigilance)
    if kept.empty or not ((kept["a"] == method) | (kept["b"] == method)).any():
        raise UserError(f"no vote on {method} is left after dropping raters who failed, skipped or never saw a catch "
                        f"trial ({counts['raters'] - counts['raters_kept']} of {counts['raters']} raters); check the "
                        "key or lower --min-vigilance")
    comparisons, naive = comparison_tables(kept, method)
    return Analysis(method=method, comparisons=comparisons, naive=naive, agreement=agreement_table(kept, method),
                    ranking=ranking_table(kept, seed), raters=raters, dropped={**(dropped or {}), **counts},
                    provenance=provenance or {"random_weights": None},
                    summary={"min_vigilance": min_vigilance, "confidence": CONFIDENCE, "seed": seed})


def load_votes(s: AnalysisSettings) -> tuple[pd.DataFrame, dict[str, int], dict[str, Any]]:
    """(the long table, what the platform reader dropped, provenance) from ``s``'s sources."""
    if s.votes is not None:
        if s.results or s.key is not None:
            raise ConfigError("give either --votes, or --results with --key, not both")
        prov = {"source": str(s.votes), "random_weights": None, **read_provenance(s.votes)}
        votes = read_votes(s.votes)
        return votes, {"rows_read": len(votes)}, prov
    if not s.results or s.key is None:
        raise ConfigError("give --votes FILE.csv, or --results (Mechanical Turk or lab results) with --key "
                          "<study>/private/answer_key.csv")
    pv = votes_from_results(s.results, s.key, s.max_hits_per_worker)
    if pv.votes.empty:
        raise UserError(f"no trials in {', '.join(map(str, s.results))} are left to analyse")
    return pv.votes, pv.dropped, pv.provenance


def analyze(s: AnalysisSettings) -> Analysis:
    """Read the votes of ``s``, analyse them, and write the outputs (``s.dest``, ``s.export_votes``)."""
    votes, dropped, prov = load_votes(s)
    if prov.get("random_weights"):
        log.warning(RANDOM_NOTICE)
    if s.export_votes is not None:
        sidecar = {k: v for k, v in prov.items() if k != "source"} | {"from": prov.get("source")}
        write_votes(s.export_votes, votes, sidecar)
    a = analyze_votes(votes, s.method, s.min_vigilance, s.seed, dropped, prov)
    a.summary["sources"] = [str(p) for p in s.results] + ([str(s.key)] if s.key else []) + (
        [str(s.votes)] if s.votes else [])
    if s.export_votes is not None:
        a.files["votes"] = str(s.export_votes)
    if s.dest is not None:
        a.files.update(write_outputs(a, Path(s.dest)))
    return a


# ------------------------------------------------------------------------------------ rendering
def _pct(x: float, digits: int = 1) -> str:
    return "-" if x is None or x != x else f"{100 * x:.{digits}f}"


def _p(x: float) -> str:
    if x is None or x != x:
        return "-"
    return "<0.0001" if x < 1e-4 else f"{x:.4f}"


def _pm(mean: float, sd: float) -> str:
    return "-" if mean != mean else (f"{_pct(mean)} ± {_pct(sd)}" if sd == sd else _pct(mean))


def headline_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = ["data set", "baseline", f"{a.method} preferred (%)", "95% CI", "p", "p (Holm)",
              "item mean ± std (%)", "paper: item mean ± std (%)", "votes", "raters", "items"]  # fmt: skip
    rows = [[r.dataset, r.baseline, _pct(r.share), f"[{_pct(r.ci_low)}, {_pct(r.ci_high)}]", _p(r.p_value),
             _p(r.p_holm), _pm(r.item_mean, r.item_std), _pm(r.paper_item_mean, r.paper_item_std) + (
                 " (paper)" if r.paper_item_mean == r.paper_item_mean else ""),
             f"{r.wins}/{r.votes}", str(r.raters), str(r.items)] for r in a.comparisons.itertuples()]  # fmt: skip
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    return (["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            + ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows])  # fmt: skip


def to_markdown(a: Analysis) -> str:
    out = [f"**{a.notice}**", ""] if a.notice else []
    out += [f"## Share of votes for {a.method}",
            "",
            "95% CI and p account for raters and comparisons (two-way clustered, t test against 50%); "
            "Holm across the baselines of each data set. Item mean ± std: the paper's format (mean over "
            "comparisons of the share for our method, sample std over comparisons).",
            "", *_md_table(*headline_rows(a)), ""]  # fmt: skip
    if a.method == PAPER_METHOD:
        note = PAPER_NOTE[0].upper() + PAPER_NOTE[1:] + "."
        out += ["## The paper's Table 1 (the paper's numbers, not ours)", "", note, ""]
        out += _md_table(["data set", "baseline", "paper: Splice preferred, item mean ± std (%)"],
                         [[d, b, f"{m:.1f} ± {s:.1f}"] for (d, b), (m, s) in PAPER_TABLE1.items()])
        out.append("")
    out += ["## Vote-level numbers (ASSUME INDEPENDENT VOTES: too optimistic when raters or images differ)", ""]
    out += _md_table(["data set", "baseline", f"{a.method} preferred (%)", "Wilson 95% CI", "p (binomial)",
                      "p (binomial, Holm)", "votes"],
                     [[r.dataset, r.baseline, _pct(r.share), f"[{_pct(r.wilson_low)}, {_pct(r.wilson_high)}]",
                       _p(r.p_binomial), _p(r.p_binomial_holm), f"{r.wins}/{r.votes}"]
                      for r in a.naive.itertuples()])  # fmt: skip
    out += ["", "## Inter-rater agreement (comparisons judged at least twice)", ""]
    out += _md_table(["data set", "baseline", "comparisons", "votes", "pairwise agreement (%)",
                      "Krippendorff's alpha"],
                     [[r.dataset, r.baseline, str(r.comparisons), str(r.votes), _pct(r.pairwise_agreement),
                       "-" if r.krippendorff_alpha != r.krippendorff_alpha else f"{r.krippendorff_alpha:.3f}"]
                      for r in a.agreement.itertuples()])  # fmt: skip
    out += ["", "## Bradley-Terry ranking (score: log-strength, mean 0; intervals 95%, clustered)", ""]
    out += _md_table(["data set", "rank", "method", "score", "95% CI", "rank 95% interval", "wins/votes"],
                     [[r.dataset, str(r.rank), r.method, f"{r.score:+.2f}",
                       "-" if r.ci_low != r.ci_low else f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
                       f"{r.rank_low}-{r.rank_high}", f"{r.wins}/{r.votes}"] for r in a.ranking.itertuples()])
    d = a.dropped
    out += ["", "## Dropped", ""]
    out += [f"- {k.replace('_', ' ')}: {v}" for k, v in d.items()]
    return "\n".join(out) + "\n"


def to_latex(a: Analysis) -> str:
    header, rows = headline_rows(a)
    body = []
    if a.notice:
        body.append(r"\multicolumn{%d}{l}{\textbf{%s}} \\" % (len(header), latex_escape(a.notice)))
    body += [" & ".join(latex_escape(c) for c in header) + r" \\", r"\midrule"]
    body += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
    head = f"% {a.notice}\n" if a.notice else ""
    return (head + f"% 2AFC study: share of votes for {a.method} (splice study analyze); CI and p clustered by rater "
            "and comparison\n\\begin{tabular}{ll" + "r" * (len(header) - 2) + "}\n\\toprule\n" + "\n".join(body)
            + "\n\\bottomrule\n\\end{tabular}\n")  # fmt: skip


def figure(a: Analysis):
    """One panel per data set: share for ``a.method`` per baseline with its clustered 95% CI, the paper's marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = a.comparisons
    datasets = list(dict.fromkeys(table["dataset"]))
    sizes = [int((table["dataset"] == ds).sum()) for ds in datasets]
    fig, axes = plt.subplots(len(datasets), 1, figsize=(7.5, 1.3 + sum(0.42 * n + 0.55 for n in sizes)),
                             squeeze=False, sharex=True, layout="constrained",
                             gridspec_kw={"height_ratios": [n + 0.8 for n in sizes]})
    axes = axes[:, 0]
    paper_drawn = False
    for ax, ds in zip(axes, datasets):
        part = table[table["dataset"] == ds].reset_index(drop=True)
        y = np.arange(len(part))[::-1]
        share = 100 * part["share"].to_numpy()
        lo = 100 * part["ci_low"].to_numpy()
        hi = 100 * part["ci_high"].to_numpy()
        ax.barh(y, share, color="#4c72b0", height=0.5, label="share of votes (95% CI over raters and comparisons)")
        ok = ~np.isnan(lo)
        ax.errorbar(share[ok], y[ok], xerr=np.vstack([share - lo, hi - share])[:, ok], fmt="none", ecolor="black",
                    capsize=3)
        pm = 100 * part["paper_item_mean"].to_numpy()
        ps = 100 * part["paper_item_std"].to_numpy()
        has = ~np.isnan(pm)
        if has.any():
            ax.errorbar(pm[has], y[has] - 0.36, xerr=ps[has], fmt="D", mfc="white", mec="#c44e52", ecolor="#c44e52",
                        ms=5, capsize=2, lw=1, label="the paper: item mean ± std")
            paper_drawn = True
        ax.axvline(50, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(y, [f"vs {b}" for b in part["baseline"]])
        ax.set_ylim(-0.75, len(part) - 0.45)
        ax.set_xlim(0, 100)
        ax.set_title(ds if ds != ALL else "all data sets (pooled)", fontsize=10, loc="left")
    axes[-1].set_xlabel(f"% of votes for {a.method}")
    handles, labels = axes[0].get_legend_handles_labels()
    if paper_drawn and "the paper: item mean ± std" not in labels:
        for ax in axes:
            h, lab = ax.get_legend_handles_labels()
            for hh, ll in zip(h, lab):
                if ll not in labels:
                    handles.append(hh)
                    labels.append(ll)
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    if a.notice:
        fig.suptitle(a.notice, color="#b00020", fontsize=9, fontweight="bold", wrap=True)
    return fig


def labels_outside(fig) -> list[str]:
    """The texts of ``fig`` (titles, tick and axis labels, legend) that do not fit inside it."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    out = []
    for t in fig.findobj(lambda o: hasattr(o, "get_text") and hasattr(o, "get_window_extent")):
        if not t.get_visible() or not t.get_text():
            continue
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 0.5 or e.y0 < box.y0 - 0.5 or e.x1 > box.x1 + 0.5 or e.y1 > box.y1 + 0.5:
            out.append(t.get_text())
    return out


def plot(a: Analysis, path: Path) -> None:
    """Write :func:`figure` as a PNG (a warning names any label that does not fit)."""
    import matplotlib.pyplot as plt

    from splice.core.atomic import atomic_write

    fig = figure(a)
    outside = labels_outside(fig)
    if outside:
        log.warning("labels outside the study plot: %s", ", ".join(outside))
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def write_outputs(a: Analysis, dest: Path) -> dict[str, str]:
    """study_table.{csv,md,tex}, study_raters.csv, study_plot.png and study_summary.json in ``dest``."""
    files = {
        "csv": dest / "study_table.csv", "md": dest / "study_table.md", "tex": dest / "study_table.tex",
        "raters": dest / "study_raters.csv", "plot": dest / "study_plot.png", "summary": dest / "study_summary.json",
    }  # fmt: skip
    cols = COMPARISON_COLUMNS + ["random_weights"]
    table = a.comparisons.assign(random_weights=a.random_weights)
    write_csv(files["csv"], cols, table[cols].itertuples(index=False))
    atomic_write_text(files["md"], to_markdown(a))
    atomic_write_text(files["tex"], to_latex(a))
    write_csv(files["raters"], list(a.raters.columns), a.raters.itertuples(index=False))
    plot(a, files["plot"])
    out = {k: str(v) for k, v in files.items()}
    a.files.update(out)
    atomic_write_json(files["summary"], a.to_json())
    return out
