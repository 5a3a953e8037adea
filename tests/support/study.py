"""Helpers for the 2AFC study tests: a small synthetic run store (no tests in this file).

The store follows splice/store.py's layout and record schema. Our method ("splice") returns
the structure image itself (identity geometry), "strotss" a 64x64 centre crop of it, and
"wct2" a 48x40 stretch of a blurred copy, so that aligned views can be checked exactly.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageFilter, PngImagePlugin

from splice.core.geometry import Geometry
from splice.core.store import RunStore, JobKey
from tests.conftest import make_image

OURS = "splice"
BASELINES = ["strotss", "wct2"]
PAIRS = {"afhq": ["cat_to_dog_001", "fox_to_cat_002", "dog_to_wolf_003"], "wild": ["giraffe_zebra", "=HYPERLINK(1)"]}
CONFIG = {"splice": "aaaa11112222", "strotss": "bbbb33334444", "wct2": "cccc55556666"}
SECRET_TEXT = "made-by-splice-strotss"


def _save_with_metadata(img: Image.Image, path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SECRET_TEXT)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, pnginfo=info)


def build_store(root: Path, missing: tuple[tuple[str, str, str], ...] = (("wild", "giraffe_zebra", "wct2"),),
                extra_variant: bool = False) -> Path:
    """A run store at ``root / "runs" / "demo"``; returns its path. ``missing`` jobs fail."""
    run = root / "runs" / "demo"
    store = RunStore(run)
    n = 0
    for dataset, pairs in PAIRS.items():
        for pair_id in pairs:
            n += 1
            s_path = root / "data" / dataset / f"{pair_id}_structure_original.png"
            a_path = root / "data" / dataset / f"{pair_id}_appearance_original.png"
            structure = make_image(96, 80, seed=10 + n)
            _save_with_metadata(structure, s_path)
            _save_with_metadata(make_image(72, 88, seed=100 + n), a_path)
            blurred = structure.filter(ImageFilter.GaussianBlur(2))
            stretch = Geometry.stretch(structure.size, (48, 40))
            outputs = {
                "splice": (structure.copy(), Geometry.identity(structure.size)),
                "strotss": (Geometry.center_crop(structure.size, (64, 64)).apply(structure),
                            Geometry.center_crop(structure.size, (64, 64))),
                "wct2": (stretch.apply(blurred), stretch),
            }
            for method, (img, geom) in outputs.items():
                seeds = [0, 1] if extra_variant and method == "wct2" else [0]
                for seed in seeds:
                    key = JobKey(dataset, pair_id, method, seed, CONFIG[method])
                    failed = (dataset, pair_id, method) in missing
                    if not failed:
                        _save_with_metadata(img, store.output_path(key))
                    store.write_record(key, {
                        "status": "failed" if failed else "ok",
                        "pair": {"pair_id": pair_id, "dataset": dataset, "structure": str(s_path),
                                 "appearance": str(a_path)},
                        "output": None if failed else "output.png",
                        "geometry": None if failed else geom.to_dict(),
                        "random_weights": False, "weights": {"spec": f"{method}-weights"},
                        "seconds": 1.0, "peak_memory_mb": 10.0, "error": "boom" if failed else None,
                    })  # fmt: skip
    return run


def export_settings(root: Path, **kw):
    from eval.study.export import ExportSettings

    base = dict(run_dir=root / "runs" / "demo", dest=root / "study", base_url="https://example.org/s1/images",
                baselines=list(BASELINES), ours=OURS, judgments=3, vigilance=0.2, seed=7, trials_per_hit=5,
                long_side=64)  # fmt: skip
    base.update(kw)
    return ExportSettings(**base)


def exported_study(root: Path, **kw) -> Path:
    from eval.study.export import export_study

    build_store(root)
    s = export_settings(root, **kw)
    export_study(s)
    return Path(s.dest)
