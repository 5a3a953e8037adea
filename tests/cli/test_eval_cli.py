"""`splice score --out`, `splice score iou` and `splice table` from the command line (random weights)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from splice.cli import cli
from splice.core.geometry import Geometry
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
    args = ["score", "iou", "--structure", str(s), "--output", str(o), "--geometry", "stretch", "--cache-dir", str(tmp_path / "c"),
            *DET, "--json"]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert rec["metric"] == "iou" and rec["random_weights"] is True and rec["aligned"] == "geometry"
    assert rec["geometry"]["kind"] == "stretch" and rec["geometry"]["output"] == [64, 64]
    assert rec["n_structure"] > 0 and 0.0 <= rec["iou"] <= 1.0
    assert "RANDOM WEIGHTS" in r.stderr


def test_score_run_then_table(tmp_path):
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
    args = ["score", "--out", str(root), "--metrics", "iou,vit", "--backbone", "vit_small_patch16_224",
            "--weights", "random", "--cache-dir", str(tmp_path / "c"), "--json", *DET]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    assert first["scored"] == {"iou": 2, "vit": 2} and first["random_weights"] is True
    assert first["model_calls"]["iou"] == 3  # the identity output equals its structure image: one detection
    assert first["model_calls"]["vit"] == 4  # structure, appearance, squashed structure, squashed output
    rec = json.loads((root / "outputs/demo/p1/identity/s0-abc123/metrics/vit.json").read_text())
    assert rec["structure_distance"] == 0.0 and rec["aligned"] == "identity" and rec["random_weights"] is True
    iou = json.loads((root / "outputs/demo/p1/identity/s0-abc123/metrics/iou.json").read_text())
    assert iou["excluded"] or iou["iou"] == 1.0
    r2 = CliRunner().invoke(cli, args)
    second = json.loads(r2.stdout)
    assert second["skipped"] == {"iou": 2, "vit": 2} and second["model_calls"] == {"iou": 0, "vit": 0}

    t = run_cli(["table", "--out", str(root), "--metric", "structure"], tmp_path)
    assert t.returncode == 0, t.stderr
    lines = t.stdout.splitlines()
    assert lines[0].startswith("> **RANDOM WEIGHTS")
    assert "| demo | identity | **0.0000 ± –** | 1 | 0 | 0 |" in lines


def test_table_formats_and_errors(tmp_path):
    root = tmp_path / "r"
    add_job(root, "afhq", "a", "splice", iou=iou_rec(0.25))
    add_job(root, "afhq", "b", "splice", iou=iou_rec(0.75))
    r = run_cli(["table", "--out", str(root), "--format", "csv"], tmp_path)
    assert r.returncode == 0 and r.stdout.splitlines()[1] == "afhq,splice,iou,0.5,0.353553,2,0,0,0"
    bad = run_cli(["table", "--out", str(tmp_path / "missing")], tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "run store not found" in bad.stderr
    bad = run_cli(["score", "--out", str(tmp_path / "missing"), "--metrics", "iou"], tmp_path)
    assert bad.returncode == 2 and "run store not found" in bad.stderr and "Traceback" not in bad.stderr
