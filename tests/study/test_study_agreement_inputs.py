"""`splice study agreement` with votes that do not fit the run: pairs it does not hold (left out of every count),
methods without a finished job (an error), and the --metrics names it takes (table names, record names, all)."""

from __future__ import annotations

import json

import pytest

from eval.agreement import agreement_from_sources
from eval.study.analyze import AnalysisSettings
from eval.study.votes import VOTE_COLUMNS
from splice.core.errors import ConfigError
from tests.support.cli import invoke
from tests.support.store import vit_rec, write_job


def _run(tmp_path):
    """Data set d, pairs p1 and p2, methods A and B with lab_emd (lower is better) and vit records; on both pairs
    lab_emd prefers A, the ViT structure distance B."""
    root = tmp_path / "run"
    for pair in ("p1", "p2"):
        for method, emd, structure in (("A", 1.0, 0.3), ("B", 2.0, 0.1)):
            write_job(root, "d", pair, method, metrics={
                "lab_emd": {"metric": "lab_emd", "value": emd},
                "vit": {"metric": "vit", "protocol_version": "1", **vit_rec(structure, 0.5, 0.5)},
            })  # fmt: skip
    return root


def _votes(tmp_path, rows, name="votes.csv"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([",".join(VOTE_COLUMNS), *(",".join(r) + "," for r in rows)]) + "\n")
    return path


IN_RUN = [("r1", "d", "p1", "A", "B", "A"), ("r2", "d", "p1", "B", "A", "A"),  # p1: 2-0 for A
          ("r1", "d", "p2", "A", "B", "B"), ("r2", "d", "p2", "A", "B", "A")]  # p2: 1-1, tied  # fmt: skip
# a pair of d the run does not hold, and a data set it does not hold: 3 votes by 2 raters who voted nowhere else
NOT_IN_RUN = [("r3", "d", "nopair", "A", "B", "A"), ("r4", "d", "nopair", "A", "B", "B"),
              ("r4", "other", "p1", "A", "B", "A")]  # fmt: skip


def _agreement(tmp_path, rows, metrics=None):
    s = AnalysisSettings(votes=_votes(tmp_path, rows), min_vigilance=0.0)
    return agreement_from_sources(_run(tmp_path), s, metrics, n_boot=200)


def test_votes_on_pairs_not_in_the_run_are_left_out_of_every_count(tmp_path, caplog):
    """They were counted in comparisons, votes, raters and split share, and a data set the run does not hold got
    a section of its own; now the numbers are those of the votes on the run's pairs alone."""
    alone = _agreement(tmp_path / "alone", IN_RUN)
    mixed = _agreement(tmp_path / "mixed", IN_RUN + NOT_IN_RUN)
    assert "2 voted pair(s) are not in the run store (e.g. d/nopair): their 3 vote(s) are left out" in caplog.text
    assert list(mixed.datasets["dataset"]) == ["d"]  # no section for `other`, no pooled `all`
    d = mixed.datasets.iloc[0].to_dict()
    assert (d["comparisons"], d["votes"], d["raters"], d["split"], d["rater_ties"]) == (2, 4, 2, 1, 1)
    assert d["split_share"] == 0.5 and d["majority_share"] == pytest.approx(3 / 4)
    assert mixed.datasets.equals(alone.datasets) and mixed.rows.equals(alone.rows)
    assert mixed.dropped["votes_used"] == 4 and mixed.dropped["rows_read"] == 7
    assert (mixed.dropped["pairs_not_in_run"], mixed.dropped["votes_of_pairs_not_in_run"]) == (2, 3)
    assert "pairs_not_in_run" not in alone.dropped


def test_a_vote_naming_a_method_without_finished_jobs_is_an_error(tmp_path):
    """It was accepted silently (counted as a comparison with no metric value); `study export --baselines` refuses
    such a method the same way."""
    rows = IN_RUN + [("r1", "d", "p1", "A", "bogusmethod", "A")]
    with pytest.raises(ConfigError, match=r"^the votes name method\(s\) bogusmethod that have no finished job in the "
                                          r"run store \(--out\); methods with finished jobs: A, B; "):  # fmt: skip
        _agreement(tmp_path, rows)
    # on a pair the run does not hold, the vote is only left out with the others
    assert _agreement(tmp_path, IN_RUN + [("r1", "d", "nopair", "A", "bogusmethod", "A")]).dropped["votes_used"] == 4


@pytest.mark.parametrize("names, expected", [
    (None, ["structure", "appearance", "cosine", "lab_emd"]),  # every table metric the run has values for
    (["all"], ["structure", "appearance", "cosine", "lab_emd"]),
    (["vit"], ["structure", "appearance", "cosine"]),  # a record name: its table numbers
    (["lab_emd", "structure", "vit"], ["lab_emd", "structure", "appearance", "cosine"]),
    (["cosine"], ["cosine"]),
])  # fmt: skip
def test_metrics_take_table_names_record_names_and_all(tmp_path, names, expected):
    a = _agreement(tmp_path, IN_RUN, names)
    assert a.settings["metrics"] == expected and list(a.rows["metric"]) == expected
    # on p1 (raters: A) lab_emd prefers A, the structure distance B; p2 is tied
    by = a.rows.set_index("metric")
    if "lab_emd" in by.index:
        assert (by.loc["lab_emd", "agree"], by.loc["lab_emd", "used"]) == (1, 1)
    if "structure" in by.index:
        assert (by.loc["structure", "agree"], by.loc["structure", "used"]) == (0, 1)


def test_an_unknown_metric_lists_the_accepted_names(tmp_path):
    with pytest.raises(ConfigError) as e:
        _agreement(tmp_path, IN_RUN, ["vitt"])
    msg = str(e.value)
    assert msg.startswith("--metrics vitt: not a metric of the registry; did you mean vit? use all, the table names "
                          "of `splice metrics` (iou, matched_iou, pixel_accuracy, structure, ")  # fmt: skip
    assert "or a record name for all its numbers (panoptic, vit; e.g. vit = structure,appearance,cosine)" in msg
    with pytest.raises(ConfigError, match="^--metrics seconds: not a metric of the registry; use all"):
        _agreement(tmp_path, IN_RUN, ["seconds"])  # a job field, not a metric record


def test_cli_agreement_metrics_all_and_a_record_name(tmp_path, capsys):
    run = _run(tmp_path)
    (run / "run.json").write_text("{}")
    votes = _votes(tmp_path, IN_RUN + NOT_IN_RUN)
    base = ["study", "agreement", "--out", run, "--votes", votes, "--min-vigilance", "0", "--n-boot", "100", "--json"]
    code, out, err = invoke(capsys, *base, "--metrics", "all")
    assert code == 0, err
    got = json.loads(out)
    assert got["settings"]["metrics"] == ["structure", "appearance", "cosine", "lab_emd"]
    assert [(d["dataset"], d["comparisons"], d["votes"], d["raters"]) for d in got["datasets"]] == [("d", 2, 4, 2)]
    assert "d: 2 comparisons, 4 votes, raters split on 50%" in err
    code, out, err = invoke(capsys, *base, "--metrics", "vit")
    assert code == 0 and json.loads(out)["settings"]["metrics"] == ["structure", "appearance", "cosine"]
    code, out, err = invoke(capsys, *base, "--metrics", "giraffe")
    assert (code, out) == (2, "") and err.count("\n") == 1 and "the table names of `splice metrics`" in err
