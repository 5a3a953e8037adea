"""COCO Mask R-CNN for the layout IoU (PROTOCOL.md; the Splice paper, Tumanyan et al.
CVPR 2022, Table 2, measures layout preservation with Mask R-CNN masks).

Backends, all returning the same thing: for each image a list of
:class:`eval.iou.Instance` (COCO class id in torchvision's 1..90 numbering, class name,
score, boolean mask at the image's size), keeping detections with score >= the score
threshold (0.5) and binarising soft masks at the mask threshold (>= 0.5).

- ``maskrcnn_resnet50_fpn_v2`` (default) and ``maskrcnn_resnet50_fpn`` (v1): torchvision.
  ``--detector-weights`` takes a torchvision tag (``COCO_V1``, the default), a local
  state-dict file, or ``random`` (tests and smoke runs only, marked in every record).
  A tag is looked for, in order, in ``$SPLICE_WEIGHTS_DIR`` and torch hub's
  ``checkpoints`` folder under torchvision's file name, then downloaded (a few seconds'
  timeout; skipped when ``SPLICE_OFFLINE`` is set). Offline and not cached it is one
  :class:`~splice.core.errors.WeightsError` line saying which file to put where.
- ``detectron2``: the model-zoo ``mask_rcnn_R_50_FPN_3x`` when detectron2 is installed
  (it is optional and not a dependency); weights = ``model_zoo`` (found offline first, see
  :mod:`eval.d2`), a local ``.pkl``/``.pth`` or ``random``. Inputs go in as its ``DefaultPredictor``
  feeds them (BGR ``uint8``, PIL shortest-edge resize); the score threshold is its
  ``ROI_HEADS.SCORE_THRESH_TEST`` and the mask threshold is applied by its ``detector_postprocess``.

Inference is batched (a list of same-size images per forward pass). ``min_size`` (``--detector-size``)
overrides the resize of the shorter side (torchvision's default 800, longer side capped at
1333 scaled alike) to trade accuracy for CPU time. Models are built lazily: the identity
(what goes into cache keys and records) is known without loading anything, so a fully
cached scoring run never builds the model.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from splice.core.errors import ConfigError, WeightsError
from splice.core.weightfiles import download_weights

from .iou import Instance

log = logging.getLogger(__name__)

DEFAULT_DETECTOR = "maskrcnn_resnet50_fpn_v2"
DEFAULT_TAG = "COCO_V1"
DETECTORS = ("maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn", "detectron2")
DEFAULT_MIN_SIZE, DEFAULT_MAX_SIZE = 800, 1333
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".pkl", ".ckpt")
UNUSED_NAMES = ("N/A", "__background__")
D2_CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
TAG_URLS = {
    "maskrcnn_resnet50_fpn_v2": {"COCO_V1": "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"},
    "maskrcnn_resnet50_fpn": {"COCO_V1": "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"},
}  # fmt: skip
"""torchvision's weights tags and URLs (``MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.url`` ...), written out so that
readiness needs no import of torchvision's detection models (seconds); a test checks them against torchvision."""


def _weights_enum(arch: str):
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights

    return {"maskrcnn_resnet50_fpn_v2": MaskRCNN_ResNet50_FPN_V2_Weights,
            "maskrcnn_resnet50_fpn": MaskRCNN_ResNet50_FPN_Weights}[arch]  # fmt: skip


def coco_categories() -> list[str]:
    """torchvision's 91 COCO names (index = class id; ``N/A`` for unused ids, 0 = background)."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights

    return list(MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"])


def _weights_dir() -> Path:
    from splice.core.paths import weights_dir

    return weights_dir()


def _hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _is_file_spec(spec: str) -> bool:
    return spec.lower().endswith(WEIGHT_SUFFIXES) or os.sep in spec or spec.startswith(".")


def _sha256(path: Path) -> str:
    from splice.core.imageio import sha256_file

    return sha256_file(path)


@dataclass
class DetectorSettings:
    """Everything besides the weights that changes the masks (goes into cache keys and records)."""

    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    min_size: int | None = None  # None = the model's default (800 for torchvision)

    def to_dict(self) -> dict[str, Any]:
        return {"score_threshold": self.score_threshold, "mask_threshold": self.mask_threshold,
                "min_size": self.min_size}  # fmt: skip


class Identified:
    """A model known by its ``identity`` dict (weights spec, file sha256, random seed) before it is built."""

    identity: dict[str, Any]

    @property
    def random(self) -> bool:
        return bool(self.identity.get("random"))

    def cache_identity(self) -> dict[str, Any]:
        from .cache import location_free

        return location_free(self.identity)


def same_size_batches(images: Sequence[Image.Image], batch_size: int, run) -> list:
    """``run`` (a list of images -> a list of results) on batches of at most ``batch_size`` images of one size;
    the results in the order of ``images``. Images of different sizes never share a batch: a batch is padded to
    its largest image, and padding would make an image's result depend on its batch mates (and the cache on
    the order of scoring)."""
    out: list = [None] * len(images)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.size), []).append(i)
    step = max(1, batch_size)
    for idx in groups.values():
        for j in range(0, len(idx), step):
            chunk = idx[j : j + step]
            for i, result in zip(chunk, run([images[i] for i in chunk])):
                out[i] = result
    return out


@dataclass
class Detector(Identified):
    """A lazily built instance-segmentation model; see the module docstring.

    Create it with :func:`load_detector`. ``identity`` is known at once; the model is
    built on the first :meth:`detect`.
    """

    name: str
    spec: str
    path: Path | None
    identity: dict[str, Any]
    settings: DetectorSettings
    device: str = "cpu"
    batch_size: int = 2
    _model: Any = field(default=None, repr=False)
    _names: list[str] = field(default_factory=list, repr=False)
    _d2: Any = field(default=None, repr=False)  # (cfg, ResizeShortestEdge) of the detectron2 backend

    # -- model ------------------------------------------------------------------------
    def _build_torchvision(self):
        import torch
        import torchvision.models.detection as D

        min_size = self.settings.min_size or DEFAULT_MIN_SIZE
        max_size = round(DEFAULT_MAX_SIZE * min_size / DEFAULT_MIN_SIZE)
        # The model itself drops boxes at or below the score threshold, so masks are only
        # pasted for detections we keep (a large saving on CPU).
        kwargs = dict(min_size=min_size, max_size=max_size, box_score_thresh=self.settings.score_threshold)
        factory = getattr(D, self.name)
        seed = int(self.identity.get("seed", 0))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # random weights are reproducible
            model = factory(weights=None, weights_backbone=None, num_classes=91, **kwargs)
        if self.path is not None:
            from splice.core.weightfiles import read_state_dict

            sd = read_state_dict(self.path)
            for outer in ("model", "state_dict"):
                if isinstance(sd.get(outer), dict):
                    sd = sd[outer]
            own = model.state_dict()
            missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
            bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
            if missing or bad:
                hint = (f"missing {len(missing)} tensors (e.g. {missing[0]})" if missing else
                        f"wrong shape for {bad[0]}: {tuple(sd[bad[0]].shape)} vs {tuple(own[bad[0]].shape)}")
                other = "maskrcnn_resnet50_fpn" if self.name.endswith("_v2") else "maskrcnn_resnet50_fpn_v2"
                raise WeightsError(f"weights {self.path} do not fit {self.name}: {hint}; try --detector {other}")
            model.load_state_dict({k: sd[k] for k in own if k in sd}, strict=False)
            if self.name == "maskrcnn_resnet50_fpn":
                # torchvision's v1 COCO weights were trained with FrozenBatchNorm eps=0 (overwrite_eps)
                for m in model.modules():
                    if isinstance(m, torch.nn.BatchNorm2d):
                        m.eps = 0.0
        self._names = coco_categories()
        return model.eval().to(self.device)

    def _build_detectron2(self):
        from detectron2.data import MetadataCatalog  # type: ignore[import-not-found]
        from detectron2.data import transforms as T  # type: ignore[import-not-found]

        from . import d2

        cfg = d2.config(D2_CONFIG, self.identity, self.device, self.settings.min_size)
        # the ROI heads keep boxes with score > SCORE_THRESH_TEST; _instances then keeps score >= threshold
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = self.settings.score_threshold
        model = d2.build(cfg, self.identity)
        self._d2 = (cfg, T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST],
                                              cfg.INPUT.MAX_SIZE_TEST))  # fmt: skip
        self._names = list(MetadataCatalog.get(cfg.DATASETS.TEST[0]).thing_classes)
        return model

    @property
    def model(self):
        if self._model is None:
            log.info("building %s (%s)", self.name, self.spec)
            self._model = self._build_detectron2() if self.name == "detectron2" else self._build_torchvision()
        return self._model

    # -- inference --------------------------------------------------------------------
    def detect(self, images: Sequence[Image.Image]) -> list[list[Instance]]:
        """Instances of each RGB image (score >= threshold, masks binarised), in same-size batches."""
        run = self._detect_d2 if self.name == "detectron2" else self._detect_tv
        return [found or [] for found in same_size_batches(images, self.batch_size, run)]

    def _detect_tv(self, images: list[Image.Image]) -> list[list[Instance]]:
        import torch

        from splice.core.imageio import to_tensor

        model = self.model
        with torch.inference_mode():
            results = model([to_tensor(im.convert("RGB")).to(self.device) for im in images])
        return [self._instances(r["labels"], r["scores"], r["masks"][:, 0] >= self.settings.mask_threshold)
                for r in results]  # fmt: skip

    def _detect_d2(self, images: list[Image.Image]) -> list[list[Instance]]:
        """detectron2 as its DefaultPredictor feeds it (BGR uint8, PIL shortest-edge resize), with the raw
        instances pasted at our mask threshold: ``model(inputs)`` would binarise at a fixed 0.5."""
        import torch
        from detectron2.modeling.postprocessing import detector_postprocess  # type: ignore[import-not-found]

        from . import d2

        model = self.model
        cfg, aug = self._d2
        tv_ids = {name: i for i, name in enumerate(coco_categories())}
        inputs = [d2.model_input(cfg, aug, im) for im in images]
        with torch.inference_mode():
            raw = model.inference(inputs, do_postprocess=False)
            results = [detector_postprocess(r, x["height"], x["width"], mask_threshold=self.settings.mask_threshold)
                       for r, x in zip(raw, inputs)]  # fmt: skip
        out = []
        for r in results:
            inst = r.to("cpu")
            names = [self._names[int(c)] for c in inst.pred_classes]
            labels = torch.tensor([tv_ids.get(n, -1) for n in names], dtype=torch.long)
            out.append(self._instances(labels, inst.scores, inst.pred_masks.bool(), names=names))
        return out

    def _instances(self, labels, scores, masks, names: list[str] | None = None) -> list[Instance]:
        labels = labels.cpu().numpy().astype(int)
        scores = scores.cpu().numpy().astype(float)
        masks = masks.cpu().numpy().astype(bool)
        keep = np.nonzero(scores >= self.settings.score_threshold)[0]
        out = []
        for k in keep:
            name = names[k] if names else self._names[labels[k]]
            if name in UNUSED_NAMES:  # COCO ids without a class: trained models never fire there, random ones do
                continue
            out.append(Instance(int(labels[k]), name, float(scores[k]), masks[k]))
        return out


def detectron2_available() -> bool:
    from . import d2

    return d2.available()


def _missing_tag_message(name: str, tag: str, file: str, url: str) -> str:
    return (f"Mask R-CNN weights {name}.{tag} are not cached and could not be downloaded (offline?): download {url} "
            f"and put it in {_hub_checkpoints()}/ or {_weights_dir()}/ (keep the name {file}), or pass "
            f"--detector-weights /path/to/{file}; --allow-random-weights runs a smoke test with meaningless IoU")


def load_detector(
    name: str = DEFAULT_DETECTOR,
    weights: str | None = None,
    *,
    device: str = "cpu",
    allow_random: bool = False,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    min_size: int | None = None,
    batch_size: int = 2,
    seed: int = 0,
) -> Detector:
    """Resolve ``weights`` for detector ``name`` and return a lazily built :class:`Detector`.

    Priority: an existing local file > ``random`` (needs ``allow_random``) > a tag (local
    weights dir, torch hub cache, download) > ``random`` fallback for the *default* weights
    when ``allow_random`` (warned) > :class:`WeightsError`.
    """
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; use one of {', '.join(DETECTORS)}")
    if name == "detectron2":
        from . import d2

        d2.require("--detector detectron2", f"--detector {DEFAULT_DETECTOR}")
    if not 0.0 <= score_threshold <= 1.0 or not 0.0 < mask_threshold < 1.0:
        raise ConfigError(f"thresholds must lie in [0, 1]: score {score_threshold}, mask {mask_threshold}")
    if min_size is not None and min_size < 32:
        raise ConfigError(f"--detector-size {min_size} is too small; use at least 32 (default {DEFAULT_MIN_SIZE})")
    settings = DetectorSettings(score_threshold, mask_threshold, min_size)
    backend = "detectron2" if name == "detectron2" else "torchvision"
    spec = weights or ("model_zoo" if name == "detectron2" else DEFAULT_TAG)

    def make(spec: str, path: Path | None, extra: dict[str, Any]) -> Detector:
        identity = {"backend": backend, "arch": name, "spec": spec, **extra}
        identity.setdefault("random", False)
        return Detector(name, spec, path, identity, settings, device=device, batch_size=batch_size)

    def random_detector(reason: str) -> Detector:
        return make("random", None, {"random": True, "seed": seed, "note": reason})

    if name == "detectron2":
        from . import d2

        ident = d2.resolve_weights(D2_CONFIG, spec, allow_random=allow_random, explicit=weights is not None,
                                   option="--detector-weights")  # fmt: skip
        path = Path(ident["path"]) if ident.get("path") else None
        return Detector(name, ident["spec"], path, {**ident, "arch": name}, settings, device=device,
                        batch_size=batch_size)  # fmt: skip
    if spec == "random":
        if not allow_random:
            raise WeightsError("--detector-weights random gives meaningless masks; add --allow-random-weights "
                               "to confirm (tests and smoke runs only)")  # fmt: skip
        return random_detector("requested")
    if _is_file_spec(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise WeightsError(f"detector weights file not found: {path}; check --detector-weights")
        return make("file", path, {"path": str(path), "file": path.name, "sha256": _sha256(path)})
    enum = _weights_enum(name)
    try:
        tag = enum[spec.split(".")[-1]]
    except KeyError:
        raise WeightsError(f"--detector-weights {spec!r} is not a torchvision tag of {name} "
                           f"({', '.join(w.name for w in enum)}), a local file, or 'random'") from None  # fmt: skip
    url = tag.url
    file = url.rsplit("/", 1)[-1]
    candidates = [_weights_dir() / file, _hub_checkpoints() / file]
    found = next((p for p in candidates if p.is_file()), None) or download_weights(url, _hub_checkpoints() / file)
    if found is None:
        message = _missing_tag_message(name, tag.name, file, url)
        if allow_random and weights is None:
            log.warning("%s; continuing with RANDOM detector weights as allowed", message)
            return random_detector("default weights unavailable")
        raise WeightsError(message)
    # torchvision file names carry the first hex digits of the file's sha256 (torch.hub's check).
    digest = _sha256(found)
    prefix = file.rsplit("-", 1)[-1].split(".")[0]
    if not digest.startswith(prefix):
        raise WeightsError(f"{found} is corrupt (sha256 {digest[:8]}... does not start with {prefix}); "
                           f"delete it and download {url} again")  # fmt: skip
    return make(tag.name, found, {"file": file, "sha256": digest})


def requirements(name: str = DEFAULT_DETECTOR, weights: str | None = None, allow_random: bool = False) -> list:
    """What :func:`load_detector` needs here, as readiness (:class:`splice.core.method.Requirement`): the
    backend and the weights, found on this machine; nothing is downloaded or built."""
    from splice.core.method import Requirement

    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; use one of {', '.join(DETECTORS)}")
    if name == "detectron2":
        from . import d2

        return d2.requirements(D2_CONFIG, weights or "model_zoo", "--detector-weights", allow_random)
    spec = weights or DEFAULT_TAG
    if spec == "random":
        return [Requirement("--detector-weights random", "random weights (smoke runs and tests only); needs "
                            "--allow-random-weights", allow_random)]  # fmt: skip
    if _is_file_spec(spec):
        path = Path(spec).expanduser()
        return [Requirement(f"Mask R-CNN weights {spec}", "pass an existing state-dict file with --detector-weights",
                            path.is_file(), str(path))]  # fmt: skip
    tag = spec.split(".")[-1]
    url = TAG_URLS[name].get(tag)
    if url is None:
        raise WeightsError(f"--detector-weights {spec!r} is not a torchvision tag of {name} "
                           f"({', '.join(TAG_URLS[name])}), a local file, or 'random'")  # fmt: skip
    file = url.rsplit("/", 1)[-1]
    found = next((p for p in (_weights_dir() / file, _hub_checkpoints() / file) if p.is_file()), None)
    ready = found is not None or (allow_random and weights is None)
    return [Requirement(f"COCO Mask R-CNN weights {name}.{tag}", _missing_tag_message(name, tag, file, url), ready,
                        str(found) if found else None)]  # fmt: skip
