"""The ViT structure and appearance distances: one scorer for one pair and for a whole run.

PROTOCOL.md ("ViT structure and appearance distances"; the Splice losses of Tumanyan et al., CVPR 2022, on
full images, SPLICE.md for the features), with the features of :meth:`splice.model.vit.ViTExtractor.image_features`:

- ``structure_distance`` = MSE(SelfSim(output), SelfSim(aligned structure image)), lower is better;
- ``appearance_distance`` = MSE(CLS(output), CLS(appearance image)), lower is better;
- ``appearance_cosine`` = cosine similarity of those two CLS tokens, higher is better.

"Aligned": the structure image is first transformed with the job's recorded geometry (:mod:`eval.align`),
exactly as for the layout IoU; ``splice score vit`` takes the same geometry (``--geometry`` in the text form
of :mod:`splice.core.geometry`, or ``--record JOB_DIR/record.json``) and goes through this same code, so a
pair scored alone and within ``splice score --out`` gives the same numbers.

One forward pass per distinct image serves both distances, through the content-hash cache
(:mod:`eval.cache`): an entry holds the keys (T x D) and the CLS token; the self-similarity (T x T) is
recomputed from the keys on every read, hit or miss, so a record computed from the cache equals the first
one bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from splice.core.geometry import Geometry
from splice.core.imageio import sha256_image, to_tensor

from .align import align_structure
from .cache import FeatureCache, cache_key, resolve_cache_dir
from .scorers import SPECS, Scorer

METRIC_KEYS = ("structure_distance", "appearance_distance", "appearance_cosine")
HIGHER_IS_BETTER = dict(SPECS["vit"].values)


def identity_dict(extractor) -> dict[str, Any]:
    ident = getattr(extractor, "identity", {}) or {}
    return dict(ident.to_dict() if hasattr(ident, "to_dict") else ident)


def vit_distances(feat_s: dict, feat_t: dict, feat_o: dict) -> dict[str, float]:
    """The three numbers from the features of the aligned structure image, the appearance image and the output."""
    if feat_o["ssim"].shape != feat_s["ssim"].shape:
        raise ValueError(f"self-similarity shapes differ ({tuple(feat_o['ssim'].shape)} vs "
                         f"{tuple(feat_s['ssim'].shape)}): align the structure image to the output first")  # fmt: skip
    return {
        "structure_distance": F.mse_loss(feat_o["ssim"].float(), feat_s["ssim"].float()).item(),
        "appearance_distance": F.mse_loss(feat_o["cls"].float(), feat_t["cls"].float()).item(),
        "appearance_cosine": F.cosine_similarity(feat_o["cls"].float(), feat_t["cls"].float(), dim=0).item(),
    }


class CachedViT(Scorer):
    """The ``vit`` metric: a ViT feature extractor behind a :class:`~eval.cache.FeatureCache`.

    ``model_calls`` counts forward passes (0 on a fully cached run).
    """

    spec = SPECS["vit"]

    def __init__(self, extractor, cache: FeatureCache):
        self.extractor = extractor
        self.cache = cache
        self.model_calls = 0
        ident = identity_dict(extractor)
        self.weights = ident
        self.backbone = ident.get("backbone") or getattr(extractor, "backbone", None) or "vit"
        # where a file lives does not change the features: key on its hash
        self.key_identity = {"backbone": self.backbone, "sha256": ident.get("sha256"),
                             "random": bool(ident.get("random", False)),
                             "spec": None if ident.get("sha256") else ident.get("spec")}  # fmt: skip
        self._settings = {"short_side": getattr(extractor, "short_side", None),
                          "max_side": getattr(extractor, "max_side", None)}  # fmt: skip

    def identity(self) -> dict[str, Any]:
        return dict(self.key_identity)

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)

    def model_fields(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "weights": self.weights}

    def _forward(self, image: Image.Image) -> dict[str, Any]:
        self.model_calls += 1
        tensor = to_tensor(image)
        device = getattr(getattr(self.extractor, "mean", None), "device", None)
        return self.extractor.image_features(tensor.to(device) if device is not None else tensor)

    def features(self, image: Image.Image) -> dict[str, torch.Tensor]:
        """``{"ssim": (T, T), "cls": (D,)}`` float32 tensors of an RGB image."""
        from splice.model.vit import self_similarity

        key = cache_key(sha256_image(image), self.key_identity, self._settings)
        arrays = self.cache.get(key)
        if arrays is None:
            feats = self._forward(image)
            keys = feats.get("keys")
            arrays = {"cls": feats["cls"].detach().float().cpu().numpy()}
            if keys is not None:
                arrays["keys"] = keys.detach().float().cpu().numpy()
            else:
                arrays["ssim"] = feats["ssim"].detach().float().cpu().numpy()
            self.cache.put(key, arrays)
        # the same arithmetic on a hit and a miss: a rescored record equals the first one bit for bit
        cls = torch.from_numpy(np.asarray(arrays["cls"]))
        if "keys" in arrays:
            ssim = self_similarity(torch.from_numpy(np.asarray(arrays["keys"]))[None])[0]
        else:
            ssim = torch.from_numpy(np.asarray(arrays["ssim"]))
        return {"ssim": ssim, "cls": cls}

    def score(self, images: dict[str, Image.Image], geometry: Any = None, where: str = "") -> dict[str, Any]:
        return score_vit(images["structure"], images["appearance"], images["output"], self, geometry, where)


def cached_vit(extractor, cache_dir: str | Path | None = None, memory_only: bool = False) -> CachedViT:
    """``extractor`` behind the cache under ``cache_dir`` (``vit/<backbone>-<weights>/``); ``memory_only``: a
    cache that lives only in this process (nothing written)."""
    vit = CachedViT(extractor, FeatureCache(resolve_cache_dir(cache_dir), "vit", "vit", enabled=not memory_only))
    ident = vit.key_identity
    vit.cache.model = f"{vit.backbone}-{(ident.get('sha256') or ident.get('spec') or 'x')[:12]}"
    return vit


def vit_scorer(opts: Any, cache_root, **_: Any) -> CachedViT:
    """The ``vit`` scorer of :class:`eval.scoring.ScoreOptions` (registered in :data:`eval.scorers.FACTORIES`)."""
    from splice.model.vit import load_vit

    kwargs: dict[str, Any] = {"weights": opts.weights, "device": opts.device, "allow_random": opts.allow_random_weights}
    if opts.backbone:
        kwargs["backbone"] = opts.backbone
    return cached_vit(load_vit(**kwargs), cache_root)


def vit_requirements(opts: Any, **_: Any) -> list:
    """What the ``vit`` scorer needs with these options (readiness): timm and the DINO weights, found on this
    machine (``$SPLICE_WEIGHTS_DIR`` under DINO's file name, or timm's cache); nothing built or downloaded."""
    from splice.core.method import Requirement
    from splice.core.paths import weights_dir
    from splice.core.weightfiles import WEIGHT_SUFFIXES
    from splice.model.weights import (
        DEFAULT_BACKBONE,
        DINO_FILES,
        _missing_message,
        _timm_cached_file,
        canonical_backbone,
        default_weights,
    )

    arch = canonical_backbone(opts.backbone or DEFAULT_BACKBONE)
    spec = opts.weights or default_weights(arch)
    random_ok = bool(opts.allow_random_weights)
    if spec == "random":
        return [Requirement(f"ViT weights random ({arch})", "random weights (smoke runs and tests only)", True)]
    path = Path(spec).expanduser()
    if path.suffix in WEIGHT_SUFFIXES or "/" in spec:
        return [Requirement(f"ViT weights {spec}", "pass an existing state-dict file with --weights", path.is_file(),
                            str(path))]  # fmt: skip
    tag_arch, _, tag = spec.partition(".")
    local = weights_dir() / DINO_FILES.get(arch, "-")
    found = local if local.is_file() else (_timm_cached_file(arch, tag) if tag_arch == arch and tag else None)
    return [Requirement(f"DINO ViT weights {spec}", _missing_message(arch, spec), found is not None or random_ok,
                        str(found) if found else None)]  # fmt: skip


def score_vit(
    structure: Image.Image,
    appearance: Image.Image,
    output: Image.Image,
    vit: CachedViT,
    geometry: Geometry | dict | None = None,
    where: str = "",
) -> dict[str, Any]:
    """The ``vit.json`` record of one job: the structure image is aligned to the output first."""
    aligned, how = align_structure(structure, output.size, geometry, where=where)
    dist = vit_distances(vit.features(aligned), vit.features(appearance), vit.features(output))
    return {**vit.record_base(), **{k: float(v) for k, v in dist.items()}, "aligned": how}
