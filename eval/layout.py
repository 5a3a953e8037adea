"""Layout scores of one (structure, output) pair: align, segment (through the cache), score.

Implements the two layout segmenters of PROTOCOL.md (version 2; the Splice paper's Table 2): the structure
image is first transformed with the job's recorded geometry (:mod:`eval.align`), then both images go through

- ``maskrcnn`` (:class:`CachedDetector`, record ``iou``): COCO Mask R-CNN (:mod:`eval.detector`) and the IoU
  functions of :mod:`eval.iou`;
- ``panoptic`` (:class:`CachedSegmenter`, record ``panoptic``): a COCO-panoptic model (:mod:`eval.segmenter`)
  and the label-map numbers of :mod:`eval.labelmaps`.

Masks and label maps are cached by image content hash (:mod:`eval.cache`), so each distinct image meets a
model once. Both are scorers of the registry (:mod:`eval.scorers`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PIL import Image

from splice.core.geometry import Geometry
from splice.core.imageio import sha256_image

from .align import align_structure
from .cache import FeatureCache, cache_key
from .detector import Detector
from .iou import Instance, LayoutScores, layout_scores
from .labelmaps import label_scores
from .scorers import SPECS, Scorer
from .segmenter import Segmenter


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


class _CachedModel(Scorer):
    """A per-image model behind a :class:`~eval.cache.FeatureCache`; ``model_calls`` counts images sent to it."""

    def __init__(self, model, cache: FeatureCache):
        self.cache = cache
        self.model_calls = 0
        self._identity = model.cache_identity()
        self._settings = model.settings.to_dict()

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)

    def _through_cache(self, images: Sequence[Image.Image], run, encode, decode) -> list:
        """``run`` (a list of images -> a list of results) on the images the cache has not seen, same images
        once; results stored with ``encode(result, image)`` and read back with ``decode(arrays)``."""
        keys = [cache_key(sha256_image(im), self._identity, self._settings) for im in images]
        found: dict[str, Any] = {}
        todo: dict[str, Image.Image] = {}
        for key, im in zip(keys, images):
            if key in found or key in todo:
                continue
            arrays = self.cache.get(key)
            decoded = decode(arrays) if arrays is not None else None
            if decoded is None:
                todo[key] = im
            else:
                found[key] = decoded
        if todo:
            results = run(list(todo.values()))
            self.model_calls += len(todo)
            for (key, im), result in zip(todo.items(), results):
                self.cache.put(key, encode(result, im), compress=True)
                found[key] = result
        return [found[k] for k in keys]


class CachedDetector(_CachedModel):
    """The ``iou`` metric (Mask R-CNN layout IoU): a :class:`~eval.detector.Detector` behind the cache."""

    spec = SPECS["iou"]

    def __init__(self, detector: Detector, cache: FeatureCache):
        super().__init__(detector, cache)
        self.detector = detector

    def model_fields(self) -> dict[str, Any]:
        d = self.detector
        return {"segmenter": "maskrcnn", "detector": d.name, "weights": dict(d.identity),
                "score_threshold": d.settings.score_threshold, "mask_threshold": d.settings.mask_threshold,
                "detector_size": d.settings.min_size}  # fmt: skip

    def instances(self, images: Sequence[Image.Image]) -> list[list[Instance]]:
        """Instances of every image; the cache misses go to the detector in batches."""
        return self._through_cache(images, self.detector.detect,
                                   lambda inst, im: _encode(inst, (im.size[1], im.size[0])), _decode)  # fmt: skip

    def score(self, images: dict[str, Image.Image], geometry: Any = None, where: str = "") -> dict[str, Any]:
        return score_layout(images["structure"], images["output"], self, geometry, where)


class CachedSegmenter(_CachedModel):
    """The ``panoptic`` metric (layout mIoU of label maps): a :class:`~eval.segmenter.Segmenter` behind the
    cache (``labels/<model>/``)."""

    spec = SPECS["panoptic"]

    def __init__(self, segmenter: Segmenter, cache: FeatureCache):
        super().__init__(segmenter, cache)
        self.segmenter = segmenter

    def model_fields(self) -> dict[str, Any]:
        s = self.segmenter
        return {"segmenter": "panoptic", "model": s.name, "weights": dict(s.identity), **self._settings}

    def _encode(self, lab: np.ndarray, im: Image.Image) -> dict[str, np.ndarray]:
        if lab.shape != (im.size[1], im.size[0]):
            raise ValueError(f"{self.segmenter.name} returned a {lab.shape} label map for a {im.size[0]}x{im.size[1]} "
                             "image")  # fmt: skip
        return {"labels": lab.astype(np.uint8)}

    def label_maps(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """The merged label map of every image (cache first, misses in same-size batches)."""
        maps = self._through_cache(images, self.segmenter.label_maps, self._encode,
                                   lambda a: np.asarray(a["labels"], dtype=np.uint8) if "labels" in a else None)
        return [np.asarray(m, dtype=np.uint8) for m in maps]

    def score(self, images: dict[str, Image.Image], geometry: Any = None, where: str = "") -> dict[str, Any]:
        aligned, output, how = prepare_pair(images["structure"], images["output"], geometry, where)
        lab_s, lab_o = self.label_maps([aligned, output])
        return {**self.record_base(), **label_scores(lab_s, lab_o).to_dict(), "aligned": how}


def _label(identity: dict[str, Any]) -> str:
    if identity.get("sha256"):
        return identity["sha256"][:12]
    return f"{identity.get('spec')}{identity.get('seed', '')}"


def cached_detector(detector: Detector, cache_dir: str | None = None) -> CachedDetector:
    """``detector`` behind the cache under ``cache_dir`` (default :func:`splice.core.paths.cache_dir`)."""
    from .cache import resolve_cache_dir

    return CachedDetector(detector, FeatureCache(resolve_cache_dir(cache_dir), "masks",
                                                 f"{detector.name}-{_label(detector.identity)}"))  # fmt: skip


def cached_segmenter(segmenter: Segmenter, cache_dir: str | None = None) -> CachedSegmenter:
    """``segmenter`` behind the cache under ``cache_dir`` (``labels/<model>-<weights>/``)."""
    from .cache import resolve_cache_dir

    return CachedSegmenter(segmenter, FeatureCache(resolve_cache_dir(cache_dir), "labels",
                                                   f"{segmenter.name}-{_label(segmenter.identity)}"))  # fmt: skip


def detector_scorer(opts: Any, cache_root, **_: Any) -> CachedDetector:
    """The ``iou`` scorer of :class:`eval.scoring.ScoreOptions` (registered in :data:`eval.scorers.FACTORIES`)."""
    from .detector import load_detector

    det = load_detector(opts.detector, opts.detector_weights, device=opts.device,
                        allow_random=opts.allow_random_weights, score_threshold=opts.score_threshold,
                        mask_threshold=opts.mask_threshold, min_size=opts.detector_size,
                        batch_size=opts.batch_size)  # fmt: skip
    return cached_detector(det, str(cache_root))


def segmenter_scorer(opts: Any, cache_root, **_: Any) -> CachedSegmenter:
    """The ``panoptic`` scorer of :class:`eval.scoring.ScoreOptions`."""
    from .segmenter import load_segmenter

    seg = load_segmenter(opts.panoptic_model, opts.panoptic_weights, device=opts.device,
                         allow_random=opts.allow_random_weights, size=opts.panoptic_size,
                         batch_size=opts.batch_size)  # fmt: skip
    return cached_segmenter(seg, str(cache_root))


def detector_requirements(opts: Any, **_: Any) -> list:
    """What the ``iou`` scorer needs with these options (readiness; nothing built)."""
    from .detector import requirements

    return requirements(opts.detector, opts.detector_weights, opts.allow_random_weights)


def segmenter_requirements(opts: Any, **_: Any) -> list:
    """What the ``panoptic`` scorer needs with these options (readiness; nothing built)."""
    from .segmenter import requirements

    return requirements(opts.panoptic_model, opts.panoptic_weights, opts.allow_random_weights)


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
