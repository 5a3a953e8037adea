"""A synthetic run store for the report tests, written by hand after the schemas of splice/store.py and the
metric records of the common brief, so the report tests need no method, model or runner code.

Store ``build_store(root)`` (``demo`` data set: pairs p1..p3; ``other``: pair q1)::

    method    pair  status   geometry                       iou          vit (structure, appearance, cosine)  seconds
    identity  p1    ok       identity                       1.0          0.0, 0.40, 0.60                      0.5
    identity  p2    ok       identity                       0.8          0.0, 0.50, 0.50                      0.5
    identity  p3    ok       identity                       excluded     0.0, 0.60, 0.40                      0.5
    cropper   p1    ok       centre crop 64x64, red output  0.5          0.01, 0.10, 0.90                     2.0
    cropper   p2    ok       centre crop 64x64              0.25         0.02, 0.20, 0.80                     3.0
    cropper   p3    ok       centre crop 64x64              0.75         0.03, 0.30, 0.70                     4.0
    broken    p1    ok       stretch to 64x64               0.3          0.05, 0.05, 0.95                     1.0
    broken    p2    failed   -                              -            -                                    -
    broken    p3    (no record: never run)
    identity  q1    ok       identity                       0.6          0.0, 0.2, 0.8                        0.5

With ``random=True`` the cropper's records and every metric record say ``random_weights: true``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from splice.core.atomic import atomic_write_json
from splice.core.geometry import Geometry
from splice.core.method import config_hash
from splice.core.record import JobKey
from splice.core.store import RunStore
from tests.support.images import make_image
from tests.support.store import write_job

RED = (220, 20, 20)
EVIL_ERROR = 'CUDA out of memory <script>alert("x")</script> & more'
STRUCTURE_SIZES = {"p1": (96, 64), "p2": (80, 80), "p3": (64, 96), "q1": (72, 72)}

IOU = {("identity", "p1"): 1.0, ("identity", "p2"): 0.8, ("identity", "p3"): None,
       ("cropper", "p1"): 0.5, ("cropper", "p2"): 0.25, ("cropper", "p3"): 0.75,
       ("broken", "p1"): 0.3, ("identity", "q1"): 0.6}  # fmt: skip
VIT = {("identity", "p1"): (0.0, 0.4, 0.6), ("identity", "p2"): (0.0, 0.5, 0.5), ("identity", "p3"): (0.0, 0.6, 0.4),
       ("cropper", "p1"): (0.01, 0.1, 0.9), ("cropper", "p2"): (0.02, 0.2, 0.8), ("cropper", "p3"): (0.03, 0.3, 0.7),
       ("broken", "p1"): (0.05, 0.05, 0.95), ("identity", "q1"): (0.0, 0.2, 0.8)}  # fmt: skip
SECONDS = {"identity": 0.5, "broken": 1.0}
CROPPER_SECONDS = {"p1": 2.0, "p2": 3.0, "p3": 4.0}


def _inputs(data: Path, dataset: str, pair: str) -> tuple[Path, Path]:
    s = data / dataset / pair / "structure.png"
    a = data / dataset / pair / "appearance.png"
    if not s.exists():
        s.parent.mkdir(parents=True, exist_ok=True)
        seed = sum(map(ord, pair))
        make_image(*STRUCTURE_SIZES[pair], seed=seed).save(s)
        make_image(70, 90, seed=seed + 100).save(a)
    return s, a


def _job(store: RunStore, data: Path, dataset: str, pair: str, method: str, *, random: bool, failed: bool = False,
         seed: int = 0, extra: dict | None = None) -> JobKey:  # fmt: skip
    s, a = _inputs(data, dataset, pair)
    config = {"method": method, "preset": "smoke", **(extra or {})}
    structure = Image.open(s).convert("RGB")
    method_random = random and method == "cropper"
    output = geometry = None
    metrics = {}
    seconds = None
    if not failed:
        if method == "identity":
            geometry, output = Geometry.identity(structure.size), structure
        elif method == "cropper":
            geometry, output = Geometry.center_crop(structure.size, (64, 64)), Image.new("RGB", (64, 64), RED)
        else:
            geometry = Geometry.stretch(structure.size, (64, 64))
            output = structure.resize((64, 64))
        seconds = CROPPER_SECONDS[pair] if method == "cropper" else SECONDS[method]
        iou = IOU[(method, pair)]
        metrics["iou"] = {
            "metric": "iou", "protocol_version": "1", "detector": "maskrcnn_resnet50_fpn", "weights": "random",
            "random_weights": random, "score_threshold": 0.5, "mask_threshold": 0.5, "excluded": iou is None,
            "exclusion_reason": "no detection in the structure image" if iou is None else None, "iou": iou,
            "matched_iou": iou, "per_class": {}, "n_structure": 0 if iou is None else 1, "n_output": 1,
        }  # fmt: skip
        sd, ad, cos = VIT[(method, pair)]
        metrics["vit"] = {
            "metric": "vit", "protocol_version": "1", "backbone": "dino_vitb8", "weights": "random",
            "random_weights": random, "structure_distance": sd, "appearance_distance": ad, "appearance_cosine": cos,
            "aligned": "identity" if method == "identity" else "geometry",
        }  # fmt: skip
    return write_job(
        store.root, dataset, pair, method, status="failed" if failed else "ok", seed=seed,
        config_hash=config_hash(config), config=config, output=output,
        geometry=geometry.to_dict() if geometry else None, structure=str(s), appearance=str(a),
        inputs={"structure": {"path": str(s), "size": list(structure.size)}, "appearance": {"path": str(a)}},
        random_weights=method_random, weights={"spec": "random" if method_random else f"{method}-v1", "sha256": None},
        seconds=seconds, peak_memory_mb=10.0, error=EVIL_ERROR if failed else None,
        error_type="OutOfMemory" if failed else None, metrics=metrics,
    )  # fmt: skip


def build_store(root: Path, random: bool = True, failures: bool = True) -> Path:
    """Write the store described in the module docstring under ``root/run`` (inputs under ``root/data``)."""
    run, data = root / "run", root / "data"
    store = RunStore(run)
    for pair in ("p1", "p2", "p3"):
        _job(store, data, "demo", pair, "identity", random=random)
        _job(store, data, "demo", pair, "cropper", random=random)
    _job(store, data, "demo", "p1", "broken", random=random)
    if failures:
        _job(store, data, "demo", "p2", "broken", random=random, failed=True)
    _job(store, data, "other", "q1", "identity", random=random)
    atomic_write_json(run / "run.json", [{"command": "splice bench --methods identity,cropper <b>bold</b>",
                                          "settings": {"preset": "smoke", "seeds": [0]}, "git_sha": "abc123",
                                          "time": "2024-01-01T00:00:00Z"}])  # fmt: skip
    return run
