"""``splice perf`` / ``python -m splice.perf``: one configuration measured for real on a tiny ViT, the memory fit
by hand, the child processes' rows, and the command on a faked CUDA device."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from click.testing import CliRunner

from splice.cli import cli
from splice.model import perf
from tests.support.dummies import PROJECT


def test_sizes_and_generator_pixels():
    assert perf.parse_size("512") == ((512, 512), (512, 512))
    assert perf.parse_size("hd") == ((1920, 1080), (512, 512))
    assert perf.parse_size("200x96") == ((200, 96), (96, 96))
    for bad in ("4k", "32x32", "x"):
        with pytest.raises(ValueError, match="use 512, hd or WxH"):
            perf.parse_size(bad)
    assert perf.generator_pixels(512, 512) == 2 * 512 * 512
    assert perf.generator_pixels(1920, 1080) == 1920 * 1080 + 1080 * 1080


@pytest.mark.timeout(300)
def test_one_configuration_measured_for_real_on_a_tiny_vit():
    row = perf.measure_one("fp32", "96x64", 1, "vit_tiny_patch16_224", "cpu")
    assert (row["mode"], row["size"], row["width"], row["height"], row["device"]) == ("fp32", "96x64", 96, 64, "cpu")
    assert row["seconds_per_step"] > 0 and row["full_image_step_seconds"] > 0 and row["warmup_seconds"] > 0
    assert row["peak_memory_mb"] > 100 and row["peak_memory_kind"] in ("rss_peak", "ru_maxrss_process")
    assert row["generator_pixels"] == 96 * 64 + 64 * 64
    assert row["flops_per_step"] > 1e9  # the ViT passes alone are billions of operations
    with pytest.raises(ValueError, match="mode 'fp16'"):
        perf.measure_one("fp16", "96x64", 1, "vit_tiny_patch16_224", "cpu")


def _row(backbone, size, mode, peak, context=None, seconds=1.0):
    (w, h), _ = perf.parse_size(size)
    r = {"backbone": backbone, "size": size, "mode": mode, "width": w, "height": h, "seconds_per_step": seconds,
         "peak_memory_mb": peak, "generator_pixels": perf.generator_pixels(w, h)}  # fmt: skip
    if context is not None:
        r["context_mb"] = context
    return r


def test_memory_fit_by_hand():
    p512, phd = 2 * 512 * 512, 1920 * 1080 + 1080 * 1080  # 524288, 3240000 generator pixels
    rows = [_row("B/8", "512", "fp32", 2000.0), _row("B/8", "hd", "fp32", 6000.0),
            _row("B/8", "512", "bf16", 1500.0), {"backbone": "B/8", "size": "hd", "mode": "bf16", "error": "OOM"}]
    fits = {f["mode"]: f for f in perf.fit_memory(rows, 8)}
    b = 4000.0 / (phd - p512)  # MB per generator pixel
    a = 2000.0 - b * p512
    f = fits["fp32"]
    assert f["a_mb"] == pytest.approx(a) and f["b_mb_per_mpx"] == pytest.approx(b * 1e6)
    pixels = (8192 - a) / b
    assert f["max_generator_pixels"] == int(pixels)
    assert f["square_side"] == int(math.sqrt(pixels / 2)) == 1537  # 2 s^2 = P
    h = int(math.sqrt(pixels / (16 / 9 + 1)))  # (16/9 + 1) h^2 = P
    assert f["wide"] == [int(h * 16 / 9), h] == [2318, 1304]
    assert f["extrapolation"] == pytest.approx(pixels / phd)
    assert fits["bf16"]["error"] == "needs peaks at two or more sizes"  # its HD run failed
    # on CUDA the largest context measured comes off the budget; a budget below `a` fits nothing
    cuda = perf.fit_memory([_row("B/8", "512", "fp32", 2000.0, 500.0), _row("B/8", "hd", "fp32", 6000.0, 400.0)], 8)
    assert cuda[0]["budget_mb"] == 8192 - 500 and cuda[0]["max_generator_pixels"] == int((7692 - a) / b)
    assert perf.fit_memory(rows[:2], 1)[0]["square_side"] == 0


def test_run_all_spawns_one_process_per_configuration_and_keeps_failures(monkeypatch):
    calls = []

    class Done:
        def __init__(self, code, out="", err=""):
            self.returncode, self.stdout, self.stderr = code, out, err

    def fake_run(cmd, capture_output, text):
        calls.append(cmd[1:])
        mode, size, steps, backbone, device = cmd[3:]
        if mode == "bf16":
            err = "Traceback ...\n  ...\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB\n"
            return Done(1, err=err)
        row = _row(backbone, size, mode, 100.0, seconds={"reference": 4.0, "fp32": 1.0}[mode])
        return Done(0, out="log line\n" + json.dumps(row) + "\n")

    monkeypatch.setattr(perf.subprocess, "run", fake_run)
    rows = perf.run_all(["512", "hd"], ["reference", "fp32", "bf16"], 2, ["vit_base_patch8_224"], "cuda:1")
    assert calls[0] == ["-m", "splice.model.perf", "reference", "512", "2", "vit_base_patch8_224", "cuda:1"]
    assert len(rows) == 6
    fp32 = [r for r in rows if r["mode"] == "fp32"]
    assert [r["ratio_vs_reference"] for r in fp32] == [0.25, 0.25]
    bad = [r for r in rows if r["mode"] == "bf16"]
    assert bad[0]["error"] == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB"
    assert "Traceback" in bad[0]["stderr"]


def test_perf_command_on_a_faked_cuda_device(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    seen = {}

    def fake_run_all(sizes, modes, steps, backbones, device, report):
        seen.update(sizes=sizes, modes=modes, steps=steps, backbones=backbones, device=device)
        rows = [_row(b, s, m, {"512": 2000.0, "hd": 6000.0}[s], context=450.0, seconds={"reference": 0.4}.get(m, 0.1))
                for b in backbones for s in sizes for m in modes]  # fmt: skip
        for r in rows:
            r["ratio_vs_reference"] = r["seconds_per_step"] / 0.4
            r["full_image_step_seconds"], r["min_seconds_per_step"] = 0.5, r["seconds_per_step"]
            report(r)
        return rows

    monkeypatch.setattr(perf, "run_all", fake_run_all)
    monkeypatch.setattr(perf, "machine", lambda device: {"device": device, "device_name": "Stand-in GPU"})
    r = CliRunner().invoke(cli, ["perf", "--device", "cuda:1", "--memory-gb", "8", "--dest", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert seen == {"sizes": ["512", "hd"], "modes": ["reference", "fp32", "bf16", "compile"], "steps": 4,
                    "backbones": ["vit_small_patch8_224", "vit_base_patch8_224"], "device": "cuda:1"}  # fmt: skip
    assert "Splice seconds per step on cuda:1 (Stand-in GPU)" in r.stdout
    assert "| vit_base_patch8_224 | HD 1920x1080 structure | compile | 0.100 | 0.25x | 0.500 | 6000 |" in r.stdout
    assert "| vit_base_patch8_224 | compile | 1228 | 1473 | 1487x1487 | 2241x1261 |" in r.stdout  # 8 GB less 450 MB
    saved = json.loads((tmp_path / "perf.json").read_text())
    assert len(saved["rows"]) == 16 and saved["fits"][0]["context_mb"] == 450.0


def test_python_m_splice_perf_is_the_perf_command():
    r = subprocess.run([sys.executable, "-m", "splice.perf", "--device", "cuda", "--sizes", "512"], cwd=PROJECT,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip() == (
        "error: --device cuda: no CUDA GPU is available here; use --device cpu or auto")
    r = CliRunner().invoke(cli, ["perf", "--device", "cpu", "--sizes", "4k"])
    assert r.exit_code == 2 and "--sizes '4k': size '4k': use 512, hd or WxH" in r.output
