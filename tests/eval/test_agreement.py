"""Which metric agrees with the raters (`eval.agreement`): hand-computed numbers, then a study exported from a
scored synthetic run with simulated votes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from eval.aggregate import load_results
from eval.agreement import agreement_from_sources, comparison_table, metric_agreement, to_csv, to_markdown
from eval.study.votes import VOTE_COLUMNS
from splice.core.errors import ConfigError, UserError
from tests.support.store import write_job


def _votes(rows):
    return pd.DataFrame([[r, "d", p, a, b, c, ""] for r, p, a, b, c in rows], columns=VOTE_COLUMNS)


def _store(tmp_path):
    """Data set d, pairs p1-p3, methods A, B, C with lab_emd (lower is better) and clip (higher) records."""
    root = tmp_path / "run"
    values = {  # (pair, method, seed): (lab_emd, clip or None)
        ("p1", "A", 0): (1.0, 0.9), ("p1", "B", 0): (2.0, 0.1), ("p1", "C", 0): (0.5, None),
        ("p2", "A", 0): (0.5, 0.2), ("p2", "A", 1): (3.5, 0.2), ("p2", "B", 0): (1.0, 0.8),
        ("p3", "A", 0): (1.0, 0.4), ("p3", "C", 0): (1.0, 0.6),
    }  # fmt: skip
    for (pair, method, seed), (emd, clip) in values.items():
        metrics = {"lab_emd": {"metric": "lab_emd", "value": emd}}
        if clip is not None:
            metrics["clip"] = {"metric": "clip", "value": clip, "random_weights": True}
        write_job(root, "d", pair, method, seed=seed, metrics=metrics)
    return root


# p1 A-B: 3-0 for A; p2 A-B: 2-1 for A (split); p3 A-C: 1-1 (tied); p1 B-C: 0-2, for C
VOTES = [("r1", "p1", "A", "B", "A"), ("r2", "p1", "B", "A", "A"), ("r3", "p1", "A", "B", "A"),
         ("r1", "p2", "A", "B", "A"), ("r2", "p2", "B", "A", "A"), ("r3", "p2", "A", "B", "B"),
         ("r1", "p3", "A", "C", "A"), ("r2", "p3", "C", "A", "C"),
         ("r1", "p1", "B", "C", "C"), ("r3", "p1", "C", "B", "C")]  # fmt: skip


def test_comparisons_and_the_raters_pick():
    c = comparison_table(_votes(VOTES))
    got = {(r.pair, r.lo, r.hi): (r.votes, r.votes_lo, r.rater_pick) for r in c.itertuples()}
    assert got == {("p1", "A", "B"): (3, 3, "A"), ("p2", "A", "B"): (3, 2, "A"), ("p3", "A", "C"): (2, 1, ""),
                   ("p1", "B", "C"): (2, 0, "C")}  # fmt: skip


def test_agreement_by_hand(tmp_path):
    df = load_results(_store(tmp_path))
    a = metric_agreement(df, _votes(VOTES), n_boot=2000)
    rows = {r["metric"]: r for r in a.rows.to_dict(orient="records")}
    assert list(rows) == ["clip", "lab_emd"]  # registry order, metrics the run has values for
    emd = rows["lab_emd"]
    # lab_emd prefers A on p1 A-B (1 < 2: agrees), B on p2 (A's mean over its two seeds is 2.0 > 1.0: disagrees),
    # nothing on p3 (1.0 = 1.0: a metric tie), C on p1 B-C (agrees)
    assert (emd["used"], emd["agree"], emd["metric_ties"], emd["no_value"]) == (3, 2, 1, 0)
    assert emd["agreement"] == pytest.approx(2 / 3) and emd["vote_agreement"] == pytest.approx((3 + 1 + 2) / 8)
    assert emd["higher_is_better"] is False and emd["compares"] == "appearance"
    clip = rows["clip"]
    # clip prefers A on p1 (agrees), B on p2 (disagrees), C on p3 where the raters are tied; no value for C on p1
    assert (clip["used"], clip["agree"], clip["rater_ties"], clip["no_value"]) == (2, 1, 1, 1)
    assert clip["agreement"] == pytest.approx(0.5) and clip["vote_agreement"] == pytest.approx((3 + 1 + 1) / 8)
    d = a.datasets.iloc[0]
    assert (d["comparisons"], d["votes"], d["raters"], d["split"], d["rater_ties"]) == (4, 10, 3, 2, 1)
    assert d["split_share"] == 0.5 and d["majority_share"] == pytest.approx(8 / 10)
    # the interval: percentiles of the agreement over resampled comparisons (those the metric can be judged on)
    idx = np.random.default_rng(0).integers(0, 4, size=(2000, 4))
    order = [(r.pair, r.lo) for r in comparison_table(_votes(VOTES)).itertuples()]
    assert order == [("p1", "A"), ("p1", "B"), ("p2", "A"), ("p3", "A")]
    agree, usable = np.array([1, 1, 0, 0.0]), np.array([1, 1, 1, 0.0])  # p1 A-B, p1 B-C, p2 A-B agree, agree, not
    den = usable[idx].sum(axis=1)
    stats = (agree[idx].sum(axis=1))[den > 0] / den[den > 0]
    assert (emd["ci_low"], emd["ci_high"]) == pytest.approx(tuple(np.quantile(stats, [0.025, 0.975])))
    assert a.random_weights is True  # a clip record says random weights
    md = to_markdown(a)
    assert md.startswith("> **RANDOM WEIGHTS") and "| lab_emd | ↓ | appearance image | 67% [" in md
    assert "raters split (not unanimous) on 50% of the comparisons" in md and "resamples of comparisons" in md
    assert to_csv(a).splitlines()[1].startswith("dataset,metric,label")


def test_every_comparison_agreeing_has_a_point_interval(tmp_path):
    df = load_results(_store(tmp_path))
    votes = _votes([("r1", "p1", "A", "B", "A"), ("r2", "p1", "A", "B", "A"), ("r1", "p1", "B", "C", "C")])
    row = metric_agreement(df, votes, ["lab_emd"], n_boot=500).rows.iloc[0]
    assert row["agreement"] == 1.0 and (row["ci_low"], row["ci_high"]) == (1.0, 1.0)


def test_errors_are_one_line(tmp_path):
    df = load_results(_store(tmp_path))
    with pytest.raises(ConfigError, match="not a metric of the registry"):
        metric_agreement(df, _votes(VOTES), ["seconds"])
    with pytest.raises(UserError, match="none of the voted pairs"):
        metric_agreement(df, _votes([("r1", "zz", "A", "B", "A")]))
    with pytest.raises(UserError, match="no comparison vote"):
        metric_agreement(df, _votes([]).iloc[:0])


def test_a_study_exported_from_a_scored_run_with_simulated_votes(tmp_path):
    """The synthetic study store, scored with two registry metrics (Lab EMD and a tiny random DINO), exported,
    judged by simulated Mechanical Turk workers, then the agreement: checked against the records and the
    policy by hand. Scoring it again makes no model call."""
    from eval.scoring import ScoreOptions, score_run
    from eval.study.export import export_study
    from tests.support.study import build_store, export_settings, write_mturk_results

    run = build_store(tmp_path)
    opts = ScoreOptions(metrics=("lab_emd", "dino"), preset="smoke", cache_dir=str(tmp_path / "cache"),
                        metric_args={"dino": {"weights": "random", "image_size": "32"}})  # fmt: skip
    first = score_run(run, opts)
    assert first.scored == {"dino": 14, "lab_emd": 14} and first.model_calls["dino"] > 0 and first.ok
    again = score_run(run, opts)
    assert again.scored == {"dino": 0, "lab_emd": 0} and again.model_calls == {"dino": 0, "lab_emd": 0}

    s = export_settings(tmp_path)
    export_study(s)
    study = s.dest
    results = tmp_path / "results.csv"
    write_mturk_results(study, results, [("W1", None, "good"), ("W2", None, "good"), ("W3", None, "good"),
                                         ("W4", None, "bad")])  # fmt: skip
    from eval.study.analyze import AnalysisSettings

    a = agreement_from_sources(run, AnalysisSettings(results=[results], key=study / "private" / "answer_key.csv",
                                                     dest=tmp_path / "analysis"), n_boot=500)  # fmt: skip
    assert a.dropped["raters_failed_vigilance"] == 1  # W4 fails every catch trial
    # the good raters always prefer splice against strotss and wct2 against splice: unanimous
    assert set(a.datasets["split_share"]) == {0.0} and set(a.datasets["dataset"]) == {"afhq", "wild", "all"}
    df = load_results(run)
    for r in a.rows[a.rows["dataset"] != "all"].itertuples():
        agree = used = 0
        for pair in sorted(set(df.loc[df["dataset"] == r.dataset, "pair_id"])):

            def value(method):
                path = df.loc[(df["dataset"] == r.dataset) & (df["pair_id"] == pair) & (df["method"] == method),
                              "job_dir"]  # fmt: skip
                rec = path.iloc[0] + f"/metrics/{r.metric}.json"
                try:
                    return json.load(open(rec))["value"]
                except FileNotFoundError:  # the failed job
                    return None

            for baseline, raters in (("strotss", "splice"), ("wct2", "wct2")):
                shown = (
                    (a.comparisons["dataset"] == r.dataset)
                    & (a.comparisons["pair"] == pair)
                    & (a.comparisons["lo"] == min("splice", baseline))
                    & (a.comparisons["hi"] == max("splice", baseline))
                )
                if not shown.any():
                    continue
                ours, theirs = value("splice"), value(baseline)
                if ours == theirs:
                    continue
                metric = "splice" if (ours > theirs) == bool(r.higher_is_better) else baseline
                used += 1
                agree += metric == raters
        assert (r.used, r.agree) == (used, agree), (r.dataset, r.metric)
    assert a.rows["used"].sum() > 0 and set(a.rows["metric"]) == {"dino", "lab_emd"}
    assert (tmp_path / "analysis" / "agreement.md").is_file()
    saved = json.loads((tmp_path / "analysis" / "agreement.json").read_text())
    assert saved["resampled"].startswith("comparisons") and saved["datasets"][0]["comparisons"] > 0
