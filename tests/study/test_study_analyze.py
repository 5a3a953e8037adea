"""`splice study analyze`: votes from any platform, vigilance, repeats, Table 1 numbers, notices, the plot."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from eval.study import csvsafe
from eval.study.analyze import AnalysisSettings, analyze, analyze_votes, figure, labels_outside
from eval.study.export import export_study
from eval.study.votes import CATCH_RIGHT, CATCH_WRONG, VOTE_COLUMNS, provenance_path, read_votes
from splice.core.errors import UserError
from tests.support.study import build_store, export_settings, write_mturk_results

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def study(tmp_path) -> Path:
    build_store(tmp_path)
    export_study(export_settings(tmp_path))
    return tmp_path / "study"


def _key(study: Path) -> Path:
    return study / "private" / "answer_key.csv"


WORKERS = [("W1", None, "good"), ("W2", None, "good"), ("W3", None, "good"), ("WBAD", None, "bad"),
           ("WREJ", None, "rejected"), ("WSKIP", None, "skipper")]


def _rows(a) -> dict[tuple[str, str], dict]:
    return {(r["dataset"], r["baseline"]): r for r in a.comparisons.to_dict(orient="records")}


def _p_t2(share_wins: int, votes: int) -> float:
    """Hand formula: the floor variance p~(1-p~)/n with p~ = (w+2)/(n+4); t with 2 df has the closed-form
    tail P(|T| > t) = 1 - t / sqrt(2 + t^2)."""
    pt = (share_wins + 2) / (votes + 4)
    t = abs(share_wins / votes - 0.5) / math.sqrt(pt * (1 - pt) / votes)
    return 1 - t / math.sqrt(2 + t * t)


def test_analysis_numbers_vigilance_and_paper_format(study, tmp_path):
    write_mturk_results(study, tmp_path / "results.csv", WORKERS)
    a = analyze(AnalysisSettings(results=[tmp_path / "results.csv"], key=_key(study), dest=tmp_path / "analysis"))
    d = a.dropped
    # 3 HITs of 4 trials (3 comparisons + 1 catch trial) per worker
    assert d["rejected_assignment_judgments"] == 12 and d["raters"] == 5
    assert (d["raters_failed_vigilance"], d["raters_skipped_vigilance"], d["raters_without_vigilance"]) == (1, 1, 0)
    assert d["judgments_of_dropped_raters"] == 24 and d["repeat_judgments"] == 0 and d["votes_used"] == 27
    t = _rows(a)
    # afhq: 3 pairs x 3 kept raters per baseline; wild: 2 pairs vs strotss, 1 vs wct2 (one job failed)
    assert (t["afhq", "strotss"]["wins"], t["afhq", "strotss"]["votes"]) == (9, 9)
    assert (t["afhq", "wct2"]["wins"], t["afhq", "wct2"]["votes"]) == (0, 9)
    assert (t["wild", "strotss"]["wins"], t["wild", "strotss"]["votes"]) == (6, 6)
    assert (t["all", "strotss"]["wins"], t["all", "strotss"]["votes"]) == (15, 15)
    # unanimous votes: the two-way variance is 0, so the floor of independent votes at the Agresti-Coull
    # share holds; 3 raters, 3 items -> 2 df: p = 0.0533 (not 2 * 0.5^9 = 0.0039 as independent votes claim)
    assert t["afhq", "strotss"]["p_value"] == pytest.approx(_p_t2(9, 9), rel=1e-9)
    assert t["afhq", "strotss"]["p_value"] == pytest.approx(0.05328, abs=1e-5)
    assert t["afhq", "strotss"]["se"] == pytest.approx(math.sqrt(11 / 13 * 2 / 13 / 9))
    assert t["afhq", "strotss"]["p_holm"] == pytest.approx(2 * _p_t2(9, 9))  # Holm over afhq's 2 baselines
    assert t["afhq", "strotss"]["ci_high"] == 1.0 and t["afhq", "strotss"]["df"] == 2
    assert (t["afhq", "strotss"]["raters"], t["afhq", "strotss"]["items"]) == (3, 3)
    assert math.isnan(t["wild", "wct2"]["p_value"])  # one item: nothing generalises
    # the paper's format and the paper's numbers beside ours
    assert (t["afhq", "wct2"]["item_mean"], t["afhq", "wct2"]["item_std"]) == (0.0, 0.0)
    assert (t["afhq", "strotss"]["paper_item_mean"], t["afhq", "strotss"]["paper_item_std"]) == (0.597, 0.153)
    assert math.isnan(t["wild", "strotss"]["paper_item_mean"])  # "wild" is not the paper's "wild-pairs"
    # vote-level numbers, labelled as assuming independence
    naive = {(r["dataset"], r["baseline"]): r for r in a.naive.to_dict(orient="records")}
    assert naive["afhq", "strotss"]["p_binomial"] == pytest.approx(2 * 0.5**9)
    assert naive["afhq", "strotss"]["p_binomial_holm"] == pytest.approx(4 * 0.5**9)
    assert naive["afhq", "strotss"]["wilson_low"] == pytest.approx(9 / (9 + 1.959964**2), abs=1e-5)
    md = Path(a.files["md"]).read_text()
    assert "| afhq | strotss | 100.0 | [" in md and "59.7 ± 15.3 (paper)" in md
    assert "ASSUME INDEPENDENT VOTES" in md and "The paper's Table 1 (the paper's numbers, not ours)" in md
    assert "| wild-pairs | wct2 | 83.1 ± 14.9 |" in md  # the whole paper table, marked as the paper's
    assert r"\toprule" in Path(a.files["tex"]).read_text()
    assert Path(a.files["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    raters = {r["rater"]: r["status"] for r in csvsafe.read_csv_rows(a.files["raters"])[1]}
    assert raters == {"W1": "kept", "W2": "kept", "W3": "kept", "WBAD": "failed catch trial",
                      "WSKIP": "skipped catch trial"}
    # agreement: the kept raters agree on everything; ranking: wct2 > splice > strotss on afhq
    ag = {(r["dataset"], r["baseline"]): r for r in a.agreement.to_dict(orient="records")}
    assert ag["afhq", "all"]["pairwise_agreement"] == 1.0 and ag["afhq", "strotss"]["comparisons"] == 3
    rk = a.ranking[a.ranking["dataset"] == "afhq"]
    assert list(rk["method"]) == ["wct2", "splice", "strotss"] and list(rk["rank"]) == [1, 2, 3]


def test_one_worker_taking_every_hit_judges_each_comparison_once(study, tmp_path):
    # The old export put repeats of a comparison in separate HITs, so one worker could take them all.
    # Now each comparison sits in one HIT and MTurk gives a worker at most one assignment per HIT.
    write_mturk_results(study, tmp_path / "r.csv", [("EAGER", None, "good")])
    a = analyze(AnalysisSettings(results=[tmp_path / "r.csv"], key=_key(study)))
    assert a.dropped["repeat_judgments"] == 0 and a.dropped["votes_used"] == 9
    votes = a.comparisons[a.comparisons["dataset"] != "all"]
    assert votes["votes"].sum() == 9  # 9 comparisons, one vote each


def test_votes_table_round_trip_and_repeats(study, tmp_path):
    write_mturk_results(study, tmp_path / "r.csv", WORKERS)
    out = tmp_path / "votes.csv"
    a = analyze(AnalysisSettings(results=[tmp_path / "r.csv"], key=_key(study), export_votes=out))
    header, rows = csvsafe.read_csv_rows(out)
    assert header == VOTE_COLUMNS == ["rater", "dataset", "pair", "a", "b", "chosen", "correct"]
    assert len(rows) == 5 * 12  # rejected assignments are not votes; everything else is kept for re-analysis
    catch = [r for r in rows if r["correct"]]
    assert {r["correct"] for r in catch} == {CATCH_RIGHT} and {r["a"] for r in catch} <= {CATCH_RIGHT, CATCH_WRONG}
    assert any(r["pair"] == "=HYPERLINK(1)" for r in rows)  # guarded on disk, restored on reading
    b = analyze(AnalysisSettings(votes=out))
    assert b.comparisons.equals(a.comparisons) and b.ranking.equals(a.ranking)
    # a rater's second judgment of a comparison (sides swapped) is dropped and counted
    first = next(r for r in rows if r["rater"] == "W1" and not r["correct"])
    again = {**first, "a": first["b"], "b": first["a"], "chosen": first["b"] if first["chosen"] == first["a"] else
             first["a"]}  # fmt: skip
    csvsafe.write_dict_csv(tmp_path / "v2.csv", VOTE_COLUMNS, rows + [again])
    c = analyze_votes(read_votes(tmp_path / "v2.csv"))
    assert c.dropped["repeat_judgments"] == 1 and c.comparisons.equals(a.comparisons)


def _votes(path: Path, rows: list[list[str]]) -> Path:
    csvsafe.write_csv(path, VOTE_COLUMNS, rows)
    return path


def test_never_saw_a_catch_trial_is_dropped(tmp_path):
    rows = []
    for rater in ("R1", "R2", "R3"):
        for n in range(4):
            rows.append([rater, "afhq", f"p{n}", "splice", "wct2", "splice" if n % 2 or rater == "R1" else "wct2", ""])
        if rater != "R3":  # R3 never saw a catch trial
            rows.append([rater, "afhq", "p0", "right", "wrong", "right", "right"])
    v = read_votes(_votes(tmp_path / "v.csv", rows))
    a = analyze_votes(v)
    assert a.dropped["raters_without_vigilance"] == 1 and a.dropped["votes_used"] == 8
    keep_all = analyze_votes(v, min_vigilance=0)
    assert keep_all.dropped["raters_kept"] == 3 and keep_all.dropped["votes_used"] == 12
    no_catch = read_votes(_votes(tmp_path / "n.csv", [r for r in rows if not r[6]]))
    with pytest.raises(UserError, match="no vigilance .* --min-vigilance 0"):
        analyze_votes(no_catch)
    with pytest.raises(UserError, match=r"--method 'sa' is not among the compared methods of the votes: splice, wct2"):
        analyze_votes(v, method="sa")
    other = analyze_votes(v, method="wct2")  # the share of the other side
    assert other.comparisons.iloc[0]["baseline"] == "splice"
    assert other.comparisons.iloc[0]["share"] == pytest.approx(1 - a.comparisons.iloc[0]["share"])


@pytest.mark.parametrize("row, message", [
    (["R1", "afhq", "p1", "splice", "wct2", "strotss", ""], "line 2: chosen is 'strotss'"),
    (["R1", "afhq", "p1", "splice", "splice", "splice", ""], "line 2: a and b are both 'splice'"),
    (["R1", "afhq", "p1", "splice", "wct2", "splice", "x"], "line 2: correct is 'x'"),
    (["", "afhq", "p1", "splice", "wct2", "splice", ""], "line 2: the column 'rater' is empty"),
])  # fmt: skip
def test_votes_file_errors_name_the_line(tmp_path, row, message):
    with pytest.raises(UserError, match=message):
        read_votes(_votes(tmp_path / "v.csv", [row]))
    csvsafe.write_csv(tmp_path / "h.csv", ["rater", "dataset", "pair", "a", "b", "choice"], [row[:6]])
    with pytest.raises(UserError, match="lacks the column.*chosen, correct"):
        read_votes(tmp_path / "h.csv")


@pytest.mark.parametrize("line, fields", [
    ("r2,demo,giraffe_zebra,splice,strotss,splice", 6),  # the correct field cut off: was read as a normal vote
    ("r2,demo,giraffe_zebra,splice,strotss,,splice,,", 9),  # shifted: was read as no answer, the rest dropped
])  # fmt: skip
def test_a_row_with_the_wrong_number_of_fields_is_an_error_naming_its_line(tmp_path, line, fields):
    good = "r1,demo,giraffe_zebra,splice,strotss,splice,"
    path = tmp_path / "v.csv"
    path.write_text(f"{','.join(VOTE_COLUMNS)}\n{good}\n\n{good.replace('r1', 'r3')}\n{line}\n{good}\n")
    with pytest.raises(UserError, match=rf"^--votes {path} line 5 has {fields} fields, the header has 7; "):
        read_votes(path)
    # a header with an extra column: rows carry it too, and it is ignored
    path.write_text(f"{','.join(VOTE_COLUMNS)},note\n{good},ok\n")
    assert read_votes(path).iloc[0].to_dict() == dict(zip(VOTE_COLUMNS, good.split(",")))


def test_random_weights_notice_reaches_every_output(study, tmp_path):
    record = study / "private" / "export.json"
    data = json.loads(record.read_text())
    data.update(random_weights=True, random_weight_jobs=["splice/afhq/x"])
    record.write_text(json.dumps(data))
    write_mturk_results(study, tmp_path / "r.csv", WORKERS[:3])
    a = analyze(AnalysisSettings(results=[tmp_path / "r.csv"], key=_key(study), dest=tmp_path / "an",
                                 export_votes=tmp_path / "votes.csv"))
    notice = a.notice
    assert notice and notice.startswith("RANDOM WEIGHTS")
    assert Path(a.files["md"]).read_text().startswith(f"**{notice}**")
    assert notice in Path(a.files["tex"]).read_text()
    assert {r["random_weights"] for r in csvsafe.read_csv_rows(a.files["csv"])[1]} == {"True"}
    assert json.loads(Path(a.files["summary"]).read_text())["notice"] == notice
    assert figure(a)._suptitle.get_text() == notice
    # ...and it travels with the exported votes
    assert json.loads(provenance_path(tmp_path / "votes.csv").read_text())["random_weights"] is True
    assert analyze(AnalysisSettings(votes=tmp_path / "votes.csv")).notice == notice


def test_plot_fits_its_labels(tmp_path):
    rows = []
    for ds in ("wild-pairs", "mountains", "afhq"):
        for b in ("strotss", "wct2", "swapping-autoencoder"):
            for n in range(4):
                for r in range(3):
                    rows.append([f"R{r}", ds, f"p{n}", "splice", b, "splice" if (n + r) % 3 else b, ""])
    for r in range(3):
        rows.append([f"R{r}", "afhq", "p0", "right", "wrong", "right", "right"])
    a = analyze_votes(read_votes(_votes(tmp_path / "v.csv", rows)),
                      provenance={"random_weights": True})  # the longest title there is
    fig = figure(a)
    assert labels_outside(fig) == []
    texts = {t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))}
    assert {"% of votes for splice", "vs swapping-autoencoder", "the paper: item mean ± std"} <= texts


def test_cli_analyze_votes_json_and_mturk(study, tmp_path):
    write_mturk_results(study, tmp_path / "r.csv", WORKERS)
    run = lambda *args: subprocess.run([sys.executable, "-m", "splice", "study", "analyze", *map(str, args)],  # noqa
                                       capture_output=True, text=True, cwd=PROJECT, timeout=120)
    proc = run("--results", tmp_path / "r.csv", "--key", _key(study), "--export-votes", tmp_path / "votes.csv")
    assert proc.returncode == 0, proc.stderr
    assert "1 failed, 1 skipped and 0 never saw a catch trial" in proc.stderr
    assert "| wild | strotss | 100.0 |" in proc.stdout and "## Bradley-Terry ranking" in proc.stdout
    assert (study / "analysis" / "study_table.csv").is_file()
    proc = run("--votes", tmp_path / "votes.csv", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"comparisons", "naive", "dropped", "agreement", "ranking", "notice", "paper"} <= set(out)
    row = next(r for r in out["comparisons"] if (r["dataset"], r["baseline"]) == ("afhq", "strotss"))
    need = {"dataset", "method", "baseline", "share", "ci_low", "ci_high", "p_value", "p_holm", "votes", "raters",
            "items", "item_mean", "item_std"}  # fmt: skip
    assert need <= set(row) and row["method"] == "splice" and row["votes"] == 9
    assert out["dropped"]["raters_failed_vigilance"] == 1 and out["naive"]["note"].endswith("INDEPENDENT VOTES")
    assert (tmp_path / "analysis" / "study_summary.json").is_file()  # default --dest next to --votes
    bad = run("--votes", tmp_path / "votes.csv", "--method", "splice,wct2")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "one method name" in bad.stderr


def test_results_from_another_export_are_refused(study, tmp_path):
    write_mturk_results(study, tmp_path / "r.csv", WORKERS[:1])
    export_study(export_settings(tmp_path, dest=tmp_path / "other", seed=123))
    with pytest.raises(UserError, match="different exports"):
        analyze(AnalysisSettings(results=[tmp_path / "r.csv"], key=tmp_path / "other" / "private" / "answer_key.csv"))
    with pytest.raises(UserError, match="not a study results CSV"):
        analyze(AnalysisSettings(results=[_key(study)], key=_key(study)))


def test_crowd_style_answers_and_several_files(study, tmp_path):
    write_mturk_results(study, tmp_path / "a.csv", WORKERS[:2], crowd_style=True)
    write_mturk_results(study, tmp_path / "b.csv", WORKERS[2:4])
    a = analyze(AnalysisSettings(results=[tmp_path / "a.csv", tmp_path / "b.csv"], key=_key(study)))
    assert (_rows(a)["all", "strotss"]["wins"], a.dropped["raters_failed_vigilance"]) == (15, 1)
    # the same file twice: every slot is a duplicate row, not a repeat judgment
    b = analyze(AnalysisSettings(results=[tmp_path / "b.csv", tmp_path / "b.csv"], key=_key(study)))
    assert b.dropped["duplicate_rows"] == 24 and b.dropped["repeat_judgments"] == 0


def test_the_shipped_synthetic_example_runs_from_a_clone(tmp_path):
    from eval.study.simulate import example_votes

    example = PROJECT / "docs" / "study" / "example_votes_synthetic.csv"
    assert read_votes(example).equals(example_votes(0))  # python -m eval.study.simulate --example-votes ...
    proc = subprocess.run([sys.executable, "-m", "splice", "study", "analyze", "--votes", str(example), "--dest",
                           str(tmp_path / "an"), "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)["dropped"]
    assert (d["raters_failed_vigilance"], d["raters_without_vigilance"], d["repeat_judgments"]) == (2, 1, 1)
    assert (tmp_path / "an" / "study_plot.png").is_file() and not (example.parent / "analysis").exists()
