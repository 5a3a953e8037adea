"""Seconds per image of every registered measure on this machine: ``python -m eval.measures.timing``.

For each measure (its ``paper`` preset, weights as found, else random: the architecture and so
the time are the same): the time to build it, the time to compute one new image's features
(what every job's output costs; the reference image is computed once per pair and then cached),
and the time of the pairwise formula. Images are synthetic, ``--size`` px square (default 512).
Prints a Markdown table (wall and process CPU seconds, the median of ``--repeat`` new images).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np
from PIL import Image


def synthetic(size: int, seed: int) -> Image.Image:
    """A smooth random RGB image (low-frequency noise upsampled), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8)
    return Image.fromarray(small).resize((size, size), resample=Image.Resampling.BICUBIC)


def _clock(fn) -> tuple[float, float, Any]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def time_measure(name: str, size: int = 512, repeat: int = 3, device: str = "cpu") -> dict[str, Any]:
    from . import create

    m = create(name, device=device, allow_random=True)
    build_wall, _, _ = _clock(m.load)
    reference = synthetic(size, 0)
    m.features(reference)  # warm-up and the pair's cached reference
    walls, cpus, compare = [], [], []
    for i in range(repeat):
        image = synthetic(size, i + 1)
        w, c, feats = _clock(lambda: m.features(image))
        walls.append(w)
        cpus.append(c)
        ref = m.features(reference)
        compare.append(_clock(lambda: m._compare(feats, ref))[0])
    return {"name": name, "random": m.random_weights, "build_s": build_wall, "image_s": statistics.median(walls),
            "image_cpu_s": statistics.median(cpus), "compare_s": statistics.median(compare),
            "calls": m.model_calls}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    import logging

    import torch

    from . import names

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--metrics", default=",".join(names()))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}, {args.size} px")
    print("| metric | model build (s) | s/image (wall) | s/image (cpu) | pairwise formula (s) | weights |")
    print("|---|---|---|---|---|---|")
    for name in args.metrics.split(","):
        r = time_measure(name, args.size, args.repeat)
        print(f"| `{name}` | {r['build_s']:.2f} | {r['image_s']:.3f} | {r['image_cpu_s']:.3f} | {r['compare_s']:.4f} | "
              f"{'random' if r['random'] else 'real'} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
