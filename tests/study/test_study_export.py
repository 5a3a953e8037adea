"""`splice study export`: trials, balance, reproducibility, alignment, leaks, CSV guarding."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval.study import csvsafe, design
from eval.study.design import Item
from eval.study.export import export_study
from eval.study.images import png_chunk_types
from eval.study.question import QUESTION, batch_header
from splice.core.errors import UserError
from tests.support.study import BASELINES, CONFIG, OURS, PAIRS, SECRET_TEXT, build_store, export_settings

PROJECT = Path(__file__).resolve().parents[2]


def _rows(path: Path) -> list[dict[str, str]]:
    return csvsafe.read_csv_rows(path)[1]


@pytest.fixture
def study(tmp_path) -> Path:
    build_store(tmp_path)
    export_study(export_settings(tmp_path))
    return tmp_path / "study"


def test_export_layout_and_counts(study):
    batch = _rows(study / "batch.csv")
    key = _rows(study / "private" / "answer_key.csv")
    header = csvsafe.read_csv_rows(study / "batch.csv")[0]
    assert header == batch_header(4)  # at most 5 per HIT; 3 items + 1 catch trial spread 9 items evenly
    assert header[0] == "hit" and "set" not in header
    # 5 pairs x 2 baselines - 1 failed wct2 job = 9 comparisons, each in exactly ONE trial of ONE HIT
    comp = [k for k in key if k["kind"] == "comparison"]
    vig = [k for k in key if k["kind"] == "vigilance"]
    per_item = Counter((k["dataset"], k["pair_id"], k["baseline"]) for k in comp)
    assert len(comp) == 9 and set(per_item.values()) == {1}
    assert ("wild", "giraffe_zebra", "wct2") not in per_item
    # every HIT fills all 4 slots: 3 items and 1 catch trial
    by_hit = Counter(k["hit"] for k in key)
    assert len(batch) == len(by_hit) == 3 and set(by_hit.values()) == {4}
    assert all(sum(k["hit"] == h and k["kind"] == "vigilance" for k in key) == 1 for h in by_hit)
    assert len(vig) == 3
    # the batch rows and the key agree slot by slot
    for row in batch:
        for k in range(1, 5):
            rec = next(r for r in key if r["trial_id"] == row[f"trial_{k}_id"])
            assert rec["hit"] == row["hit"] and rec["slot"] == str(k)
            for f in ("ref_a", "ref_b", "left", "right"):
                assert row[f"trial_{k}_{f}"] == f"https://example.org/s1/images/{rec[f]}.png"
                assert (study / "images" / f"{rec[f]}.png").is_file()


def test_k_assignments_are_written_where_the_requester_needs_them(study):
    # export_settings uses --judgments 3: 3 HITs x 3 assignments, 9 comparisons x 3 judgments
    readme = (study / "README.md").read_text()
    assert "**Publish every HIT with 3 assignments**" in readme and "MaxAssignments=3" in readme
    assert "27 judgments in all, 9 assignments" in readme and "Cap of HITs" not in readme
    record = json.loads((study / "private" / "export.json").read_text())
    assert record["assignments_per_hit"] == 3 and record["max_hits_per_worker"] is None
    assert record["counts"]["judgments"] == 27 and record["export_version"] == "2"


def test_no_worker_can_judge_a_comparison_twice(study):
    # MTurk gives one worker at most one assignment of a HIT. A worker who takes every HIT of the batch
    # (the worst case of the old design, where repeats sat in separate HITs) meets each comparison once.
    key = _rows(study / "private" / "answer_key.csv")
    batch = _rows(study / "batch.csv")
    seen = Counter()
    for row in batch:  # one assignment of every HIT
        for k in range(1, 5):
            rec = next(r for r in key if r["trial_id"] == row[f"trial_{k}_id"])
            if rec["kind"] == "comparison":
                seen[rec["dataset"], rec["pair_id"], rec["baseline"]] += 1
    assert len(seen) == 9 and max(seen.values()) == 1


def test_cap_of_hits_per_worker(tmp_path):
    build_store(tmp_path)
    export_study(export_settings(tmp_path, max_hits_per_worker=2))
    study = tmp_path / "study"
    assert "Please do at most 2 of these tasks" in (study / "template.html").read_text()
    assert "Cap of HITs per worker: 2" in (study / "README.md").read_text()
    assert json.loads((study / "private" / "export.json").read_text())["max_hits_per_worker"] == 2


def test_dest_inside_the_run_store_is_refused(tmp_path):
    run = build_store(tmp_path)
    for dest in (run, run / "study", run / "report" / "study"):
        with pytest.raises(UserError, match=r"inside the run store .* must not travel with them"):
            export_study(export_settings(tmp_path, dest=dest))
        assert not (dest / "private").exists()
    # the command line refuses before it creates anything
    proc = subprocess.run([sys.executable, "-m", "splice", "study", "export", "--out", str(run), "--baselines",
                           "strotss", "--base-url", "https://example.org/x", "--dest", str(run / "shared" / "s")],
                          capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "inside the run store" in proc.stderr
    assert not (run / "shared").exists()


def test_left_right_balanced_in_plan():
    items = [Item(ds, f"p{i}", b) for ds in ("a", "b") for i in range(7) for b in ("x", "y", "z")]
    vig = {("a", f"p{i}"): ["ours"] for i in range(7)}
    for seed in (11, 12, 13):
        plan = design.plan_study(items, vig, judgments=5, vigilance=0.1, trials_per_hit=10, seed=seed)
        comp = [t for t in plan.trials if t.kind == "comparison"]
        assert len(comp) == len(items) and {t.item for t in comp} == set(items)
        total = Counter(t.side for t in comp)
        assert abs(total["left"] - total["right"]) <= 1
        for stratum in {(it.dataset, it.baseline) for it in items}:
            sides = Counter(t.side for t in comp if (t.item.dataset, t.item.baseline) == stratum)
            assert abs(sides["left"] - sides["right"]) <= 1
        vsides = Counter(t.side for t in plan.trials if t.kind == "vigilance")
        assert abs(vsides["left"] - vsides["right"]) <= 1
        # at least one catch trial in every HIT; HITs with one item less get one more catch trial:
        # 42 items, at most 9 per HIT -> 5 HITs of 10 (9+1, 9+1, 8+2, 8+2, 8+2)
        assert all(sum(t.kind == "vigilance" for t in h.trials) >= 1 for h in plan.hits)
        assert all(len(h.trials) == 10 for h in plan.hits) and len(plan.hits) == 5
        assert plan.counts()["vigilance_trials"] == 8
        assert plan.counts()["assignments"] == 25 and plan.counts()["judgments"] == 42 * 5
    # the order is not a fixed pattern: another seed puts other items on the left
    left = lambda seed: {t.item for t in design.plan_study(items, vig, seed=seed).trials  # noqa: E731
                         if t.kind == "comparison" and t.side == "left"}
    assert left(1) != left(2)


def test_plan_reproducible_from_seed():
    items = [Item("a", f"p{i}", b) for i in range(6) for b in ("x", "y")]
    vig = {("a", f"p{i}"): ["ours", "x"] for i in range(6)}
    key = lambda p: [(h.hit_id, [(t.trial_id, t.kind, t.side, t.item, t.pair, t.other) for t in h.trials])  # noqa
                     for h in p.hits]
    a = design.plan_study(items, vig, judgments=5, seed=3)
    b = design.plan_study(items, vig, judgments=5, seed=3)
    c = design.plan_study(items, vig, judgments=5, seed=4)
    assert key(a) == key(b)
    assert [t.side for t in a.trials] != [t.side for t in c.trials]


def test_export_reproducible_from_seed(tmp_path):
    build_store(tmp_path)
    export_study(export_settings(tmp_path, dest=tmp_path / "s1"))
    export_study(export_settings(tmp_path, dest=tmp_path / "s2"))
    export_study(export_settings(tmp_path, dest=tmp_path / "s3", seed=8))
    read = lambda d, n: (tmp_path / d / n).read_bytes()  # noqa: E731
    for name in ("batch.csv", "template.html", "private/answer_key.csv"):
        assert read("s1", name) == read("s2", name)
    assert read("s1", "batch.csv") != read("s3", "batch.csv")
    imgs = lambda d: {p.name: p.read_bytes() for p in (tmp_path / d / "images").iterdir()}  # noqa: E731
    assert imgs("s1") == imgs("s2")
    assert set(imgs("s1")) != set(imgs("s3"))


def test_no_method_or_file_name_reaches_raters(study, tmp_path):
    forbidden = {OURS, *BASELINES, *PAIRS, *(p for ps in PAIRS.values() for p in ps), *CONFIG.values(),
                 "structure_original", "appearance_original", ".png.", "runs/", "demo", SECRET_TEXT, "hyperlink"}
    rater_facing = [study / "batch.csv", study / "template.html", *sorted((study / "images").iterdir())]
    assert len(rater_facing) > 10
    for path in rater_facing:
        assert re.fullmatch(r"[0-9a-f]{16}\.png|batch\.csv|template\.html", path.name)
        blob = path.read_bytes().lower()
        for word in forbidden:
            assert word.lower().encode() not in blob, f"{word!r} leaks into {path.name}"
    # ...while the private key does name them
    key_text = (study / "private" / "answer_key.csv").read_text()
    assert OURS in key_text and "strotss" in key_text and "cat_to_dog_001" in key_text


def test_images_are_bare_pngs_and_a_is_grayscale(study):
    key = _rows(study / "private" / "answer_key.csv")
    for p in (study / "images").iterdir():
        assert png_chunk_types(p.read_bytes()) == ["IHDR", "IDAT", "IEND"]
        with Image.open(p) as im:
            assert not im.info.get("Comment") and "exif" not in im.info
    for k in key:
        with Image.open(study / "images" / f"{k['ref_a']}.png") as a:
            assert a.mode == "L"
        with Image.open(study / "images" / f"{k['left']}.png") as left:
            assert left.mode == "RGB"


def _img(study: Path, image_id: str) -> np.ndarray:
    with Image.open(study / "images" / f"{image_id}.png") as im:
        return np.asarray(im.convert("RGB"), dtype=float)


def test_outputs_aligned_through_recorded_geometry(study):
    # "splice" returns the structure image, "strotss" a 64x64 centre crop of it: once both are cut
    # to the common box they show the same pixels, and image A is exactly their grayscale.
    key = _rows(study / "private" / "answer_key.csv")
    rows = [k for k in key if k["kind"] == "comparison" and k["baseline"] == "strotss"]
    assert rows
    for k in rows:
        left, right, a = _img(study, k["left"]), _img(study, k["right"]), _img(study, k["ref_a"])
        assert left.shape == right.shape == a.shape == (64, 64, 3)
        assert np.abs(left - right).mean() < 2.0
        gray = np.asarray(Image.fromarray(left.astype(np.uint8)).convert("L"), dtype=float)
        assert np.abs(gray - a[..., 0]).mean() < 1.0
    wct = [k for k in key if k["kind"] == "comparison" and k["baseline"] == "wct2"]
    for k in wct:  # a full-frame 48x40 stretch: same aspect as the 96x80 structure image
        assert _img(study, k["left"]).shape == _img(study, k["ref_a"]).shape == (53, 64, 3)


def test_vigilance_right_answer_is_a_in_colour(study):
    key = _rows(study / "private" / "answer_key.csv")
    vig = [k for k in key if k["kind"] == "vigilance"]
    assert {k["correct_side"] for k in vig} == {"left", "right"}
    assert {k["other_method"] for k in vig} <= {OURS, *BASELINES} and len({k["other_method"] for k in vig}) > 1
    for k in vig:
        right_answer = _img(study, k[k["correct_side"]])
        wrong = _img(study, k["left" if k["correct_side"] == "right" else "right"])
        a = _img(study, k["ref_a"])[..., 0]
        gray = np.asarray(Image.fromarray(right_answer.astype(np.uint8)).convert("L"), dtype=float)
        assert np.abs(gray - a).mean() < 1.0
        assert (k["other_dataset"], k["other_pair_id"]) != (k["dataset"], k["pair_id"])
        assert wrong.shape == right_answer.shape


def test_template_reads_every_batch_column(study):
    html = (study / "template.html").read_text()
    assert QUESTION in html
    header = csvsafe.read_csv_rows(study / "batch.csv")[0]
    placeholders = set(re.findall(r"\$\{([a-z0-9_]+)\}", html))
    assert placeholders == {c for c in header if c not in ("hit", "set", *(f"trial_{k}_id" for k in range(1, 5)))}
    for k in range(1, 5):
        assert html.count(f'name="trial_{k}"') == 2
    assert "<crowd-form" in html


def test_formula_injection_guarded():
    for bad in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "=HYPERLINK(\"http://x\")"):
        assert csvsafe.guard_cell(bad) == "'" + bad
        assert csvsafe.unguard_cell(csvsafe.guard_cell(bad)) == bad
    for ok in ("abc", "1.5", "'quoted", "", "https://x/y.png"):
        assert csvsafe.guard_cell(ok) == ok and csvsafe.unguard_cell(ok) == ok
    text = csvsafe.csv_text(["a", "=b"], [["=cmd|' /C calc'!A0", 3], ["@x", None]])
    cells = list(csv.reader(io.StringIO(text)))
    assert cells == [["a", "'=b"], ["'=cmd|' /C calc'!A0", "3"], ["'@x", ""]]


def test_export_guards_every_cell(study):
    # the pair id "=HYPERLINK(1)" lands in the answer key: guarded on disk, restored on reading
    raw = (study / "private" / "answer_key.csv").read_text()
    assert "'=HYPERLINK(1)" in raw
    for path in (study / "batch.csv", study / "private" / "answer_key.csv"):
        for row in csv.reader(io.StringIO(path.read_text())):
            assert not any(c.startswith(csvsafe.DANGEROUS_PREFIXES) for c in row)
    assert any(r["pair_id"] == "=HYPERLINK(1)" for r in _rows(study / "private" / "answer_key.csv"))


def test_export_user_errors(tmp_path):
    build_store(tmp_path, extra_variant=True)
    with pytest.raises(UserError, match=r"wct2.*2 job variants.*--variant wct2="):
        export_study(export_settings(tmp_path))
    with pytest.raises(UserError, match="contains the method name 'splice'"):
        export_study(export_settings(tmp_path, base_url="https://example.org/splice/images",
                                     variants={"wct2": "s0-cccc55556666"}))
    with pytest.raises(UserError, match="no finished job of method 'nope'"):
        export_study(export_settings(tmp_path, baselines=["nope"]))
    export_study(export_settings(tmp_path, variants={"wct2": "s1-cccc55556666"}))
    with pytest.raises(UserError, match="already holds a study export"):
        export_study(export_settings(tmp_path, variants={"wct2": "s1-cccc55556666"}))
    export_study(export_settings(tmp_path, variants={"wct2": "s1-cccc55556666"}, force=True, seed=99))
    key = _rows(tmp_path / "study" / "private" / "answer_key.csv")
    used = {k["image"] for k in ({"image": r[f]} for r in key for f in ("ref_a", "ref_b", "left", "right"))}
    assert {p.stem for p in (tmp_path / "study" / "images").iterdir()} == used  # old images were removed


def test_cli_export_and_one_line_error(tmp_path):
    run = build_store(tmp_path)
    args = [sys.executable, "-m", "splice", "study", "export", "--out", str(run), "--baselines", "strotss,wct2",
            "--judgments", "2", "--vigilance", "0.2", "--seed", "1", "--base-url", "https://example.org/x",
            "--trials-per-hit", "4", "--size", "64", "--dest", str(tmp_path / "st"), "--json"]
    ok = subprocess.run(args, capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert '"comparison_trials": 9' in ok.stdout and "study written to" in ok.stderr
    assert "PUBLISH EVERY HIT WITH 2 ASSIGNMENTS" in ok.stderr and '"assignments_per_hit": 2' in ok.stdout
    bad = subprocess.run(args[:-3] + ["--dest", str(tmp_path / "st2"), "--datasets", "nowhere"], capture_output=True,
                         text=True, cwd=PROJECT, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    assert "nowhere" in bad.stderr and "afhq" in bad.stderr
