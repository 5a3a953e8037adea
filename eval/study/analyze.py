"""``splice study analyze``: the 2AFC results as the Splice paper's Table 1.

Reads the results CSV(s) (Mechanical Turk's, or the lab page's; :mod:`eval.study.results`),
joins every judgment with the private answer key, drops raters who fail the vigilance
trials, and reports per data set and baseline the share of votes for our method with a 95%
Wilson interval and a bootstrap interval over raters and items, the exact two-sided
binomial test against 50%, and Holm-corrected p-values across the baselines of each data
set (PROTOCOL.md, "2AFC user study"; Tumanyan et al., CVPR 2022, Table 1).

When the study covers several data sets, a pooled ``all`` row per baseline is added (its
own Holm family).
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

from . import stats
from .csvsafe import read_csv_rows, write_csv
from .results import read_judgments

log = logging.getLogger(__name__)

ALL = "all"
KEY_REQUIRED = ["trial_id", "kind", "dataset", "pair_id", "ours", "baseline", "ours_side", "correct_side", "left",
                "right"]  # fmt: skip
TABLE_COLUMNS = ["dataset", "baseline", "ours", "n_votes", "n_ours", "share", "wilson_low", "wilson_high",
                 "bootstrap_low", "bootstrap_high", "p_value", "p_holm", "n_raters", "n_items"]  # fmt: skip


@dataclass
class AnalysisSettings:
    results: list[Path]
    key: Path
    dest: Path | None = None
    min_vigilance: float = 1.0  # share of catch trials a rater must get right to be kept
    n_boot: int = 2000
    seed: int = 0
    confidence: float = 0.95


@dataclass
class Analysis:
    table: pd.DataFrame
    raters: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def read_key(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"answer key not found: {path}; it is <study>/private/answer_key.csv "
                        "from `splice study export`")
    header, rows = read_csv_rows(path)
    missing = [c for c in KEY_REQUIRED if c not in header]
    if missing:
        raise UserError(f"{path} is not a study answer key (missing columns: {', '.join(missing)})")
    key = pd.DataFrame(rows, columns=header)
    if key["trial_id"].duplicated().any():
        raise UserError(f"{path} lists a trial id twice; re-export the study")
    return key


def _join(judgments: pd.DataFrame, key: pd.DataFrame, s: AnalysisSettings) -> pd.DataFrame:
    unknown = sorted(set(judgments["trial_id"]) - set(key["trial_id"]))
    if unknown:
        raise UserError(f"{len(unknown)} trial id(s) of the results (e.g. {unknown[0]}) are not in {s.key}: "
                        "the results and the key come from different exports")
    df = judgments.merge(key, on="trial_id", how="left", suffixes=("", "_key"))
    shown = df["left_image"].ne("") | df["right_image"].ne("")
    bad = shown & ((df["left_image"] != df["left"]) | (df["right_image"] != df["right"]))
    if bad.any():
        t = df[bad].iloc[0]
        raise UserError(f"trial {t['trial_id']} showed other images than {s.key} records for it: "
                        "the results and the key come from different exports")
    return df


def _rater_table(df: pd.DataFrame, min_vigilance: float) -> pd.DataFrame:
    vig = df[df["kind"] == "vigilance"]
    per = vig.groupby("worker")["correct"].agg(["size", "sum"]).rename(columns={"size": "n_vigilance",
                                                                                 "sum": "n_vigilance_correct"})
    raters = pd.DataFrame({"worker": sorted(set(df["worker"]))}).set_index("worker").join(per).fillna(0)
    raters = raters.astype({"n_vigilance": int, "n_vigilance_correct": int})
    raters["n_judgments"] = df.groupby("worker").size().reindex(raters.index).fillna(0).astype(int)
    share = raters["n_vigilance_correct"] / raters["n_vigilance"].where(raters["n_vigilance"] > 0)
    raters["vigilance_share"] = share
    raters["kept"] = raters["n_vigilance"].eq(0) | (share >= min_vigilance - 1e-12)
    return raters.reset_index()


def _row(dataset: str, baseline: str, ours: str, g: pd.DataFrame, s: AnalysisSettings) -> dict[str, Any]:
    n, k = len(g), int(g["vote_ours"].sum())
    w = stats.wilson_interval(k, n, s.confidence)
    items = (g["dataset"] + "/" + g["pair_id"] + "/" + g["baseline"]).to_numpy()
    b = stats.crossed_bootstrap(g["vote_ours"].to_numpy(), g["worker"].to_numpy(), items, s.n_boot, s.seed,
                                s.confidence)
    return {
        "dataset": dataset, "baseline": baseline, "ours": ours, "n_votes": n, "n_ours": k,
        "share": k / n if n else math.nan, "wilson_low": w.low, "wilson_high": w.high,
        "bootstrap_low": b.low, "bootstrap_high": b.high, "p_value": stats.binomial_p(k, n), "p_holm": math.nan,
        "n_raters": g["worker"].nunique(), "n_items": len(set(items)),
    }  # fmt: skip


def vote_table(votes: pd.DataFrame, s: AnalysisSettings) -> pd.DataFrame:
    """One row per (data set, baseline) (+ pooled ``all`` rows), columns ``TABLE_COLUMNS``."""
    rows = []
    datasets = sorted(set(votes["dataset"]))
    for ds in datasets + ([ALL] if len(datasets) > 1 else []):
        part = votes if ds == ALL else votes[votes["dataset"] == ds]
        family = []
        for (baseline, ours), g in part.groupby(["baseline", "ours"], sort=True):
            family.append(_row(ds, baseline, ours, g, s))
        for r, p in zip(family, stats.holm([r["p_value"] for r in family])):
            r["p_holm"] = p
        rows += family
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def analyze(s: AnalysisSettings) -> Analysis:
    """Run the analysis of ``s`` and, when ``s.dest`` is set, write its files."""
    if not 0 <= s.min_vigilance <= 1:
        raise ConfigError(f"--min-vigilance must be in [0, 1], got {s.min_vigilance}")
    if s.n_boot < 100:
        raise ConfigError(f"--bootstrap needs at least 100 replicates, got {s.n_boot}")
    key = read_key(s.key)
    j = read_judgments(s.results)
    summary: dict[str, Any] = {"results": [str(p) for p in s.results], "key": str(s.key), "rows_read": len(j)}

    rejected = j["status"].str.lower().eq("rejected")
    summary["rejected_assignment_judgments"] = int(rejected.sum())
    j = j[~rejected]
    unanswered = j["answer"].eq("")
    invalid = ~unanswered & ~j["answer"].isin(["left", "right"])
    summary["unanswered"] = int(unanswered.sum())
    summary["invalid_answers"] = int(invalid.sum())
    j = j[~unanswered & ~invalid]
    dup = j.duplicated(["worker", "trial_id"], keep="first")
    summary["duplicate_judgments"] = int(dup.sum())
    j = j[~dup]
    if j.empty:
        raise UserError(f"no answered trials in {', '.join(map(str, s.results))}")

    df = _join(j, key, s)
    df["correct"] = (df["kind"] == "vigilance") & (df["answer"] == df["correct_side"])
    raters = _rater_table(df, s.min_vigilance)
    failed = raters[~raters["kept"]]
    summary.update(
        raters=len(raters),
        raters_failed_vigilance=len(failed),
        raters_without_vigilance=int(raters["n_vigilance"].eq(0).sum()),
        judgments_dropped_with_failed_raters=int(df["worker"].isin(failed["worker"]).sum()),
        min_vigilance=s.min_vigilance,
    )
    kept = df[df["worker"].isin(raters.loc[raters["kept"], "worker"])]
    votes = kept[kept["kind"] == "comparison"].copy()
    votes["vote_ours"] = (votes["answer"] == votes["ours_side"]).astype(int)
    summary["comparison_votes"] = len(votes)
    # Mechanical Turk cannot stop a worker from taking HITs of two sets: such repeats are kept (the
    # bootstrap over raters accounts for them) and counted here.
    summary["same_item_repeats"] = int(votes.duplicated(["worker", "dataset", "pair_id", "baseline"]).sum())
    summary["vigilance_accuracy_kept"] = (float(kept.loc[kept["kind"] == "vigilance", "correct"].mean())
                                          if (kept["kind"] == "vigilance").any() else None)
    if votes.empty:
        raise UserError("no comparison votes are left after dropping raters who failed vigilance "
                        f"({len(failed)} of {len(raters)} raters); check the key or lower --min-vigilance")
    table = vote_table(votes, s)
    summary.update(n_boot=s.n_boot, seed=s.seed, confidence=s.confidence)
    out = Analysis(table=table, raters=raters, summary=summary)
    if s.dest is not None:
        out.files = write_outputs(out, Path(s.dest))
    return out


# ----------------------------------------------------------------------------------- rendering
def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.1f}"


def _p(x: float) -> str:
    if x != x:
        return "-"
    return "<0.0001" if x < 1e-4 else f"{x:.4f}"


def display_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["data set", "baseline", "ours preferred (%)", "votes", "95% CI Wilson", "95% CI bootstrap",
              "p (binomial)", "p (Holm)", "raters", "items"]  # fmt: skip
    rows = [[r.dataset, r.baseline, _pct(r.share), f"{r.n_ours}/{r.n_votes}",
             f"[{_pct(r.wilson_low)}, {_pct(r.wilson_high)}]", f"[{_pct(r.bootstrap_low)}, {_pct(r.bootstrap_high)}]",
             _p(r.p_value), _p(r.p_holm), str(r.n_raters), str(r.n_items)] for r in table.itertuples()]  # fmt: skip
    return header, rows


def to_markdown(table: pd.DataFrame) -> str:
    header, rows = display_rows(table)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def _tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def to_latex(table: pd.DataFrame) -> str:
    header, rows = display_rows(table)
    body = [" & ".join(_tex(c) for c in header) + r" \\", r"\midrule"]
    body += [" & ".join(_tex(c) for c in r) + r" \\" for r in rows]
    return ("% 2AFC study: share of judgments preferring our method (splice study analyze)\n"
            "\\begin{tabular}{ll" + "r" * (len(header) - 2) + "}\n\\toprule\n" + "\n".join(body)
            + "\n\\bottomrule\n\\end{tabular}\n")  # fmt: skip


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 1.4 + 0.5 * table["baseline"].nunique()),
                             squeeze=False, sharex=True)
    for ax, ds in zip(axes[0], datasets):
        part = table[table["dataset"] == ds].reset_index(drop=True)
        y = np.arange(len(part))
        share = 100 * part["share"].to_numpy()
        err = np.vstack([share - 100 * part["wilson_low"].to_numpy(), 100 * part["wilson_high"].to_numpy() - share])
        ax.barh(y, share, color="#4c72b0", height=0.6)
        ax.errorbar(share, y, xerr=err, fmt="none", ecolor="black", capsize=3)
        ax.axvline(50, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(y, [f"vs {b}" for b in part["baseline"]])
        ax.set_xlim(0, 100)
        ax.set_title(ds)
        ax.set_xlabel("% judgments preferring ours (95% Wilson CI)")
    fig.tight_layout()
    from splice.core.atomic import atomic_write

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def write_outputs(a: Analysis, dest: Path) -> dict[str, str]:
    """study_table.{csv,md,tex}, study_raters.csv, study_plot.png and study_summary.json in ``dest``."""
    files = {
        "csv": dest / "study_table.csv", "md": dest / "study_table.md", "tex": dest / "study_table.tex",
        "raters": dest / "study_raters.csv", "plot": dest / "study_plot.png", "summary": dest / "study_summary.json",
    }  # fmt: skip
    write_csv(files["csv"], TABLE_COLUMNS, a.table[TABLE_COLUMNS].itertuples(index=False))
    atomic_write_text(files["md"], to_markdown(a.table))
    atomic_write_text(files["tex"], to_latex(a.table))
    write_csv(files["raters"], list(a.raters.columns), a.raters.itertuples(index=False))
    plot(a.table, files["plot"])
    atomic_write_json(files["summary"], {**a.summary, "table": a.table.to_dict(orient="records")})
    return {k: str(v) for k, v in files.items()}
