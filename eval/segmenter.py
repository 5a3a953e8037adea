"""The ``panoptic`` segmenter: a COCO-panoptic model (objects and stuff) turned into one label map per image.

PROTOCOL.md (version 2): COCO Mask R-CNN has no mountain or sky class, so the Splice paper's Mountains row of
Table 2 (Tumanyan et al., CVPR 2022) needs a segmenter that also labels "stuff". Each image becomes one label
map in the merged label space of :mod:`eval.labelmaps` (0 = any object, 1..53 = the COCO panoptic stuff
classes); :func:`eval.labelmaps.label_scores` compares two of them.

Every pixel gets one class: the label map is the model's **semantic** inference (official for both models'
COCO-panoptic checkpoints), with the 80 thing classes merged before the per-pixel argmax:

- ``mask2former`` (through ``transformers``; ``pip install 'splice-bench[panoptic]'``): per query, class
  probabilities (softmax without the no-object column) and mask probabilities (sigmoid of the mask logits,
  upsampled bilinearly to the image); score of class ``c`` at a pixel = ``sum_q p_q(c) m_q(x)`` (Mask2Former's
  ``semantic_inference``), the 80 thing scores summed into "object", argmax. Weights (``--panoptic-weights``):
  a Hugging Face id (default :data:`DEFAULT_MASK2FORMER`, from the local Hugging Face cache, else downloaded
  when the hub answers), a local folder written by ``save_pretrained`` (config + weights, optionally the
  processor's config), or ``random`` (the default's architecture, Swin-T, seeded).
- ``panoptic_fpn`` (detectron2's model zoo ``COCO-PanopticSegmentation/panoptic_fpn_R_101_3x``, when
  detectron2 is installed): the argmax of its semantic head, whose 54 classes are exactly the merged space
  ("things" first, then the 53 stuff classes in COCO panoptic order). Weights as in :mod:`eval.d2`.

``auto`` (the default ``--panoptic-model``) is ``panoptic_fpn`` when detectron2 is installed and
``mask2former`` otherwise, as PROTOCOL.md says. Input size (``--panoptic-size N``): the shorter side is resized
to N (default 800, the official test size of both models), the longer side capped at ``1333 * N / 800``.
Models are built on first use; the identity (what cache keys and records carry) is known before.
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

from . import d2
from .detector import Identified, same_size_batches
from .labelmaps import labels, merge_matrix

log = logging.getLogger(__name__)

SEGMENTERS = ("maskrcnn", "panoptic")
DEFAULT_BY_DATASET = {"mountains": "panoptic"}
"""The layout segmenter of each data set when ``--segmenter`` is not given (PROTOCOL.md); others: maskrcnn."""

PANOPTIC_MODELS = ("auto", "mask2former", "panoptic_fpn")
DEFAULT_MASK2FORMER = "facebook/mask2former-swin-tiny-coco-panoptic"
D2_PANOPTIC_CONFIG = "COCO-PanopticSegmentation/panoptic_fpn_R_101_3x.yaml"
DEFAULT_SIZE, DEFAULT_MAX_SIZE = 800, 1333
MAX_LABEL_PIXELS = 4_000_000
"""Above this many pixels the Mask2Former label map is computed at a smaller size of the same aspect and
resized (nearest) to the image: the per-class score maps would otherwise take gigabytes."""
HF_FILES = ("config.json", "preprocessor_config.json", "model.safetensors", "pytorch_model.bin")
QUERY_CHUNK = 16


def default_segmenter(dataset: str) -> str:
    return DEFAULT_BY_DATASET.get(dataset, "maskrcnn")


def check_segmenter(name: str | None) -> str | None:
    if name is not None and name not in SEGMENTERS:
        raise ConfigError(f"unknown segmenter {name!r}; use --segmenter {' or '.join(SEGMENTERS)}")
    return name


def transformers_available() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class SegmenterSettings:
    """Everything besides the weights that changes a label map (cache keys and records)."""

    size: int | None = None  # None = DEFAULT_SIZE

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size or DEFAULT_SIZE, "max_size": self.max_size, "label_space": "object+stuff-54"}

    @property
    def max_size(self) -> int:
        return round(DEFAULT_MAX_SIZE * (self.size or DEFAULT_SIZE) / DEFAULT_SIZE)


def _swin_tiny_config():
    """Mask2Former Swin-T, COCO panoptic (the official ``maskformer2_swin_tiny_bs16_50ep.yaml`` on the R50 base:
    Swin embed 96, depths 2-2-6-2, heads 3-6-12-24, window 7; 100 queries, 9+1 decoder layers, 256 channels,
    which are transformers' Mask2FormerConfig defaults), 133 labels. Used for ``random`` weights only."""
    from transformers import Mask2FormerConfig, SwinConfig

    from .labelmaps import coco_panoptic

    id2label = {c.id: c.name for c in coco_panoptic()}
    backbone = SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                          drop_path_rate=0.3, out_features=["stage1", "stage2", "stage3", "stage4"])  # fmt: skip
    return Mask2FormerConfig(backbone_config=backbone, id2label=id2label, label2id={v: k for k, v in id2label.items()})


@dataclass
class Segmenter(Identified):
    """A lazily built COCO-panoptic model that returns merged label maps (module docstring).

    Create it with :func:`load_segmenter`.
    """

    name: str  # mask2former | panoptic_fpn
    identity: dict[str, Any]
    settings: SegmenterSettings
    device: str = "cpu"
    batch_size: int = 1
    _model: Any = field(default=None, repr=False)
    _aux: Any = field(default=None, repr=False)  # the processor (mask2former) or (cfg, resize) (panoptic_fpn)

    @property
    def spec(self) -> str:
        return str(self.identity.get("spec"))

    # -- building ---------------------------------------------------------------------
    def _build_mask2former(self):
        import torch
        from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        folder = self.identity.get("path")
        if folder is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(self.identity.get("seed", 0)))
                model = Mask2FormerForUniversalSegmentation(_swin_tiny_config())
            processor = Mask2FormerImageProcessor()
        else:
            try:
                model = Mask2FormerForUniversalSegmentation.from_pretrained(folder)
            except (OSError, ValueError) as e:
                raise WeightsError(f"cannot load Mask2Former from {folder}: {str(e).splitlines()[0]}") from None
            has_processor = (Path(folder) / "preprocessor_config.json").is_file()
            processor = Mask2FormerImageProcessor.from_pretrained(folder) if has_processor else \
                Mask2FormerImageProcessor()  # fmt: skip
        if model.config.num_labels != 133:
            raise WeightsError(f"{self.spec}: {model.config.num_labels} labels; a COCO panoptic checkpoint has 133")
        self._check_label_names(model.config.id2label)
        self._aux = processor
        return model.eval().to(self.device)

    def _check_label_names(self, id2label: dict) -> None:
        from .labelmaps import coco_panoptic

        def norm(s: str) -> str:
            return str(s).lower().replace("_", " ").replace("-", " ").strip()

        bad = [(c.id, id2label.get(c.id), c.name) for c in coco_panoptic()
               if norm(id2label.get(c.id, "")) != norm(c.name)]  # fmt: skip
        if bad:
            log.warning("%s: %d class names differ from COCO panoptic's order (e.g. id %d is %r, expected %r); "
                        "things are merged by position", self.spec, len(bad), *bad[0])  # fmt: skip

    def _build_panoptic_fpn(self):
        from detectron2.data import MetadataCatalog  # type: ignore[import-not-found]
        from detectron2.data import transforms as T  # type: ignore[import-not-found]

        cfg = d2.config(D2_PANOPTIC_CONFIG, self.identity, self.device, self.settings.size)
        meta = MetadataCatalog.get(cfg.DATASETS.TEST[0])
        stuff = list(getattr(meta, "stuff_classes", []) or [])
        if len(stuff) != len(labels()):
            raise ConfigError(f"detectron2 metadata {cfg.DATASETS.TEST[0]} has {len(stuff)} semantic classes; "
                              f"the COCO panoptic semantic head has {len(labels())} ('things' + 53 stuff)")
        model = d2.build(cfg, self.identity)
        self._aux = (cfg, T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST],
                                               cfg.INPUT.MAX_SIZE_TEST))  # fmt: skip
        return model

    @property
    def model(self):
        if self._model is None:
            log.info("building %s (%s)", self.name, self.spec)
            self._model = self._build_panoptic_fpn() if self.name == "panoptic_fpn" else self._build_mask2former()
        return self._model

    # -- inference --------------------------------------------------------------------
    def label_maps(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """One ``uint8`` label map (H x W, merged label space) per RGB image; same-size images share a batch."""
        run = self._fpn if self.name == "panoptic_fpn" else self._mask2former
        return same_size_batches([im.convert("RGB") for im in images], self.batch_size, run)

    def _mask2former(self, images: list[Image.Image]) -> list[np.ndarray]:
        import torch
        import torch.nn.functional as F

        model = self.model
        size = {"shortest_edge": self.settings.size or DEFAULT_SIZE, "longest_edge": self.settings.max_size}
        inputs = self._aux(images=images, size=size, return_tensors="pt")
        merge = torch.from_numpy(merge_matrix()).to(self.device)
        maps = []
        with torch.inference_mode():
            outputs = model(pixel_values=inputs["pixel_values"].to(self.device))
            probs = outputs.class_queries_logits.float().softmax(-1)[..., :-1] @ merge  # B x Q x 54
            for b, im in enumerate(images):
                w, h = im.size
                scale = min(1.0, (MAX_LABEL_PIXELS / (w * h)) ** 0.5)
                th, tw = max(1, round(h * scale)), max(1, round(w * scale))
                logits = outputs.masks_queries_logits[b].float()
                score = torch.zeros((probs.shape[-1], th, tw), device=logits.device)
                for q in range(0, logits.shape[0], QUERY_CHUNK):
                    up = F.interpolate(logits[None, q : q + QUERY_CHUNK], size=(th, tw), mode="bilinear",
                                       align_corners=False)[0].sigmoid()  # fmt: skip
                    score += torch.einsum("qc,qhw->chw", probs[b, q : q + QUERY_CHUNK], up)
                lab = score.argmax(0).to(torch.uint8).cpu().numpy()
                if (th, tw) != (h, w):
                    lab = np.asarray(Image.fromarray(lab).resize((w, h), Image.Resampling.NEAREST))
                maps.append(lab)
        return maps

    def _fpn(self, images: list[Image.Image]) -> list[np.ndarray]:
        import torch

        model = self.model
        cfg, aug = self._aux
        inputs = [d2.model_input(cfg, aug, im) for im in images]
        with torch.inference_mode():
            results = model(inputs)
        return [r["sem_seg"].argmax(0).to(torch.uint8).cpu().numpy() for r in results]


# -- resolving weights ---------------------------------------------------------------------
def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", ".", "~")) or spec.count("/") != 1 or os.sep != "/" and os.sep in spec


def _weights_file(folder: Path) -> Path | None:
    return next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)


def _hub_folder(repo: str, local_only: bool) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo, local_files_only=local_only, allow_patterns=list(HF_FILES)))
    except Exception as e:  # not cached / not found / network: the caller decides what to say
        log.info("Hugging Face snapshot of %s (local_only=%s): %s", repo, local_only, str(e).splitlines()[0])
        return None
    return folder if _weights_file(folder) else None


def _mask2former_identity(spec: str, allow_random: bool, explicit: bool) -> dict[str, Any]:
    from splice.core.imageio import sha256_file
    from splice.core.weightfiles import hf_hub_reachable

    base = {"backend": "transformers", "arch": "mask2former"}
    if spec == "random":
        if not allow_random:
            raise WeightsError("--panoptic-weights random gives meaningless label maps; add --allow-random-weights "
                               "to confirm (tests and smoke runs only)")  # fmt: skip
        return {**base, "arch": "mask2former-swin-tiny", "spec": "random", "random": True, "seed": 0,
                "note": "requested"}  # fmt: skip
    path = Path(spec).expanduser()
    if path.is_dir():
        folder = path
    elif _looks_like_path(spec):
        raise WeightsError(f"--panoptic-weights {spec}: folder not found; pass a folder written by "
                           "save_pretrained() or a Hugging Face id such as " + DEFAULT_MASK2FORMER)  # fmt: skip
    else:
        folder = _hub_folder(spec, local_only=True)
        if folder is None and hf_hub_reachable():
            folder = _hub_folder(spec, local_only=False)
            if folder is None:
                raise WeightsError(f"--panoptic-weights {spec}: the Hugging Face hub has no Mask2Former weights "
                                   "under that id (or refused the download)")  # fmt: skip
        if folder is None:
            message = (f"Mask2Former weights {spec!r} are not in the Hugging Face cache and the hub cannot be "
                       f"reached (offline?): run 'hf download {spec} --local-dir DIR' on a machine with internet "
                       "and pass --panoptic-weights DIR")  # fmt: skip
            if allow_random and not explicit:
                log.warning("%s; continuing with RANDOM segmenter weights as allowed", message)
                return {**base, "arch": "mask2former-swin-tiny", "spec": "random", "random": True, "seed": 0,
                        "note": "default weights unavailable"}  # fmt: skip
            raise WeightsError(message)
    weights = _weights_file(folder)
    if weights is None or not (folder / "config.json").is_file():
        raise WeightsError(f"--panoptic-weights {spec}: {folder} holds no config.json and model.safetensors "
                           "(or pytorch_model.bin); pass a folder written by save_pretrained()")  # fmt: skip
    return {**base, "spec": spec, "random": False, "path": str(folder), "file": weights.name,
            "sha256": sha256_file(weights)}  # fmt: skip


def load_segmenter(
    model: str = "auto",
    weights: str | None = None,
    *,
    device: str = "cpu",
    allow_random: bool = False,
    size: int | None = None,
    batch_size: int = 1,
) -> Segmenter:
    """Resolve the panoptic model and its weights; return a lazily built :class:`Segmenter`.

    Raises:
        ConfigError: an unknown model, a backend that is not installed, a size below 32.
        WeightsError: weights that cannot be found (offline: one line saying what to fetch and where).
    """
    if model not in PANOPTIC_MODELS:
        raise ConfigError(f"unknown panoptic model {model!r}; use one of {', '.join(PANOPTIC_MODELS)}")
    if model == "auto":
        model = "panoptic_fpn" if d2.available() else "mask2former"
    if size is not None and size < 32:
        raise ConfigError(f"--panoptic-size {size} is too small; use at least 32 (default {DEFAULT_SIZE})")
    settings = SegmenterSettings(size)
    if model == "panoptic_fpn":
        d2.require("--panoptic-model panoptic_fpn", "--panoptic-model mask2former")
        identity = d2.resolve_weights(D2_PANOPTIC_CONFIG, weights or "model_zoo", allow_random=allow_random,
                                      explicit=weights is not None, option="--panoptic-weights")  # fmt: skip
        identity["arch"] = "panoptic_fpn"
    else:
        if not transformers_available():
            raise ConfigError("--panoptic-model mask2former needs transformers: pip install 'splice-bench[panoptic]' "
                              "(or pip install transformers)")  # fmt: skip
        identity = _mask2former_identity(weights or DEFAULT_MASK2FORMER, allow_random, explicit=weights is not None)
    return Segmenter(model, identity, settings, device=device, batch_size=batch_size)


def requirements(model: str = "auto", weights: str | None = None, allow_random: bool = False) -> list:
    """What :func:`load_segmenter` needs here, as readiness (:class:`splice.core.method.Requirement`): the
    backend and the weights, found on this machine (the local Hugging Face cache); nothing is downloaded or built."""
    from splice.core.method import Requirement

    if model not in PANOPTIC_MODELS:
        raise ConfigError(f"unknown panoptic model {model!r}; use one of {', '.join(PANOPTIC_MODELS)}")
    if model == "auto":
        model = "panoptic_fpn" if d2.available() else "mask2former"
    if model == "panoptic_fpn":
        return d2.requirements(D2_PANOPTIC_CONFIG, weights or "model_zoo", "--panoptic-weights", allow_random)
    import importlib.util

    if importlib.util.find_spec("transformers") is None:  # importing it would take seconds
        return [Requirement("Python package transformers", "pip install 'splice-bench[panoptic]' (or pip install "
                            "transformers)", False)]  # fmt: skip
    spec = weights or DEFAULT_MASK2FORMER
    if spec == "random":
        return [Requirement("--panoptic-weights random", "random weights (smoke runs and tests only); needs "
                            "--allow-random-weights", allow_random)]  # fmt: skip
    path = Path(spec).expanduser()
    if path.is_dir() or _looks_like_path(spec):
        ok = path.is_dir() and (path / "config.json").is_file() and _weights_file(path) is not None
        return [Requirement(f"Mask2Former weights {spec}", "pass a folder written by save_pretrained()", ok, str(path))]
    folder = _hub_folder(spec, local_only=True)
    how = (f"run 'hf download {spec} --local-dir DIR' on a machine with internet and pass --panoptic-weights DIR "
           "(or let it download when online)")  # fmt: skip
    return [Requirement(f"Mask2Former weights {spec}", how, folder is not None or (allow_random and weights is None),
                        str(folder) if folder else None)]  # fmt: skip
