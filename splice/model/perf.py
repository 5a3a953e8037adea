"""``make perf``: seconds per step and peak memory of Splice, ours against the reference's way.

Each configuration runs in its own process (so peak memory is its own): ViT-S/8 with
random weights (speed does not depend on the values) on a 512x512 pair and on an HD
(1920x1080) structure image, in fp32 and bf16, plus the plain reading of SPLICE.md that
computes like the reference (:mod:`splice.model.plain`). Steps 1..N are timed (crop terms); the
full-image step (every 75th) is timed on its own. Ratios are taken within one run.

    python -m splice.perf [--steps 4] [--sizes 512,hd] [--json perf.json]
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

SIZES = {"512": ((512, 512), (512, 512)), "hd": ((1920, 1080), (512, 512))}


def _images(size):
    import torch

    (sw, sh), (tw, th) = size
    g = torch.Generator().manual_seed(0)
    # smooth random images: a blurred noise field, so that the generator sees image-like input
    import torch.nn.functional as F

    def img(w, h):
        x = torch.rand(1, 3, h // 16 + 1, w // 16 + 1, generator=g)
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)

    return img(sw, sh), img(tw, th)


def measure_one(mode: str, size_name: str, steps: int, backbone: str) -> dict:
    import torch

    from splice.core.resources import PeakMemory
    from splice.model.augment import PairSampler
    from splice.model.config import SpliceConfig
    from splice.model.generator import build_generator
    from splice.model.objective import SpliceObjective
    from splice.model.plain import PlainExtractor, plain_loss
    from splice.model.vit import load_vit

    precision = "bf16" if mode.startswith("bf16") else "fp32"
    cfg = SpliceConfig.from_preset("paper", backbone=backbone, weights="random", precision=precision,
                                   entire_every=10**9)
    ext = load_vit(cfg.backbone, "random")
    S, T = _images(SIZES[size_name])
    G = build_generator(0)
    if mode != "reference":  # ours: the layout splice.model.train uses on this device; "-cl" forces channels-last
        from splice.model.train import generator_memory_format

        fmt = generator_memory_format("cpu", precision, "channels-last" if mode.endswith("-cl") else "auto")
        S, T, G = S.contiguous(memory_format=fmt), T.contiguous(memory_format=fmt), G.to(memory_format=fmt)
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    sampler = PairSampler(S, T, cfg, seed=1)
    if mode == "reference":
        plain = PlainExtractor(ext)

        def loss_fn(crops):
            return plain_loss(G, plain, crops, S, cfg)
    else:
        obj = SpliceObjective(ext, cfg, S, precision=precision)

        def loss_fn(crops):
            return obj(G, crops)

    def one(step: int) -> float:
        crops = sampler.sample(step)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, _ = loss_fn(crops)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    memory = PeakMemory("cpu")
    memory.reset()
    one(1)  # warm-up (allocations, kernels)
    times = [one(1 + i) for i in range(steps)]
    cfg.entire_every = 1  # the full-image step: crop terms + G(S) and its ViT pass
    if mode != "reference":
        obj.cfg = cfg
    entire = one(75)
    return {"mode": mode, "size": size_name, "backbone": backbone, "steps": steps,
            "seconds_per_step": sum(times) / len(times), "min_seconds_per_step": min(times),
            "full_image_step_seconds": entire, "peak_memory_mb": memory.read_mb(),
            "threads": torch.get_num_threads()}


def run_all(sizes: list[str], modes: list[str], steps: int, backbone: str,
            report=lambda row: None) -> list[dict]:  # fmt: skip
    """Every (size, mode) in its own process (so that its peak memory is its own); ratios to ``reference``.

    A configuration that fails is reported as a row with ``error`` (its stderr tail), and the others go on.
    """
    rows = []
    for size in sizes:
        for mode in modes:
            cmd = [sys.executable, "-m", "splice.model.perf", mode, size, str(steps), backbone]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                row = {"mode": mode, "size": size, "backbone": backbone, "error": r.stderr.strip()[-2000:]}
            else:
                row = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append(row)
            report(row)
    ref = {r["size"]: r["seconds_per_step"] for r in rows if r["mode"] == "reference" and "error" not in r}
    for r in rows:
        if "error" not in r:
            r["ratio_vs_reference"] = r["seconds_per_step"] / ref[r["size"]] if r["size"] in ref else float("nan")
    return rows


def machine() -> dict:
    return {"machine": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count()}  # fmt: skip


if __name__ == "__main__":  # one configuration, in a child process of run_all (not a user command line)
    _mode, _size, _steps, _backbone = sys.argv[1:5]
    print(json.dumps(measure_one(_mode, _size, int(_steps), _backbone)))
