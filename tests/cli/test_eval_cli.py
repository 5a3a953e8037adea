"""`splice score --out`, `splice score iou` and `splice table` from the command line (random weights)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from splice.cli import cli
from splice.core.errors import UserError
from splice.core.geometry import Geometry
from splice.core.imageio import sha256_file
from tests.support import PROJECT
from tests.support.images import make_image
from tests.support.store import add_job, iou_rec

DET = ["--detector", "maskrcnn_resnet50_fpn", "--detector-weights", "random", "--allow-random-weights",
       "--detector-size", "64", "--score-threshold", "0.2", "--device", "cpu"]  # fmt: skip


def run_cli(args, tmp_path):
    env = {**os.environ, "SPLICE_OFFLINE": "1", "SPLICE_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "splice", *args], capture_output=True, text=True, cwd=PROJECT, env=env,
                          timeout=120)  # fmt: skip


def test_score_iou_single_pair(tmp_path):
    s, o = tmp_path / "s.png", tmp_path / "o.png"
    make_image(96, 80, seed=1).save(s)
    make_image(64, 64, seed=1).save(o)
    args = ["score", "iou", "--structure", str(s), "--output", str(o), "--geometry", "stretch 64x64",
            "--cache-dir", str(tmp_path / "c"), *DET, "--json"]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert rec["metric"] == "iou" and rec["segmenter"] == "maskrcnn" and rec["random_weights"] is True
    assert rec["aligned"] == "geometry"
    assert rec["geometry"]["kind"] == "stretch" and rec["geometry"]["output"] == [64, 64]
    assert rec["n_structure"] > 0 and 0.0 <= rec["iou"] <= 1.0
    assert rec["images"]["output"]["sha256"] == sha256_file(o)
    assert "RANDOM WEIGHTS" in r.stderr
    # the old shorthand without a size and JSON geometry are not the text form: one line that says what is
    at = args.index("--geometry") + 1
    bad = CliRunner().invoke(cli, args[:at] + ["center-crop"] + args[at + 1 :])
    assert isinstance(bad.exception, UserError) and "center-crop needs a size" in str(bad.exception)


def _store(tmp_path):
    root = tmp_path / "runs" / "demo"
    inputs = tmp_path / "in"
    inputs.mkdir()
    s, a = inputs / "s.png", inputs / "a.png"
    make_image(96, 80, seed=1).save(s)
    make_image(64, 64, seed=2).save(a)
    add_job(root, "demo", "p1", "identity", structure=str(s), appearance=str(a), output=make_image(96, 80, seed=1),
            geometry=Geometry.identity((96, 80)).to_dict())
    add_job(root, "demo", "p1", "squash", structure=str(s), appearance=str(a), output=make_image(64, 64, seed=1),
            geometry=Geometry.stretch((96, 80), (64, 64)).to_dict())
    return root


VIT = ["--backbone", "vit_small_patch16_224", "--weights", "random"]


def test_score_run_then_table(tmp_path):
    root = _store(tmp_path)
    args = ["score", "--out", str(root), "--metrics", "iou,vit", *VIT, "--cache-dir", str(tmp_path / "c"),
            "--json", *DET]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    assert first["scored"] == {"iou": 2, "panoptic": 0, "vit": 2} and first["random_weights"] is True
    assert first["model_calls"]["iou"] == 3  # the identity output equals its structure image: one detection
    assert first["model_calls"]["vit"] == 4  # structure, appearance, squashed structure, squashed output
    assert "iou: 2 scored (2 new), 0 up to date, 3 model calls" in r.stderr
    assert "layout segmenter: maskrcnn (demo)" in r.stderr
    rec = json.loads((root / "outputs/demo/p1/identity/s0-abc123/metrics/vit.json").read_text())
    assert rec["structure_distance"] == 0.0 and rec["aligned"] == "identity" and rec["random_weights"] is True
    iou = json.loads((root / "outputs/demo/p1/identity/s0-abc123/metrics/iou.json").read_text())
    assert iou["excluded"] or iou["iou"] == 1.0
    r2 = CliRunner().invoke(cli, args)
    second = json.loads(r2.stdout)
    assert second["skipped"] == {"iou": 2, "panoptic": 0, "vit": 2}
    assert second["model_calls"] == {"iou": 0, "panoptic": 0, "vit": 0}

    t = run_cli(["table", "--out", str(root), "--metric", "structure"], tmp_path)
    assert t.returncode == 0, t.stderr
    lines = t.stdout.splitlines()
    assert lines[0].startswith("> **RANDOM WEIGHTS")
    assert "| demo | identity | **0.0000 ± –** | 1 | 0.0000 ± – | 1 | – | 0 | 0 |" in lines


def test_score_vit_with_the_record_equals_run_scoring(tmp_path):
    """`splice score vit --record` aligns exactly as run scoring does: the same numbers, recomputed (another
    cache), for an output that is a stretch of the structure image."""
    root = _store(tmp_path)
    r = CliRunner().invoke(cli, ["score", "--out", str(root), "--metrics", "vit", *VIT, "--cache-dir",
                                 str(tmp_path / "c1"), "--allow-random-weights"])  # fmt: skip
    assert r.exit_code == 0, r.output
    job = root / "outputs/demo/p1/squash/s0-abc123"
    stored = json.loads((job / "metrics/vit.json").read_text())
    one = CliRunner().invoke(cli, ["score", "vit", "--record", str(job / "record.json"), *VIT, "--json",
                                   "--cache-dir", str(tmp_path / "c2"), "--allow-random-weights"])  # fmt: skip
    assert one.exit_code == 0, one.output
    single = json.loads(one.stdout)
    assert single["aligned"] == "geometry" and stored["aligned"] == "geometry"
    for key in ("structure_distance", "appearance_distance", "appearance_cosine"):
        assert abs(single[key] - stored[key]) <= 1e-6, key
    assert single["images"] == stored["images"] | {"output": {"path": str(job / "output.png"),
                                                              "sha256": stored["images"]["output"]["sha256"]}}
    # the same geometry in its text form gives the same numbers
    geo = CliRunner().invoke(cli, ["score", "vit", "--structure", stored["images"]["structure"]["path"],
                                   "--appearance", stored["images"]["appearance"]["path"], "--output",
                                   str(job / "output.png"), "--geometry", "stretch 64x64", *VIT, "--json",
                                   "--cache-dir", str(tmp_path / "c2"), "--allow-random-weights"])  # fmt: skip
    assert geo.exit_code == 0, geo.output
    assert json.loads(geo.stdout)["structure_distance"] == pytest.approx(stored["structure_distance"], abs=1e-6)
    both = CliRunner().invoke(cli, ["score", "vit", "--record", str(job / "record.json"), "--geometry", "native"])
    assert isinstance(both.exception, UserError) and "not both" in str(both.exception)


def test_panoptic_scoring_rescoring_and_the_table(tmp_path):
    from tests.support.panoptic import save_tiny_mask2former

    pytest.importorskip("transformers")
    tiny = save_tiny_mask2former(tmp_path / "m2f")
    root = _store(tmp_path)
    add_job(root, "demo", "p1", "broken", status="failed")
    args = ["score", "--out", str(root), "--metrics", "iou", "--segmenter", "panoptic", "--panoptic-model",
            "mask2former", "--panoptic-weights", str(tiny), "--panoptic-size", "64", "--cache-dir",
            str(tmp_path / "c"), "--json"]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["scored"]["panoptic"] == 2 and s["segmenters"] == {"demo": "panoptic"} and not s["random_weights"]
    job = root / "outputs/demo/p1/squash/s0-abc123"
    rec = json.loads((job / "metrics/panoptic.json").read_text())
    assert rec["segmenter"] == "panoptic" and rec["model"] == "mask2former" and rec["weights"]["sha256"]
    assert 0.0 <= rec["iou"] <= 1.0 and 0.0 <= rec["pixel_accuracy"] <= 1.0 and rec["aligned"] == "geometry"

    # overwrite one output with another image: only that job is rescored, and the summary says why
    make_image(64, 64, seed=9).save(job / "output.png")
    r = CliRunner().invoke(cli, args[:-1])
    assert r.exit_code == 0, r.output
    assert "panoptic: 1 scored (1 output image changed), 1 up to date, 1 model calls" in r.stderr

    t = run_cli(["table", "--out", str(root), "--metric", "iou", "--format", "csv"], tmp_path)
    assert t.returncode == 0, t.stderr
    rows = list(csv.DictReader(t.stdout.splitlines()))
    assert list(rows[0])[:12] == ["dataset", "method", "n_common", "mean_common", "std_common", "n_all", "mean_all",
                                  "diff_vs_reference", "diff_ci_low", "diff_ci_high", "excluded", "failed"]
    assert {r["method"]: (r["n_common"], r["segmenter"], r["failed"]) for r in rows} == {
        "broken": ("0", "panoptic", "1"), "identity": ("0", "panoptic", "0"), "squash": ("0", "panoptic", "0")}
    # without the failed method, the other two share their pair
    t = run_cli(["table", "--out", str(root), "--metric", "iou", "--format", "csv", "--methods", "identity,squash",
                 "--reference", "identity"], tmp_path)  # fmt: skip
    rows = list(csv.DictReader(t.stdout.splitlines()))
    assert [(r["method"], r["n_common"], r["reference"]) for r in rows] == [("identity", "1", "identity"),
                                                                           ("squash", "1", "identity")]
    sq = rows[1]
    assert float(sq["diff_vs_reference"]) == pytest.approx(float(sq["mean_common"]) - float(rows[0]["mean_common"]))

    # an ok job whose output is gone is reported by name, and the exit code says not everything was scored
    (job / "output.png").unlink()
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1
    assert "missing output: squash/demo/p1/s0-abc123: its record says ok but the output file is gone" in r.stderr


def test_table_formats_and_errors(tmp_path):
    root = tmp_path / "r"
    add_job(root, "afhq", "a", "splice", iou=iou_rec(0.25))
    add_job(root, "afhq", "b", "splice", iou=iou_rec(0.75))
    r = run_cli(["table", "--out", str(root), "--format", "csv"], tmp_path)
    assert r.returncode == 0
    assert r.stdout.splitlines()[1] == "afhq,splice,2,0.5,0.353553,2,0.5,,,,0,0,0.353553,0,maskrcnn,splice,False,0,iou"
    p = CliRunner().invoke(cli, ["table", "--out", str(root), "--paper"])
    assert p.exit_code == 0 and "afhq: the paper has no Table 2 row for AFHQ" in p.stdout and "| paper |" in p.stdout
    bad = run_cli(["table", "--out", str(tmp_path / "missing")], tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "run store not found" in bad.stderr
    bad = run_cli(["score", "--out", str(tmp_path / "missing"), "--metrics", "iou"], tmp_path)
    assert bad.returncode == 2 and "run store not found" in bad.stderr and "Traceback" not in bad.stderr
    bad = CliRunner().invoke(cli, ["table", "--out", str(root), "--reference", "nobody"])
    assert isinstance(bad.exception, UserError) and "--reference nobody: no such method" in str(bad.exception)
