"""``make perf``: seconds per step and peak memory of Splice on any device, ours against the reference's way.

Each configuration (backbone, input size, mode) runs in its own process, so that its peak
memory is its own: random weights (speed does not depend on the values) on a 512x512 pair and
on an HD (1920x1080) structure image, in fp32, bf16 and with the generator compiled, plus the
plain reading of SPLICE.md that computes like the reference (:mod:`splice.model.plain`). Steps
1..N are timed (crop terms) after one warm-up step (which also pays for compilation); the
full-image step (every 75th) is timed on its own. Ratios are taken within one run.

Peak memory is :class:`splice.core.resources.PeakMemory` (the figure every job record holds): on
CUDA ``max_memory_allocated``, on a Linux CPU the process's peak resident set. From the peaks
at two or more sizes, :func:`fit_memory` derives the largest structure image that fits in a
given memory (see its docstring for the model).

    splice perf --device cuda --backbones B/8,S/8 --memory-gb 8      (python -m splice.perf is the same)
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import time

#: named input sizes: the structure image (W, H); the appearance image is a square of min(W, H, 512)
SIZES: dict[str, tuple[int, int]] = {"512": (512, 512), "hd": (1920, 1080)}
#: measured modes: how the step is computed
MODES = ("reference", "fp32", "bf16", "fp32-cl", "bf16-cl", "compile", "bf16-compile")
#: modes that run on every device by default, and on CUDA also the compiled generator
DEFAULT_MODES = ("reference", "fp32", "bf16")
CUDA_DEFAULT_MODES = ("reference", "fp32", "bf16", "compile")
_WXH = re.compile(r"^(\d+)x(\d+)$")


def parse_size(name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """``512`` / ``hd`` / ``WxH`` -> ((structure W, H), (appearance side, side))."""
    if name in SIZES:
        w, h = SIZES[name]
    else:
        m = _WXH.match(name)
        if not m or min(int(m.group(1)), int(m.group(2))) < 64:
            raise ValueError(f"size {name!r}: use {', '.join(SIZES)} or WxH (at least 64 px a side)")
        w, h = int(m.group(1)), int(m.group(2))
    side = min(w, h, 512)
    return (w, h), (side, side)


def size_label(name: str) -> str:
    (w, h), (a, _) = parse_size(name)
    return "512x512 pair" if name == "512" else f"{'HD ' if name == 'hd' else ''}{w}x{h} structure"


def generator_pixels(width: int, height: int) -> int:
    """Pixels the generator sees on a full-image step: the whole image plus a square crop of its short side."""
    return width * height + min(width, height) ** 2


def _images(size):
    import torch
    import torch.nn.functional as F

    (sw, sh), (tw, th) = size
    g = torch.Generator().manual_seed(0)

    def img(w, h):  # smooth random images: a blurred noise field, so that the generator sees image-like input
        x = torch.rand(1, 3, h // 16 + 1, w // 16 + 1, generator=g)
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)

    return img(sw, sh), img(tw, th)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure_one(mode: str, size_name: str, steps: int, backbone: str, device: str = "cpu") -> dict:
    """One configuration in this process: seconds per crop step, the full-image step, peak memory, FLOPs."""
    import torch

    from splice.core.resources import PeakMemory
    from splice.model.augment import PairSampler
    from splice.model.config import SpliceConfig
    from splice.model.generator import build_generator
    from splice.model.objective import SpliceObjective
    from splice.model.plain import PlainExtractor, plain_loss
    from splice.model.train import generator_memory_format
    from splice.model.vit import load_vit

    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    dev = torch.device(device)
    precision = "bf16" if mode.startswith("bf16") else "fp32"
    cfg = SpliceConfig.from_preset("paper", backbone=backbone, weights="random", precision=precision,
                                   entire_every=10**9)  # fmt: skip
    ext = load_vit(cfg.backbone, "random", device=dev)
    (w, h), appearance = parse_size(size_name)
    S, T = (x.to(dev) for x in _images(((w, h), appearance)))
    G = build_generator(0).to(dev)
    if mode != "reference":  # ours: the layout splice.model.train uses on this device; "-cl" forces channels-last
        fmt = generator_memory_format(dev, precision, "channels-last" if mode.endswith("-cl") else "auto")
        S, T, G = S.contiguous(memory_format=fmt), T.contiguous(memory_format=fmt), G.to(memory_format=fmt)
    G_run = torch.compile(G, dynamic=True) if mode.endswith("compile") else G  # as splice.model.train does
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    sampler = PairSampler(S, T, cfg, seed=1)
    if mode == "reference":
        plain = PlainExtractor(ext)

        def loss_fn(crops):
            return plain_loss(G, plain, crops, S, cfg)
    else:
        obj = SpliceObjective(ext, cfg, S, precision=precision)

        def loss_fn(crops):
            return obj(G_run, crops)

    def one(step: int) -> float:
        crops = sampler.sample(step)
        _sync(dev)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, _ = loss_fn(crops)
        loss.backward()
        opt.step()
        _sync(dev)
        return time.perf_counter() - t0

    memory = PeakMemory(str(dev))
    memory.reset()
    warmup = one(1)  # allocations, kernels, autotuning, compilation
    times = [one(1 + i) for i in range(steps)]
    cfg.entire_every = 1  # the full-image step: crop terms + G(S) and its ViT pass
    if mode != "reference":
        obj.cfg = cfg
    entire = one(75)
    row = {"mode": mode, "size": size_name, "width": w, "height": h, "backbone": cfg.backbone, "device": str(dev),
           "steps": steps, "seconds_per_step": sum(times) / len(times), "min_seconds_per_step": min(times),
           "warmup_seconds": warmup, "full_image_step_seconds": entire, "peak_memory_mb": memory.read_mb(),
           "peak_memory_kind": memory.kind, "peak_memory_baseline_mb": memory.baseline_mb,
           "generator_pixels": generator_pixels(w, h), "threads": torch.get_num_threads()}  # fmt: skip
    if dev.type == "cuda":
        free, total = torch.cuda.mem_get_info(dev)
        reserved = torch.cuda.max_memory_reserved(dev)
        row.update(peak_reserved_mb=reserved / 2**20, device_name=torch.cuda.get_device_name(dev),
                   device_memory_mb=total / 2**20,
                   # what the device holds beyond this process's tensors: its CUDA context (and other processes)
                   context_mb=max(0.0, (total - free - torch.cuda.memory_reserved(dev)) / 2**20))  # fmt: skip
    if not mode.endswith("compile"):  # one more crop step, untimed, to count its floating-point operations
        from torch.utils.flop_counter import FlopCounterMode

        cfg.entire_every = 10**9
        counter = FlopCounterMode(display=False)
        with counter:
            one(2)
        row["flops_per_step"] = counter.get_total_flops()
    return row


def _one_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "failed without a message"


def run_all(sizes: list[str], modes: list[str], steps: int, backbones: list[str] | str, device: str = "cpu",
            report=lambda row: None) -> list[dict]:  # fmt: skip
    """Every (backbone, size, mode) in its own process (so that its peak memory is its own); ratios to
    ``reference`` of the same backbone and size.

    A configuration that fails (out of memory, say) is a row with ``error`` (the last line of its
    stderr) and ``stderr`` (its tail); the others go on.
    """
    if isinstance(backbones, str):
        backbones = [backbones]
    rows = []
    for backbone in backbones:
        for size in sizes:
            for mode in modes:
                cmd = [sys.executable, "-m", "splice.model.perf", mode, size, str(steps), backbone, device]
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    (w, h), _ = parse_size(size)
                    row = {"mode": mode, "size": size, "width": w, "height": h, "backbone": backbone,
                           "device": device, "error": _one_line(r.stderr), "stderr": r.stderr.strip()[-2000:]}
                else:
                    row = json.loads(r.stdout.strip().splitlines()[-1])
                rows.append(row)
                report(row)
    ref = {(r["backbone"], r["size"]): r["seconds_per_step"] for r in rows if r["mode"] == "reference"
           and "error" not in r}  # fmt: skip
    for r in rows:
        if "error" not in r:
            r["ratio_vs_reference"] = r["seconds_per_step"] / ref.get((r["backbone"], r["size"]), float("nan"))
    return rows


def fit_memory(rows: list[dict], memory_gb: float) -> list[dict]:
    """The largest structure image that fits in ``memory_gb``, per (backbone, mode), from the measured peaks.

    Model: ``peak_mb = a + b * P`` with ``P`` = :func:`generator_pixels` (the full structure image plus
    a square crop of its short side: what the generator holds on a full-image step, the step with the
    highest peak); ``a`` holds what does not grow with the image (the ViT, whose input is resized to
    224 px, the process's libraries on a CPU). ``a`` and ``b`` are the least-squares line through the
    measured sizes (exact with two), so at least two sizes are needed. On CUDA the budget is
    ``memory_gb`` less the largest CUDA context measured (the peak counts tensors only). The answer is
    the largest ``P`` with ``a + b * P <= budget``, as a square (``2 s^2 = P``) and as a 16:9 image
    (``(16/9 + 1) h^2 = P``). An extrapolation: it says how far it reaches beyond the largest size measured.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if "error" not in r and r.get("peak_memory_mb"):
            groups.setdefault((r["backbone"], r["mode"]), []).append(r)
    out = []
    for (backbone, mode), rs in groups.items():
        xs = [float(r["generator_pixels"]) for r in rs]
        ys = [float(r["peak_memory_mb"]) for r in rs]
        fit = {"backbone": backbone, "mode": mode, "memory_gb": memory_gb, "sizes": [r["size"] for r in rs]}
        if len(set(xs)) < 2:
            out.append({**fit, "error": "needs peaks at two or more sizes"})
            continue
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        a = my - b * mx
        context = max((float(r.get("context_mb") or 0.0) for r in rs), default=0.0)
        budget = memory_gb * 1024 - context
        fit.update(a_mb=a, b_mb_per_mpx=b * 1e6, context_mb=context, budget_mb=budget)
        if b <= 0:
            out.append({**fit, "error": "the peak did not grow with the image size"})
            continue
        pixels = (budget - a) / b
        if pixels <= 0:
            fit.update(max_generator_pixels=0, square_side=0, wide=None, extrapolation=None)
        else:
            side = int(math.sqrt(pixels / 2))
            h = int(math.sqrt(pixels / (16 / 9 + 1)))
            fit.update(max_generator_pixels=int(pixels), square_side=side, wide=[int(h * 16 / 9), h],
                       extrapolation=pixels / max(xs))  # fmt: skip
        out.append(fit)
    return out


def machine(device: str = "cpu") -> dict:
    out = {"machine": platform.platform(), "processor": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "device": device}  # fmt: skip
    try:
        import torch

        out["torch"] = torch.__version__
        if device.startswith("cuda") and torch.cuda.is_available():
            out["device_name"] = torch.cuda.get_device_name(device)
            out["device_memory_mb"] = torch.cuda.get_device_properties(device).total_memory / 2**20
    except Exception:  # describing the machine never fails the measurement
        pass
    return out


if __name__ == "__main__":  # one configuration, in a child process of run_all (not a user command line)
    _mode, _size, _steps, _backbone = sys.argv[1:5]
    _device = sys.argv[5] if len(sys.argv) > 5 else "cpu"
    print(json.dumps(measure_one(_mode, _size, int(_steps), _backbone, _device)))
