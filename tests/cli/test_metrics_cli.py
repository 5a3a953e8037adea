"""`splice metrics`, `splice score --metrics NAME,...`, `splice table --metric NAME` and `splice study agreement`
from the command line (random or no weights, tiny inputs)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from eval.scorers import SPECS
from splice.cli import cli
from splice.core.errors import ConfigError
from tests.support.study import build_store, export_settings, write_mturk_results


@pytest.fixture
def offline(tmp_path, monkeypatch):
    from tests.support.measures import offline

    return offline(tmp_path, monkeypatch)


def test_metrics_lists_every_metric_with_direction_and_readiness(offline):
    r = CliRunner().invoke(cli, ["metrics", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [x["name"] for x in rows] == list(SPECS)
    by = {x["name"]: x for x in rows}
    assert by["lab_emd"]["ready"] and not by["lpips_vgg"]["ready"] and not by["vit"]["ready"]
    assert [n["higher_is_better"] for n in by["vit"]["numbers"]] == [False, False, True]
    assert by["clip"]["numbers"][0]["compares"] == "appearance" and by["dists"]["numbers"][0]["compares"] == "structure"
    text = CliRunner().invoke(cli, ["metrics", "-a"])
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0].split()[:2] == ["METRIC", "STATUS"] and len(lines) >= len(SPECS) + 1
    row = next(line for line in lines if line.startswith("lpips_vgg "))
    assert "NOT READY" in row and "lpips_vgg ↓" in row and "aligned structure" in row
    assert "vgg16-397923af.pth" in text.stdout  # -a: how to fix it
    assert "1/11 ready" in text.stderr


def test_metrics_with_names_shows_options_and_the_cache_key(offline):
    r = CliRunner().invoke(cli, ["metrics", "gram", "lab_emd", "--allow-random-weights", "--preset", "smoke"])
    assert r.exit_code == 0, r.output
    assert "max_side" in r.stdout and "128" in r.stdout and "cache key " in r.stdout and "[RANDOM WEIGHTS]" in r.stdout
    bad = CliRunner().invoke(cli, ["metrics", "lab_emb"])
    assert isinstance(bad.exception, ConfigError) and "did you mean lab_emd" in str(bad.exception)


def test_score_any_metric_twice_then_table_then_agreement(tmp_path):
    """A synthetic study store scored with two registry metrics from the command line (the second run makes no
    model call), tabulated, exported as a study, judged by simulated workers, and compared with the votes."""
    run = build_store(tmp_path)
    args = ["score", "--out", str(run), "--metrics", "lab_emd,dino", "--preset", "smoke", "--metric-args",
            "dino.weights=random", "--metric-args", "image_size=32", "--cache-dir", str(tmp_path / "c"),
            "--json"]  # fmt: skip
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    s1 = json.loads(first.stdout)
    assert s1["scored"] == {"dino": 14, "lab_emd": 14} and s1["random_weights"] is True
    assert "dino: 14 scored (14 new), 0 up to date" in first.stderr
    second = CliRunner().invoke(cli, args)
    assert json.loads(second.stdout)["model_calls"] == {"dino": 0, "lab_emd": 0}
    bad = CliRunner().invoke(cli, ["score", "--out", str(run), "--metrics", "lpip"])
    assert isinstance(bad.exception, ConfigError) and "unknown metric(s) lpip" in str(bad.exception)

    t = CliRunner().invoke(cli, ["table", "--out", str(run), "--metric", "lab_emd", "--metric", "dino"])
    assert t.exit_code == 0, t.output
    assert "Lab colour EMD to the appearance image ↓ (common pairs)" in t.stdout
    lab, dino = t.stdout.split("\n\n> ", 1)  # the Lab EMD table (no model: no warning), then DINO's (random)
    assert not lab.startswith(">") and "DINO CLS cosine to the appearance image ↑" in dino
    assert dino.startswith("**RANDOM WEIGHTS:") and "the metric's model had random weights" in dino

    from eval.study.export import export_study

    s = export_settings(tmp_path)
    export_study(s)
    results = tmp_path / "results.csv"
    write_mturk_results(s.dest, results, [("W1", None, "good"), ("W2", None, "good"), ("W3", None, "bad")])
    votes = tmp_path / "votes.csv"
    an = CliRunner().invoke(cli, ["study", "analyze", "--results", str(results), "--key",
                                  str(s.dest / "private" / "answer_key.csv"), "--export-votes",
                                  str(votes)])  # fmt: skip
    assert an.exit_code == 0, an.output
    ag = CliRunner().invoke(cli, ["study", "agreement", "--out", str(run), "--votes", str(votes), "--n-boot", "200",
                                  "--json"])  # fmt: skip
    assert ag.exit_code == 0, ag.output
    out = json.loads(ag.stdout)
    assert {r["metric"] for r in out["rows"]} == {"lab_emd", "dino"}
    assert {d["dataset"] for d in out["datasets"]} == {"afhq", "wild", "all"}
    assert out["dropped"]["raters_failed_vigilance"] == 1 and out["resampled"].startswith("comparisons")
    assert (tmp_path / "analysis" / "agreement.csv").is_file() and "raters split on 0%" in ag.stderr
    none = CliRunner().invoke(cli, ["study", "agreement", "--out", str(run)])
    assert isinstance(none.exception, ConfigError) and "--votes" in str(none.exception)


def test_metrics_takes_all_records_and_table_numbers(offline):
    """`all` is every record, a table number names its record (matched_iou -> iou, cosine -> vit), anything else
    is one line listing both kinds of names."""
    names = lambda r: [x["name"] for x in json.loads(r.stdout)]  # noqa: E731
    assert names(CliRunner().invoke(cli, ["metrics", "all", "--json"])) == list(SPECS)
    assert names(CliRunner().invoke(cli, ["metrics", "matched_iou", "cosine", "vit", "--json"])) == ["iou", "vit"]
    r = CliRunner().invoke(cli, ["metrics", "lpipz"])
    assert isinstance(r.exception, ConfigError)
    assert str(r.exception).startswith("unknown metric 'lpipz'; did you mean lpips_vgg? name a record (iou, panoptic")
    assert "table numbers (matched_iou, pixel_accuracy, structure, appearance, cosine) or all" in str(r.exception)
    r = CliRunner().invoke(cli, ["metrics", "lab_emd"])
    assert r.exit_code == 0 and r.stderr.strip().endswith("1/1 ready")  # no "fix the others" when none is left


def test_several_metrics_as_csv_are_one_table(tmp_path):
    """`--format csv` with several --metric: one header, every metric's rows (its `metric` column), the random
    weights comment of each named by its metric, so pandas reads it in one call."""
    import io

    import pandas as pd

    from tests.support.store import write_job

    root = tmp_path / "r"
    for method in ("a", "b"):
        write_job(root, "demo", "p1", method, random_weights=method == "b", metrics={
            "lab_emd": {"metric": "lab_emd", "protocol_version": "1", "value": 3.0, "random_weights": False},
            "gram": {"metric": "gram", "protocol_version": "1", "value": 0.1, "random_weights": False}})
    r = CliRunner().invoke(cli, ["table", "--out", str(root), "-m", "lab_emd", "-m", "gram", "-f", "csv"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[:2] == ["# lab_emd: RANDOM WEIGHTS: method b ran with random weights; these numbers mean nothing.",
                         "# gram: RANDOM WEIGHTS: method b ran with random weights; these numbers mean nothing."]
    assert sum(line.startswith("dataset,") for line in lines) == 1
    df = pd.read_csv(io.StringIO(r.stdout), comment="#")
    assert list(df["metric"]) == ["lab_emd", "lab_emd", "gram", "gram"] and list(df["method"]) == ["a", "b"] * 2
