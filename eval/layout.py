"""Layout IoU of one (structure, output) pair: align, detect (through the cache), score.

Implements the Mask R-CNN protocol of PROTOCOL.md (the Splice paper's Table 2): the
structure image is first transformed with the job's recorded geometry
(:mod:`eval.align`), then both images go through the detector (:mod:`eval.detector`)
and the IoU functions of :mod:`eval.iou`. Masks are cached by image content hash
(:mod:`eval.cache`), so each distinct image meets the detector once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import numpy as np
from PIL import Image

from splice.core.geometry import Geometry
from splice.core.imageio import sha256_image

from . import PROTOCOL_VERSION
from .align import align_structure
from .cache import FeatureCache, cache_key
from .detector import Detector
from .iou import Instance, LayoutScores, layout_scores


def _encode(instances: list[Instance], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    h, w = shape
    masks = np.stack([i.mask.reshape(-1) for i in instances]) if instances else np.zeros((0, h * w), bool)
    return {
        "shape": np.array([h, w], dtype=np.int64),
        "labels": np.array([i.label for i in instances], dtype=np.int64),
        "names": np.array([i.name for i in instances], dtype="<U64"),
        "scores": np.array([i.score for i in instances], dtype=np.float32),
        "masks": np.packbits(masks, axis=1),
    }


def _decode(arrays: dict[str, np.ndarray]) -> list[Instance]:
    h, w = (int(v) for v in arrays["shape"])
    masks = np.unpackbits(arrays["masks"], axis=1, count=h * w).astype(bool).reshape(-1, h, w)
    rows = zip(arrays["labels"], arrays["names"], arrays["scores"])
    return [Instance(int(lab), str(name), float(score), masks[k]) for k, (lab, name, score) in enumerate(rows)]


class CachedDetector:
    """A :class:`~eval.detector.Detector` behind a :class:`~eval.cache.FeatureCache`.

    ``model_calls`` counts images actually sent to the detector (0 on a fully cached run).
    """

    def __init__(self, detector: Detector, cache: FeatureCache):
        self.detector = detector
        self.cache = cache
        self.model_calls = 0
        self.identity = detector.cache_identity()
        self.settings = detector.settings.to_dict()

    def instances(self, images: Sequence[Image.Image]) -> list[list[Instance]]:
        """Instances of every image; the cache misses go to the detector in batches."""
        keys = [cache_key(sha256_image(im), self.identity, self.settings) for im in images]
        found: dict[str, list[Instance]] = {}
        todo: dict[str, Image.Image] = {}
        for key, im in zip(keys, images):
            if key in found or key in todo:
                continue
            arrays = self.cache.get(key)
            if arrays is None:
                todo[key] = im
            else:
                found[key] = _decode(arrays)
        if todo:
            results = self.detector.detect(list(todo.values()))
            self.model_calls += len(todo)
            for (key, im), inst in zip(todo.items(), results):
                self.cache.put(key, _encode(inst, (im.size[1], im.size[0])), compress=True)
                found[key] = inst
        return [found[k] for k in keys]

    def record_base(self) -> dict[str, Any]:
        """The model part of an ``iou.json`` record."""
        d = self.detector
        return {
            "metric": "iou",
            "protocol_version": PROTOCOL_VERSION,
            "detector": d.name,
            "weights": dict(d.identity),
            "random_weights": d.random,
            "score_threshold": d.settings.score_threshold,
            "mask_threshold": d.settings.mask_threshold,
            "detector_size": d.settings.min_size,
            "settings_hash": self.settings_hash(),
        }

    def settings_hash(self) -> str:
        """Same hash = same protocol, model and settings: an existing record can be kept."""
        blob = json.dumps({"protocol": PROTOCOL_VERSION, "model": self.identity, "settings": self.settings},
                          sort_keys=True, default=str)  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_detector(detector: Detector, cache_dir: str | None = None) -> CachedDetector:
    """``detector`` behind the cache under ``cache_dir`` (default :func:`splice.core.paths.cache_dir`)."""
    from .cache import resolve_cache_dir

    ident = detector.identity
    label = ident["sha256"][:12] if ident.get("sha256") else f"{ident.get('spec')}{ident.get('seed', '')}"
    return CachedDetector(detector, FeatureCache(resolve_cache_dir(cache_dir), "masks", f"{detector.name}-{label}"))


def iou_record(base: dict[str, Any], scores: LayoutScores, aligned: str) -> dict[str, Any]:
    """The full ``iou.json`` record (schema in the common brief, plus ``aligned`` and counts)."""
    return {**base, **scores.to_dict(), "aligned": aligned}


def prepare_pair(structure: Image.Image, output: Image.Image, geometry: Geometry | dict | None,
                 where: str = "") -> tuple[Image.Image, Image.Image, str]:  # fmt: skip
    """(aligned structure, output, how it was aligned)."""
    aligned, how = align_structure(structure, output.size, geometry, where=where)
    return aligned, output, how


def score_layout(
    structure: Image.Image,
    output: Image.Image,
    detector: CachedDetector,
    geometry: Geometry | dict | None = None,
    where: str = "",
) -> dict[str, Any]:
    """The ``iou.json`` record of one pair (structure as loaded, output, recorded geometry)."""
    aligned, output, how = prepare_pair(structure, output, geometry, where)
    inst_s, inst_o = detector.instances([aligned, output])
    scores = layout_scores(inst_s, inst_o, (output.size[1], output.size[0]))
    return iou_record(detector.record_base(), scores, how)
