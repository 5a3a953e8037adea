"""What the detectron2 backends share: model-zoo weights found offline first, the config, the input.

detectron2 is optional (never a dependency). When it is installed, ``--detector detectron2`` (Mask R-CNN) and
``--panoptic-model panoptic_fpn`` (Panoptic FPN) call its public API the way its ``DefaultPredictor`` does
(``detectron2/engine/defaults.py``): the model takes **BGR** ``uint8`` images resized with
``ResizeShortestEdge([MIN_SIZE_TEST, MIN_SIZE_TEST], MAX_SIZE_TEST)``, which resizes ``uint8`` arrays with PIL
(bilinear, antialiased when shrinking) and rounds sizes with ``int(x + 0.5)``.

Weights (``model_zoo``, the default) are never fetched by detectron2 itself (its iopath download has no
timeout and ignores ``SPLICE_OFFLINE``): the model-zoo file is looked for under its own name in
``$SPLICE_WEIGHTS_DIR`` and in iopath's cache (``$FVCORE_CACHE`` or ``~/.torch/iopath_cache``), then
downloaded with a short timeout; offline, one line says which URL to put where. A local ``.pkl``/``.pth`` file
works too; ``random`` builds the architecture with seeded random weights (``MODEL.WEIGHTS = ""``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from splice.core.errors import ConfigError, WeightsError

log = logging.getLogger(__name__)

S3_PREFIX = "https://dl.fbaipublicfiles.com/detectron2/"


def available() -> bool:
    try:
        import detectron2  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def require(option: str, fallback: str) -> None:
    if not available():
        raise ConfigError(f"{option} needs detectron2 installed (see its install guide); or use {fallback}")


def checkpoint_url(config: str) -> str:
    from detectron2 import model_zoo  # type: ignore[import-not-found]

    return model_zoo.get_checkpoint_url(config)


def _iopath_cache() -> Path:
    return Path(os.environ.get("FVCORE_CACHE") or Path.home() / ".torch" / "iopath_cache")


def find_cached(config: str) -> tuple[str, str, Path | None]:
    """(URL, file name, the file found on this machine or None) of the model-zoo weights of ``config``; no download."""
    from splice.core.paths import weights_dir

    url = checkpoint_url(config)
    rel = url[len(S3_PREFIX):] if url.startswith(S3_PREFIX) else url.rsplit("/", 1)[-1]
    file = rel.rsplit("/", 1)[-1]
    candidates = [weights_dir() / file, weights_dir() / "detectron2" / rel, _iopath_cache() / "detectron2" / rel]
    return url, file, next((p for p in candidates if p.is_file()), None)


def requirements(config: str, spec: str, option: str, allow_random: bool) -> list:
    """detectron2 and the weights ``spec`` (``model_zoo``, a file, ``random``) of ``config``, for readiness;
    nothing downloaded."""
    from splice.core.method import Requirement
    from splice.core.paths import weights_dir

    if not available():
        return [Requirement("Python package detectron2", "install detectron2 (see its install guide)", False)]
    if spec == "random":
        return [Requirement(f"{option} random", "random weights (smoke runs and tests only)", allow_random)]
    if spec != "model_zoo":
        path = Path(spec).expanduser()
        return [Requirement(f"{option} {spec}", "pass an existing detectron2 .pkl/.pth file", path.is_file(),
                            str(path))]  # fmt: skip
    url, file, found = find_cached(config)
    return [Requirement(f"detectron2 model-zoo weights {file}", f"download {url} and put it in {weights_dir()}/",
                        found is not None or allow_random, str(found) if found else None)]  # fmt: skip


def resolve_weights(config: str, spec: str, *, allow_random: bool, explicit: bool, option: str) -> dict[str, Any]:
    """The weights identity for ``spec`` (``model_zoo``, a file, ``random``), with ``path`` when there is a file.

    Raises:
        WeightsError: a missing file, ``random`` without ``allow_random``, or model-zoo weights that are neither
            cached nor downloadable (unless ``allow_random`` and the spec was not given: then random, warned).
    """
    from splice.core.imageio import sha256_file
    from splice.core.paths import weights_dir

    base = {"backend": "detectron2", "config": config}
    if spec == "random":
        if not allow_random:
            raise WeightsError(f"{option} random gives meaningless results; add --allow-random-weights to confirm "
                               "(tests and smoke runs only)")  # fmt: skip
        return {**base, "spec": "random", "random": True, "seed": 0, "note": "requested"}
    if spec != "model_zoo":
        path = Path(spec).expanduser()
        if not path.is_file():
            raise WeightsError(f"{option} {spec!r}: file not found; pass a detectron2 .pkl/.pth file, "
                               "'model_zoo' or 'random'")  # fmt: skip
        return {**base, "spec": "file", "random": False, "path": str(path), "file": path.name,
                "sha256": sha256_file(path)}  # fmt: skip
    url, file, found = find_cached(config)
    if found is None:
        from splice.core.weightfiles import download_weights

        found = download_weights(url, weights_dir() / file)
    if found is None:
        message = (f"detectron2 weights for {config} are not cached and could not be downloaded (offline?): "
                   f"download {url} and put it in {weights_dir()}/ (keep the name {file}), or pass "
                   f"{option} /path/to/{file}")  # fmt: skip
        if allow_random and not explicit:
            log.warning("%s; continuing with RANDOM weights as allowed", message)
            return {**base, "spec": "random", "random": True, "seed": 0, "note": "default weights unavailable"}
        raise WeightsError(message)
    return {**base, "spec": "model_zoo", "random": False, "path": str(found), "file": file, "url": url,
            "sha256": sha256_file(found)}  # fmt: skip


def config(name: str, identity: dict[str, Any], device: str, min_size: int | None, max_default: int = 1333):
    """detectron2's config of model-zoo file ``name`` with our weights, device and input size."""
    from detectron2 import model_zoo  # type: ignore[import-not-found]
    from detectron2.config import get_cfg  # type: ignore[import-not-found]

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(name))
    cfg.MODEL.DEVICE = device
    cfg.MODEL.WEIGHTS = identity.get("path") or ""  # "" = no checkpoint: random initialisation
    if min_size:
        cfg.INPUT.MIN_SIZE_TEST = int(min_size)
        cfg.INPUT.MAX_SIZE_TEST = round(max_default * min_size / 800)
    return cfg


def bgr(image) -> np.ndarray:
    """An RGB PIL image as the ``H x W x 3`` BGR ``uint8`` array detectron2 models take (contiguous)."""
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8)[:, :, ::-1])


def model_input(cfg, aug, image) -> dict[str, Any]:
    """What ``DefaultPredictor.__call__`` feeds the model for one RGB PIL image: the BGR array (flipped to RGB
    when ``INPUT.FORMAT`` says so) resized by ``aug`` (``ResizeShortestEdge``, PIL on ``uint8``), as float32 CHW,
    with the original height and width."""
    import torch

    arr = bgr(image)
    if cfg.INPUT.FORMAT == "RGB":
        arr = np.ascontiguousarray(arr[:, :, ::-1])
    h, w = arr.shape[:2]
    resized = aug.get_transform(arr).apply_image(arr)
    tensor = torch.as_tensor(np.ascontiguousarray(resized).astype("float32").transpose(2, 0, 1))
    return {"image": tensor, "height": h, "width": w}


def build(cfg, identity: dict[str, Any]):
    """``build_model(cfg)`` in eval mode with the resolved weights (seeded random weights for ``random``)."""
    import torch
    from detectron2.checkpoint import DetectionCheckpointer  # type: ignore[import-not-found]
    from detectron2.modeling import build_model  # type: ignore[import-not-found]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(identity.get("seed", 0)))
        model = build_model(cfg)
    model.eval()
    if identity.get("path"):
        try:
            DetectionCheckpointer(model).load(identity["path"])
        except Exception as e:  # a file that is not a detectron2 checkpoint of this architecture
            raise WeightsError(f"detectron2 could not load {identity['path']} for {identity['config']} "
                               f"({type(e).__name__}: {e})") from None  # fmt: skip
    return model
