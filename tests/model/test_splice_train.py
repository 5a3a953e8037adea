"""Training: determinism under a seed, and resume equivalence (in-process and after kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from splice.model.train import CHECKPOINT, TrainingStopped, train_splice
from tests.support.tiny import TINY, tiny_config, tiny_extractor

PY = sys.executable


def _pair():
    g = torch.Generator().manual_seed(11)
    return torch.rand(1, 3, 66, 90, generator=g), torch.rand(1, 3, 72, 72, generator=g)


def test_same_seed_same_bytes_other_seed_differs():
    cfg = tiny_config(steps=4)
    ext = tiny_extractor(cfg)
    S, T = _pair()
    a = train_splice(S, T, cfg, ext, seed=3)
    b = train_splice(S, T, cfg, ext, seed=3)
    c = train_splice(S, T, cfg, ext, seed=4)
    assert torch.equal(a.output, b.output)
    assert a.history == b.history
    assert not torch.equal(a.output, c.output)
    assert a.output.shape == S.shape
    assert set(a.final_terms) == {"appearance", "structure", "identity"}
    assert set(a.last_entire_terms) == {"entire_structure", "entire_appearance"}


def test_resume_gives_identical_output(tmp_path):
    cfg = tiny_config(steps=6, checkpoint_every=2)
    ext = tiny_extractor(cfg)
    S, T = _pair()
    whole = train_splice(S, T, cfg, ext, seed=1)
    with pytest.raises(TrainingStopped):
        train_splice(S, T, cfg, ext, seed=1, workdir=tmp_path, stop_after=3)
    ck = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert ck["step"] == 3
    resumed = train_splice(S, T, cfg, ext, seed=1, workdir=tmp_path)
    assert resumed.resumed_from == 3
    assert torch.equal(whole.output, resumed.output)
    assert [h[1] for h in whole.history] == [h[1] for h in resumed.history]


def test_checkpoint_of_other_config_is_refused(tmp_path):
    from splice.core.errors import UserError

    cfg = tiny_config(steps=4)
    ext = tiny_extractor(cfg)
    S, T = _pair()
    with pytest.raises(TrainingStopped):
        train_splice(S, T, cfg, ext, seed=1, workdir=tmp_path, stop_after=2)
    with pytest.raises(UserError, match="different seed"):
        train_splice(S, T, cfg, ext, seed=2, workdir=tmp_path)
    with pytest.raises(UserError, match="different config_hash"):
        train_splice(S, T, cfg.replace(lr=0.001), ext, seed=1, workdir=tmp_path)


def _cli(*args, env=None, **kw):
    e = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([PY, "-m", "splice", *args], capture_output=True, text=True, env=e, **kw)


def _run_args(tiny_pair, out, steps):
    s, a = tiny_pair
    args = ["run", str(s), str(a), "-o", str(out), "--steps", str(steps), "--quiet", "--device", "cpu",
            "--backbone", TINY["backbone"], "--weights", "random", "--checkpoint-every", "1"]
    return args


@pytest.mark.slow
def test_cli_kill_9_then_resume_equals_uninterrupted(tmp_path, tiny_pair):
    steps = 10
    ref = _cli(*_run_args(tiny_pair, tmp_path / "ref", steps))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([PY, "-m", "splice", *_run_args(tiny_pair, out, steps)],
                            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / CHECKPOINT).exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "record.json").exists() or proc.returncode == 0
    res = _cli(*_run_args(tiny_pair, out, steps), "--resume")
    assert res.returncode == 0, res.stderr
    assert (out / "output.png").read_bytes() == (tmp_path / "ref" / "output.png").read_bytes()
    import json

    rec = json.loads((out / "record.json").read_text())
    assert rec["status"] == "ok" and rec["random_weights"] is True and rec["settings"]["seed"] == 0
    assert rec["info"]["resumed_from_step"] >= 1 or proc.returncode == 0
