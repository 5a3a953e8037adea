"""`splice study serve`: the lab page's state, its HTTP checks, and results `analyze` can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.study import csvsafe
from eval.study.analyze import AnalysisSettings, analyze
from eval.study.lab import LabStudy, RequestError
from tests.support.study import BASELINES, OURS, Server, exported_study
from tests.support.study import answer_key as _key


@pytest.fixture
def study(tmp_path) -> Path:
    return exported_study(tmp_path)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_lab_hits_progress_and_resume(study):
    lab = LabStudy(study)
    hits = list(lab.hits)
    assert len(hits) == 3 and all(len(v) == 4 for v in lab.hits.values()) and lab.raters_per_hit == 3
    first = lab.next_trial("P01")
    assert lab.plan_for("P01") == hits and lab.progress("P01") == (0, 12)
    with pytest.raises(RequestError) as e:
        lab.record("P01", lab.hits[hits[0]][1].trial_id, "left")  # not the current trial
    assert e.value.status == 409
    with pytest.raises(RequestError):
        lab.record("../etc", first.trial_id, "left")
    with pytest.raises(RequestError):
        lab.record("P01", first.trial_id, "middle")
    with pytest.raises(RequestError) as e:
        lab.record("P01", "0" * 12, "left")
    assert e.value.status == 404
    for _ in range(5):
        t = lab.next_trial("P01")
        lab.record("P01", t.trial_id, "left")
    # a new server process resumes from lab/results.csv alone
    again = LabStudy(study)
    assert again.progress("P01") == (5, 12) and again.plan_for("P01") == hits
    assert again.next_trial("P01") == lab.next_trial("P01")


def test_lab_gives_each_hit_to_at_most_k_raters(study):
    lab = LabStudy(study)  # k = 3 (export_settings: --judgments 3)
    for rater in ("P01", "P02", "P03"):
        assert len(lab.plan_for(rater)) == 3
    assert lab.plan_for("P04") == [] and lab.next_trial("P04") is None and lab.progress("P04") == (0, 0)
    assert all(len(lab.raters_of(h)) == 3 for h in lab.hits)


def test_lab_cap_of_hits_per_rater(tmp_path):
    study = exported_study(tmp_path, max_hits_per_worker=1)
    lab = LabStudy(study)
    plans = [lab.plan_for(f"P{n}") for n in range(10)]
    assert [len(p) for p in plans] == [1] * 9 + [0]  # 3 HITs x 3 raters, one HIT each
    assert all(len(lab.raters_of(h)) == 3 for h in lab.hits)
    assert lab.plan_for("P0") != lab.plan_for("P1")  # the next rater gets the HIT with the fewest raters


def test_lab_results_are_analysable(study):
    lab = LabStudy(study)
    key = _key(study)
    for rater in ("P01", "P02"):
        while (t := lab.next_trial(rater)) is not None:
            k = key[t.trial_id]
            lab.record(rater, t.trial_id, k["correct_side"] if k["kind"] == "vigilance" else k["ours_side"])
    assert lab.progress("P01") == (12, 12) and lab.next_trial("P01") is None
    header, rows = csvsafe.read_csv_rows(study / "lab" / "results.csv")
    assert header[:3] == ["HITId", "AssignmentId", "WorkerId"] and "Input.trial_1_left" in header
    assert len(rows) == 24 and {r["WorkerId"] for r in rows} == {"P01", "P02"}
    a = analyze(AnalysisSettings(results=[study / "lab" / "results.csv"], key=study / "private" / "answer_key.csv"))
    t = {(r["dataset"], r["baseline"]): r for r in a.comparisons.to_dict(orient="records")}
    assert a.dropped["raters_failed_vigilance"] == 0 and a.dropped["repeat_judgments"] == 0
    assert (t["all", "strotss"]["wins"], t["all", "strotss"]["votes"]) == (10, 10)  # 5 pairs x 2 raters


@pytest.fixture
def server(study):
    s = Server(study)
    yield s
    s.close()


def test_http_flow_and_checks(server, study):
    before = _files(study)
    assert server.httpd.server_address[0] == "127.0.0.1"
    status, headers, body = server.request("GET", "/")
    assert status == 200 and b'name="rater"' in body and "default-src 'none'" in headers["Content-Security-Policy"]
    status, _, body = server.request("GET", "/trial?rater=P01")
    assert status == 200 and b"Question 1 of 12" in body
    for word in (OURS, *BASELINES, "afhq", "cat_to_dog", "original"):  # nothing on the page names a method
        assert word.encode() not in body.lower()
    t = server.lab.next_trial("P01")
    for image_id in (t.ref_a, t.ref_b, t.left, t.right):
        assert f"/images/{image_id}.png".encode() in body
        status, headers, img = server.request("GET", f"/images/{image_id}.png")
        assert status == 200 and headers["Content-Type"] == "image/png" and img[:4] == b"\x89PNG"
    status, headers, _ = server.request("POST", "/answer", {"rater": "P01", "trial": t.trial_id, "choice": "right"})
    assert status == 303 and headers["Location"] == "/trial?rater=P01"
    assert b"Question 2 of 12" in server.request("GET", "/trial?rater=P01")[2]
    # the same answer again (double submit, back button) is refused, nothing is written twice
    assert server.request("POST", "/answer", {"rater": "P01", "trial": t.trial_id, "choice": "left"})[0] == 409
    # traversal, unknown ids, other files of the study
    for path in ("/images/../private/answer_key.csv", "/images/%2e%2e/batch.csv", "/private/answer_key.csv",
                 "/batch.csv", "/images/0000000000000000.png", "/lab/results.csv", "/images/", "//etc/passwd"):
        assert server.request("GET", path)[0] == 404, path
    # bad input
    assert server.request("GET", "/trial?rater=../../x")[0] == 400
    assert server.request("POST", "/answer", {"rater": "a/b", "trial": t.trial_id, "choice": "left"})[0] == 400
    assert server.request("POST", "/answer", {"rater": "P01", "trial": "../x", "choice": "left"})[0] == 404
    assert server.request("POST", "/elsewhere", {"rater": "P01"})[0] == 404
    # DNS rebinding and cross-site posts
    assert server.request("GET", "/", headers={"Host": "evil.example:80"})[0] == 403
    nxt = server.lab.next_trial("P01")
    assert server.request("POST", "/answer", {"rater": "P01", "trial": nxt.trial_id, "choice": "left"},
                          headers={"Origin": "http://evil.example"})[0] == 403
    # only lab/results.csv was written: one row for the one accepted answer
    assert _files(study) - before == {"lab/results.csv"}
    assert len(csvsafe.read_csv_rows(study / "lab" / "results.csv")[1]) == 1


def test_fixed_rater(study):
    s = Server(study, rater="P07")
    try:
        status, headers, _ = s.request("GET", "/")
        assert status == 303 and headers["Location"] == "/trial?rater=P07"
        assert s.request("GET", "/trial?rater=P08")[0] == 403
    finally:
        s.close()
