"""A folder of stored outputs in the Splice authors' layout (``<k>/{A,B,ours,sa,strotss}/``), for the
``precomputed`` method and ``splice bench import`` tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from splice.core.method import Pair
from tests.support.images import make_image

SIZES = {"0": (96, 96), "1": (120, 80), "2": (96, 96)}


def authors_layout(tmp_path: Path) -> tuple[Path, list[Pair]]:
    """paper/afhq/<k>/{A,B,ours,sa,strotss}/ like the authors', and the same inputs under other names in data/."""
    paper = tmp_path / "paper" / "afhq"
    data = tmp_path / "data"
    data.mkdir()
    pairs = []
    for i, (k, size) in enumerate(SIZES.items()):
        d = paper / k
        for sub in ("A", "B", "ours", "sa", "strotss"):
            (d / sub).mkdir(parents=True)
        make_image(*size, seed=10 + i).save(d / "A" / "img.png")
        make_image(80, 72, seed=20 + i).save(d / "B" / "img.png")
        make_image(*size, seed=30 + i).convert("RGBA").save(d / "ours" / f"media_images_img_output_{i}_0.png")
        make_image(64, 64, seed=40 + i).save(d / "sa" / "out.png")
        make_image(*size, seed=50 + i).save(d / "strotss" / "out.png")
        s, a = data / f"struct_{k}.png", data / f"app_{k}.png"
        shutil.copyfile(d / "A" / "img.png", s)
        shutil.copyfile(d / "B" / "img.png", a)
        pairs.append(Pair(pair_id=f"afhq-{int(k):02d}", structure=s, appearance=a, dataset="afhq"))
    return paper, pairs
