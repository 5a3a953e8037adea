"""`splice run` and `splice score vit` from the command line: outputs, records, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from tests.support.cli import invoke
from tests.support.images import make_image
from tests.support.tiny import TINY

PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture
def cli(capsys, monkeypatch):
    """``splice ARGS`` in this process (a subprocess would import torch anew, 8 s each; the Ctrl-C test below and
    the kill -9 test of tests/model run the real entry point): .returncode, .stdout, .stderr."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def run(*args, env=None):
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        code, out, err = invoke(capsys, *args)
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return run


def run_args(s, a, out, *extra):
    return ["run", s, a, "-o", out, "--steps", "3", "--quiet", "--device", "cpu", "--backbone", TINY["backbone"],
            "--weights", "random", *extra]


def test_run_writes_output_and_record_and_removes_its_checkpoint(tmp_path, tiny_pair, cli):
    s, a = tiny_pair
    out = tmp_path / "out"
    r = cli(*run_args(s, a, out))
    assert r.returncode == 0, r.stderr
    assert "RANDOM ViT WEIGHTS" in r.stderr
    img = Image.open(out / "output.png")
    assert img.size == (96, 80) and img.mode == "RGB"
    rec = json.loads((out / "record.json").read_text())
    assert rec["schema"] == 2 and rec["status"] == "ok"  # the same record (splice.core.record) as a benchmark job
    assert rec["job"] == {"method": "splice", "dataset": "adhoc", "pair_id": "structure+appearance", "seed": 0,
                          "config_hash": rec["job"]["config_hash"]}
    for key in ("config", "settings", "weights", "versions", "device", "seconds", "seconds_total", "peak_memory_mb",
                "geometry", "random_weights", "inputs", "host", "finished"):
        assert key in rec, key
    assert rec["settings"]["seed"] == 0 and rec["random_weights"] is True and rec["weights"]["spec"] == "random"
    assert rec["geometry"]["kind"] == "identity" and rec["config"]["steps"] == 3
    assert rec["settings"]["options"]["steps"] == 3 and rec["peak_memory_kind"] in ("rss_peak", "ru_maxrss_process")
    assert set(rec["info"]["final_loss_terms"]) == {"appearance", "structure", "identity"}
    assert rec["info"]["seconds_per_step"] > 0 and "pillow" in rec["versions"] and "host" not in rec["versions"]
    assert not (out / "checkpoint.pt").exists() and rec["info"]["checkpoint"] is None  # finished: not needed
    assert sorted(p.name for p in s.parent.iterdir()) == ["appearance.png", "structure.png"]  # inputs untouched
    # a finished run is never overwritten ...
    again = cli(*run_args(s, a, out))
    assert again.returncode == 2 and "already holds a finished run" in again.stderr
    assert "Traceback" not in again.stderr
    # ... resume is a no-op, --force replaces
    assert cli(*run_args(s, a, out), "--resume").returncode == 0
    # --resize sets the structure's shorter side and the geometry says so
    r = cli(*run_args(s, a, tmp_path / "small", "--resize", "64", "--keep-work"))
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "small" / "record.json").read_text())
    assert (tmp_path / "small" / "checkpoint.pt").exists() and rec["info"]["checkpoint"] == "checkpoint.pt"
    assert Image.open(tmp_path / "small" / "output.png").size == (77, 64)
    assert rec["geometry"] == {"kind": "resize", "source": [96, 80], "box": [0, 0, 96, 80], "output": [77, 64]}


@pytest.mark.parametrize("case,message", [
    ("missing", "structure image not found"),
    ("text", "not an image Pillow can read"),
    ("tiny", "at least 64 px"),
])
def test_bad_inputs_one_line_errors(tmp_path, tiny_pair, case, message, cli):
    s, a = tiny_pair
    bad = tmp_path / "bad.png"
    if case == "text":
        bad.write_text("x")
    elif case == "tiny":
        make_image(50, 30).save(bad)
    r = cli(*run_args(bad, a, tmp_path / "o"))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "record.json").exists()


def test_missing_weights_offline_is_one_line(tmp_path, tiny_pair, cli):
    s, a = tiny_pair
    r = cli("run", s, a, "-o", tmp_path / "o", "--steps", "1", "--backbone", "vit_small_patch16_224", "--quiet",
            env={"SPLICE_WEIGHTS_DIR": str(tmp_path / "nothing")})
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: DINO weights 'vit_small_patch16_224.dino' are not cached")
    assert "dino_deitsmall16_pretrain.pth" in line and str(tmp_path / "nothing") in line


def test_unfinished_run_needs_resume_and_output_folder_is_not_input_folder(tmp_path, tiny_pair, cli):
    s, a = tiny_pair
    out = tmp_path / "o"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"")
    r = cli(*run_args(s, a, out))
    assert r.returncode == 2 and "add --resume" in r.stderr
    r = cli(*run_args(s, a, s.parent))
    assert r.returncode == 2 and "nothing is ever written into input folders" in r.stderr
    r = cli("run", s, a, "-o", tmp_path / "p", "--preset", "nope")
    assert r.returncode == 2
    assert r.stderr == "error: --preset 'nope' is not a preset; choose from paper, paper-10k, fast, smoke\n"


def test_score_vit_json(tmp_path, tiny_pair, cli):
    from tests.support.vit import recipe_state_dict

    s, a = tiny_pair
    w = tmp_path / "tiny.pth"
    torch.save(recipe_state_dict("vit_tiny_patch16_224"), w)
    o = tmp_path / "o.png"
    # smaller than S with no geometry given: S is resized to O (bicubic, as Pillow's default), and said so;
    # O is exactly that resize, so the structure distance is 0
    Image.open(s).convert("RGB").resize((48, 40), Image.Resampling.BICUBIC).save(o)
    tiny = ["--backbone", "vit_tiny_patch16_224", "--weights", w]
    r = cli("score", "vit", "--structure", s, "--appearance", a, "--output", o, *tiny, "--device", "cpu", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["aligned"] == "resize" and res["random_weights"] is False
    assert res["structure_distance"] == 0 and res["appearance_distance"] > 0 and -1 <= res["appearance_cosine"] <= 1
    other = json.loads(cli("score", "vit", "--structure", s, "--appearance", a, "--output", a, "--geometry",
                           "stretch 72x72", *tiny, "--json").stdout)
    assert other["aligned"] == "geometry" and other["structure_distance"] > 0 and other["appearance_distance"] == 0
    same = json.loads(cli("score", "vit", "--structure", s, "--appearance", s, "--output", s, *tiny, "--json").stdout)
    assert same["structure_distance"] == 0 and same["appearance_distance"] == 0 and same["aligned"] == "identity"
    assert same["appearance_cosine"] == pytest.approx(1, abs=1e-6)


def test_ctrl_c_says_how_to_continue(tmp_path, tiny_pair):
    import signal
    import time

    s, a = tiny_pair
    out = tmp_path / "o"
    args = ["run", s, a, "-o", out, "--steps", "5000", "--quiet", "--device", "cpu", "--backbone", TINY["backbone"],
            "--weights", "random", "--checkpoint-every", "1"]  # fmt: skip
    proc = subprocess.Popen([PY, "-m", "splice", *map(str, args)], stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted; the last checkpoint is in {out / 'checkpoint.pt'}; continue with: splice run")
    assert last.endswith(" --resume") and "Traceback" not in err
    assert (out / "checkpoint.pt").exists() and not (out / "record.json").exists()
