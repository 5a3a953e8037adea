"""Embedding cosines to the appearance image: CLIP (open_clip), DINO and DINOv2 CLS (timm).

Each image goes through the library's own evaluation preprocessing and model once; the
embedding (a few hundred floats) is kept in the disk cache too. The value is the cosine of the
two embeddings, ``normalize(e_out) . normalize(e_ref)`` (``F.normalize``, as open_clip's
``encode_image(..., normalize=True)`` does), higher is better.

- **clip**: ``open_clip.create_model_and_transforms(model, pretrained=<file>)`` and its eval
  transform (shortest side to the model's size, bicubic, centre crop, the tag's mean/std);
  ``model.encode_image``. A tag's file is resolved offline first
  (:func:`eval.measures.weights.open_clip_source`) and the tag's preprocessing configuration
  (mean, std, interpolation, resize mode) is passed on as open_clip does for a tag. A tag trained
  with QuickGELU on a model without it is refused (open_clip would only warn): use the
  ``-quickgelu`` model name. Default: ``ViT-B-32-quickgelu`` with OpenAI's weights (Radford et al.,
  ICML 2021), the usual "CLIP score" backbone.
- **dino** / **dinov2**: ``timm.create_model(f"{model}.{tag}", num_classes=0)``: the output is the
  CLS token after the final norm (timm's ``global_pool="token"``; for DINO this is what DINO's
  own linear evaluation reads); preprocessing by ``timm.data.resolve_data_config`` +
  ``create_transform`` of the tag (DINO: resize 248, crop 224; DINOv2: resize and crop 518; ImageNet
  mean/std). Weights from a file go through timm's ``checkpoint_filter_fn`` (DINO and DINOv2
  release files load as they are). Defaults: DINO ViT-S/16 (the "DINO score" of DreamBooth, Ruiz
  et al. CVPR 2023) and DINOv2 ViT-S/14.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from splice.core.errors import ConfigError, WeightsError

from .base import APPEARANCE, Measure
from .weights import WeightsSource, open_clip_source, seeded, timm_source

log = logging.getLogger(__name__)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two embeddings: ``F.normalize`` each (float32, as computed) and take the dot product."""
    import torch
    import torch.nn.functional as F

    x = F.normalize(torch.from_numpy(np.asarray(a, dtype=np.float32))[None], dim=-1)
    y = F.normalize(torch.from_numpy(np.asarray(b, dtype=np.float32))[None], dim=-1)
    return float((x * y).sum(dim=-1).item())


class _Embedding(Measure):
    compares = APPEARANCE
    higher_is_better = True
    persist = True

    def _embed(self, image: Image.Image):
        """Subclasses: the library's embedding of one image, a (1, D) tensor."""
        raise NotImplementedError

    def _extract(self, image: Image.Image) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            emb = self._embed(image)
        return {"embedding": emb[0].detach().float().cpu().numpy()}

    def _compare(self, out: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
        return {"value": cosine(out["embedding"], ref["embedding"])}


# -- CLIP ------------------------------------------------------------------------------------------------------------

CLIP_PAPER = "Radford et al. Learning Transferable Visual Models From Natural Language Supervision. ICML 2021"
PREPROCESS_KEYS = {"mean": "image_mean", "std": "image_std", "interpolation": "image_interpolation",
                   "resize_mode": "image_resize_mode"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ClipOptions:
    model: str = dataclasses.field(default="ViT-B-32-quickgelu", metadata={"help": "open_clip model name"})
    weights: str = dataclasses.field(default="openai", metadata={
        "help": "open_clip pretrained tag of the model, a state-dict file, or random"})


class ClipCosine(_Embedding):
    name = "clip"
    label = "CLIP image cosine to the appearance image"
    default_model = "open_clip ViT-B-32-quickgelu, pretrained tag openai"
    digits = 4
    reference = CLIP_PAPER
    packages = {"open_clip_torch": "open_clip"}
    Options = ClipOptions

    def _source(self) -> tuple[WeightsSource, dict[str, Any]]:
        """The weights of the model and the tag's configuration; a model that is not open_clip's, or a tag
        trained with the other activation, is a one-line ConfigError (before any weights are looked for)."""
        import open_clip

        model_name = self.opts.model
        model_cfg = open_clip.get_model_config(model_name)
        if model_cfg is None:
            raise ConfigError(f"clip.model {model_name!r} is not an open_clip model (open_clip.list_models())")
        source, tag_cfg = open_clip_source(model_name, self.opts.weights)
        if bool(tag_cfg.get("quick_gelu", False)) != bool(model_cfg.get("quick_gelu", False)):
            other = f"{model_name}-quickgelu" if tag_cfg.get("quick_gelu") else model_name.replace("-quickgelu", "")
            raise ConfigError(f"clip: the {self.opts.weights!r} weights were trained with quick_gelu="
                              f"{bool(tag_cfg.get('quick_gelu'))} but model {model_name} has "
                              f"{bool(model_cfg.get('quick_gelu', False))}; use clip.model={other}")  # fmt: skip
        return source, tag_cfg

    def weight_sources(self) -> dict[str, WeightsSource]:
        return {"model": self._source()[0]}

    def _load(self) -> None:
        import open_clip

        model_name = self.opts.model
        tag_cfg = self._source()[1]
        source = self.resolved_sources()["model"]
        tag_cfg = {} if source.random else tag_cfg
        kwargs = {PREPROCESS_KEYS[k]: v for k, v in tag_cfg.items() if k in PREPROCESS_KEYS}
        was = logging.root.manager.disable
        logging.disable(logging.WARNING)  # open_clip logs "initialized randomly" etc. on the root logger
        try:
            with seeded():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    model_name, pretrained=None if source.random else str(source.path), **kwargs)
        except RuntimeError as e:  # a file that does not fit the model
            raise WeightsError(f"clip: {source.path} does not fit open_clip model {model_name}: "
                               f"{' '.join(str(e).split())[:200]}") from None  # fmt: skip
        finally:
            logging.disable(was)
        self.model = model.eval().to(self.device)
        self.preprocess = preprocess

    def _embed(self, image: Image.Image):
        return self.model.encode_image(self.preprocess(image)[None].to(self.device))


# -- DINO / DINOv2 ---------------------------------------------------------------------------------------------------

DINO_PAPER = "Caron et al. Emerging Properties in Self-Supervised Vision Transformers. ICCV 2021"
DINOV2_PAPER = "Oquab et al. DINOv2: Learning Robust Visual Features without Supervision. TMLR 2024"


@dataclasses.dataclass(frozen=True)
class DinoOptions:
    model: str = dataclasses.field(default="vit_small_patch16_224", metadata={"help": "timm architecture"})
    weights: str = dataclasses.field(default="dino", metadata={
        "help": "timm pretrained tag of the architecture, a state-dict file, or random"})
    image_size: int | None = dataclasses.field(default=None, metadata={
        "help": "model input size; none = the tag's (DINO 224, DINOv2 518)"})


@dataclasses.dataclass(frozen=True)
class Dinov2Options(DinoOptions):
    model: str = dataclasses.field(default="vit_small_patch14_dinov2", metadata={"help": "timm architecture"})
    weights: str = dataclasses.field(default="lvd142m", metadata={
        "help": "timm pretrained tag of the architecture, a state-dict file, or random"})


class DinoCosine(_Embedding):
    name = "dino"
    label = "DINO CLS cosine to the appearance image"
    default_model = "timm vit_small_patch16_224.dino (DINO ViT-S/16)"
    digits = 4
    reference = DINO_PAPER
    packages = {"timm": "timm"}
    Options = DinoOptions
    presets = {"paper": {}, "smoke": {}}
    default_tag: ClassVar[str] = "dino"

    def weight_sources(self) -> dict[str, WeightsSource]:
        return {"model": timm_source(self.opts.model, self.opts.weights, f"{self.name} weights")[0]}

    def _load(self) -> None:
        import timm
        from timm.data import create_transform, resolve_data_config

        _, tag = timm_source(self.opts.model, self.opts.weights, f"{self.name} weights")
        source = self.resolved_sources()["model"]
        name = f"{self.opts.model}.{tag or self.default_tag}"
        if not tag and not has_pretrained_cfg(name):  # a file or random weights for a ViT without that tag
            name = self.opts.model
        kwargs: dict[str, Any] = {"num_classes": 0}
        if self.opts.image_size:
            kwargs["img_size"] = self.opts.image_size
        try:
            with seeded():
                model = timm.create_model(name, pretrained=False, **kwargs)
        except RuntimeError as e:  # an architecture without the default tag
            raise ConfigError(f"{self.name}.model {self.opts.model!r}: {' '.join(str(e).split())[:200]}") from None
        if not source.random:
            load_timm_file(model, source)
        args = {"input_size": (3, self.opts.image_size, self.opts.image_size)} if self.opts.image_size else {}
        self.data_config = resolve_data_config(args, model=model)
        self.transform = create_transform(**self.data_config)
        self.model = model.eval().to(self.device)

    def _embed(self, image: Image.Image):
        return self.model(self.transform(image)[None].to(self.device))


class Dinov2Cosine(DinoCosine):
    name = "dinov2"
    label = "DINOv2 CLS cosine to the appearance image"
    default_model = "timm vit_small_patch14_dinov2.lvd142m (DINOv2 ViT-S/14)"
    reference = DINOV2_PAPER
    Options = Dinov2Options
    presets = {"paper": {}, "smoke": {"image_size": 224}}
    default_tag = "lvd142m"


def has_pretrained_cfg(name: str) -> bool:
    import timm

    try:
        return timm.models.get_pretrained_cfg(name) is not None
    except RuntimeError:  # "Invalid pretrained tag"
        return False


def load_timm_file(model, source: WeightsSource) -> None:
    """Load a weights file into a timm ViT the way timm loads a pretrained file: the project's reader
    (DINO training checkpoints' ``teacher``, ``module.``/``backbone.`` prefixes, heads dropped), then
    timm's ``checkpoint_filter_fn`` (DINOv2 layouts, position embeddings resampled), then a strict load."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    from splice.core.weightfiles import read_state_dict
    from splice.model.weights import normalise_state_dict

    state = checkpoint_filter_fn(normalise_state_dict(read_state_dict(source.path)), model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{source.path} does not fit {source.what}: {' '.join(str(e).split())[:200]}") from None
