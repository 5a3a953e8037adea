"""`splice study analyze`: joining results with the key, vigilance filtering, Table 1 numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eval.study import csvsafe
from eval.study.analyze import AnalysisSettings, analyze
from eval.study.export import export_study
from eval.study.results import META
from splice.core.errors import UserError
from tests.support.study import build_store, export_settings

PROJECT = Path(__file__).resolve().parents[2]


def _key(study: Path) -> dict[str, dict[str, str]]:
    return {r["trial_id"]: r for r in csvsafe.read_csv_rows(study / "private" / "answer_key.csv")[1]}


def good_answer(k: dict[str, str]) -> str:
    """A careful rater who prefers ours against strotss and the baseline against wct2."""
    if k["kind"] == "vigilance":
        return k["correct_side"]
    other = "left" if k["ours_side"] == "right" else "right"
    return k["ours_side"] if k["baseline"] == "strotss" else other


def bad_answer(k: dict[str, str]) -> str:
    """A careless rater: fails every catch trial, always picks the baseline."""
    flip = {"left": "right", "right": "left"}
    return flip[k["correct_side"]] if k["kind"] == "vigilance" else flip[k["ours_side"]]


def write_mturk_results(study: Path, path: Path, workers: list[tuple[str, str, str]], crowd_style=False) -> None:
    """Results like Mechanical Turk's: workers = [(worker id, set, "good"|"bad"|"rejected")]."""
    header, batch = csvsafe.read_csv_rows(study / "batch.csv")
    key = _key(study)
    slots = sum(c.endswith("_id") for c in header)
    answer_cols = ([f"Answer.trial_{k}.{s}" for k in range(1, slots + 1) for s in ("left", "right")] if crowd_style
                   else [f"Answer.trial_{k}" for k in range(1, slots + 1)])
    cols = META + [f"Input.{c}" for c in header] + answer_cols + ["Approve", "Reject"]
    rows = []
    for worker, set_no, kind in workers:
        for n, row in enumerate(r for r in batch if r["set"] == set_no):
            policy = good_answer if kind == "good" else bad_answer
            answers = {k: policy(key[row[f"trial_{k}_id"]]) for k in range(1, slots + 1)}
            out = {"HITId": row["hit"], "AssignmentId": f"A{worker}{n}", "WorkerId": worker,
                   "AssignmentStatus": "Rejected" if kind == "rejected" else "Approved", "WorkTimeInSeconds": "60"}
            out.update({f"Input.{c}": row[c] for c in header})
            for k, a in answers.items():
                if crowd_style:
                    out[f"Answer.trial_{k}.left"] = "true" if a == "left" else "false"
                    out[f"Answer.trial_{k}.right"] = "true" if a == "right" else "false"
                else:
                    out[f"Answer.trial_{k}"] = a
            rows.append(out)
    csvsafe.write_dict_csv(path, cols, rows)


@pytest.fixture
def study(tmp_path) -> Path:
    build_store(tmp_path)
    export_study(export_settings(tmp_path))
    return tmp_path / "study"


WORKERS = [("W1", "1", "good"), ("W2", "2", "good"), ("W3", "3", "good"), ("WBAD", "1", "bad"),
           ("WREJ", "2", "rejected")]


def _table(a) -> dict[tuple[str, str], dict]:
    return {(r["dataset"], r["baseline"]): r for r in a.table.to_dict(orient="records")}


def test_analysis_numbers_and_vigilance_filter(study, tmp_path):
    write_mturk_results(study, tmp_path / "results.csv", WORKERS)
    a = analyze(AnalysisSettings(results=[tmp_path / "results.csv"], key=study / "private" / "answer_key.csv",
                                 dest=tmp_path / "analysis", n_boot=300))
    s = a.summary
    assert s["raters"] == 4 and s["raters_failed_vigilance"] == 1 and s["raters_without_vigilance"] == 0
    assert s["rejected_assignment_judgments"] == 12 and s["judgments_dropped_with_failed_raters"] == 12
    t = _table(a)
    # afhq: 3 pairs x 3 judgments per baseline; wild: 2 pairs vs strotss, 1 vs wct2 (one job failed)
    assert (t["afhq", "strotss"]["n_ours"], t["afhq", "strotss"]["n_votes"]) == (9, 9)
    assert (t["afhq", "wct2"]["n_ours"], t["afhq", "wct2"]["n_votes"]) == (0, 9)
    assert (t["wild", "strotss"]["n_ours"], t["wild", "strotss"]["n_votes"]) == (6, 6)
    assert (t["wild", "wct2"]["n_ours"], t["wild", "wct2"]["n_votes"]) == (0, 3)
    assert (t["all", "strotss"]["n_ours"], t["all", "strotss"]["n_votes"]) == (15, 15)
    # exact two-sided binomial p = 2 * 0.5^n for unanimous votes; Holm within each data set
    assert t["afhq", "strotss"]["p_value"] == pytest.approx(2 * 0.5**9)
    assert t["afhq", "strotss"]["p_holm"] == pytest.approx(4 * 0.5**9)
    assert t["wild", "strotss"]["p_value"] == pytest.approx(0.03125)
    assert t["wild", "strotss"]["p_holm"] == pytest.approx(0.0625)
    assert t["wild", "wct2"]["p_value"] == pytest.approx(0.25) and t["wild", "wct2"]["p_holm"] == pytest.approx(0.25)
    assert t["all", "wct2"]["p_holm"] == pytest.approx(2 * 0.5**12)
    assert t["afhq", "strotss"]["wilson_high"] == 1.0
    assert t["afhq", "strotss"]["wilson_low"] == pytest.approx(9 / (9 + 1.959964**2), abs=1e-5)
    assert t["afhq", "strotss"]["n_raters"] == 3 and t["afhq", "strotss"]["n_items"] == 3
    for name in ("csv", "md", "tex", "plot", "raters", "summary"):
        assert Path(a.files[name]).stat().st_size > 0
    md = Path(a.files["md"]).read_text()
    assert "| afhq | strotss | 100.0 | 9/9 |" in md
    assert r"\toprule" in Path(a.files["tex"]).read_text()
    assert Path(a.files["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_filter_the_careless_rater_counts(study, tmp_path):
    write_mturk_results(study, tmp_path / "r.csv", WORKERS[:4] + [("W1", "2", "good")])
    a = analyze(AnalysisSettings(results=[tmp_path / "r.csv"], key=study / "private" / "answer_key.csv",
                                 min_vigilance=0.0, n_boot=200))
    assert a.summary["raters_failed_vigilance"] == 0
    assert a.summary["same_item_repeats"] == 9  # W1 also did set 2: every comparison a second time
    t = _table(a)
    assert (t["afhq", "strotss"]["n_ours"], t["afhq", "strotss"]["n_votes"]) == (12, 15)


def test_crowd_style_answers_and_several_files(study, tmp_path):
    write_mturk_results(study, tmp_path / "a.csv", WORKERS[:2], crowd_style=True)
    write_mturk_results(study, tmp_path / "b.csv", WORKERS[2:4])
    a = analyze(AnalysisSettings(results=[tmp_path / "a.csv", tmp_path / "b.csv"],
                                 key=study / "private" / "answer_key.csv", n_boot=200))
    assert (_table(a)["all", "strotss"]["n_ours"], a.summary["raters_failed_vigilance"]) == (15, 1)


def test_results_from_another_export_are_refused(study, tmp_path):
    write_mturk_results(study, tmp_path / "r.csv", WORKERS[:1])
    export_study(export_settings(tmp_path, dest=tmp_path / "other", seed=123))
    with pytest.raises(UserError, match="different exports"):
        analyze(AnalysisSettings(results=[tmp_path / "r.csv"], key=tmp_path / "other" / "private" / "answer_key.csv"))
    with pytest.raises(UserError, match="not a study results CSV"):
        analyze(AnalysisSettings(results=[study / "private" / "answer_key.csv"],
                                 key=study / "private" / "answer_key.csv"))


def test_cli_analyze(study, tmp_path):
    write_mturk_results(study, tmp_path / "r.csv", WORKERS)
    proc = subprocess.run([sys.executable, "-m", "splice", "study", "analyze", "--results", str(tmp_path / "r.csv"),
                           "--key", str(study / "private" / "answer_key.csv"), "--bootstrap", "200"],
                          capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "dropped for failing vigilance: 1" in proc.stderr
    assert "| wild | strotss | 100.0 | 6/6 |" in proc.stdout
    assert (study / "analysis" / "study_table.csv").is_file()
