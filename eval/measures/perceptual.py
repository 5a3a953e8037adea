"""Full-reference perceptual distances to the aligned structure image: LPIPS and DISTS.

- **LPIPS** (Zhang, Isola, Efros, Shechtman, Wang, CVPR 2018), computed by the ``lpips`` package
  (its authors' code): v0.1, ImageNet VGG16 or AlexNet trunk, the learned linear heads that ship
  inside the wheel (``lpips/weights/v0.1/{vgg,alex}.pth``). ``lpips.LPIPS`` would fetch the trunk
  from torchvision's hub; we build it with ``pnet_rand=True`` (no download) and load the trunk from
  the torchvision file ourselves (:mod:`eval.measures.weights`). Inputs in [0, 1] (``normalize=True``).
  Per image: ``normalize_tensor(net(scaling_layer(2x - 1)))``; per pair: ``sum_l spatial_average(lin_l((f_x - f_y)^2))``
  -- ``LPIPS.forward``'s own lines, split so that each image's trunk runs once.
- **DISTS** (Ding, Ma, Wang, Simoncelli, TPAMI 2020), computed by ``piq.DISTS`` (returns
  1 - DISTS similarity: a distance in [0, 1]). Its constructor downloads alpha/beta and the
  VGG16 trunk; :func:`piq_dists` builds the same module through the ``ContentLoss`` constructor
  piq's ``DISTS.__init__`` calls, with alpha/beta from a local file (the official ``dists-pytorch``
  wheel ships them) and the trunk from the torchvision file. piq shrinks inputs whose short side
  exceeds 256 px to 256 (bilinear), as its forward does. Per image: that resize and
  ``DISTS.get_features``; per pair: ``compute_distance`` and ``ContentLoss.forward``'s weighted mean.

Both keep the per-image features in memory only (VGG activations of one 512 px image for LPIPS
are ~130 MB).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

from PIL import Image

from splice.core.imageio import to_tensor

from .base import STRUCTURE, Measure, limit_side
from .weights import (
    TORCHVISION_TAG,
    WeightsSource,
    dists_source,
    features_state,
    load_torchvision_features,
    seeded,
    torchvision_features,
    torchvision_source,
)

LPIPS_PAPER = ("Zhang, Isola, Efros, Shechtman, Wang. The Unreasonable Effectiveness of Deep Features as a "
               "Perceptual Metric. CVPR 2018")  # fmt: skip
DISTS_PAPER = ("Ding, Ma, Wang, Simoncelli. Image Quality Assessment: Unifying Structure and Texture Similarity. "
               "TPAMI 2020")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class LpipsOptions:
    weights: str = dataclasses.field(default=TORCHVISION_TAG, metadata={
        "help": "trunk weights: torchvision tag IMAGENET1K_V1, a state-dict file, or random"})
    max_side: int | None = dataclasses.field(default=512, metadata={
        "help": "shrink both images so the longer side is at most this (bicubic); none = native size"})


class _Lpips(Measure):
    compares = STRUCTURE
    higher_is_better = False
    reference = LPIPS_PAPER
    packages = {"lpips": "lpips"}
    Options = LpipsOptions
    presets = {"paper": {}, "smoke": {"max_side": 128}}
    net: ClassVar[str] = "vgg"
    arch: ClassVar[str] = "vgg16"

    def weight_sources(self) -> dict[str, WeightsSource]:
        return {"trunk": torchvision_source(self.arch, self.opts.weights),
                "lin": WeightsSource("LPIPS v0.1 linear heads", "lpips-wheel", "file", lin_weights_file(self.net),
                                     how="they ship inside the lpips wheel: pip install lpips")}  # fmt: skip

    def _load(self) -> None:
        trunk = self.resolved_sources()["trunk"]  # before the slow import
        import lpips

        with warnings.catch_warnings(), seeded():
            warnings.simplefilter("ignore", UserWarning)  # torchvision's "pretrained is deprecated"
            model = lpips.LPIPS(net=self.net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        if not trunk.random:
            own = model.net.state_dict()  # "slice2.5.weight" holds torchvision's "features.5.weight"
            state = features_state(trunk, torchvision_features(self.arch))
            model.net.load_state_dict({k: state[k.split(".", 1)[1]] for k in own}, strict=True)
        self.model = model.eval().to(self.device)
        self.lin_file = self.resolved_sources()["lin"].path

    def _extract(self, image: Image.Image) -> list[Any]:
        import lpips
        import torch

        x = to_tensor(limit_side(image, self.opts.max_side))[None].to(self.device)
        with torch.inference_mode():
            outs = self.model.net.forward(self.model.scaling_layer(2 * x - 1))
            return [lpips.normalize_tensor(o) for o in outs]

    def _compare(self, out: list[Any], ref: list[Any]) -> dict[str, float]:
        import lpips
        import torch

        with torch.inference_mode():
            layers = [lpips.spatial_average(self.model.lins[k]((out[k] - ref[k]) ** 2), keepdim=True)
                      for k in range(self.model.L)]  # fmt: skip
            value = 0
            for layer in layers:
                value += layer
        return {"value": float(value.item()), **{f"layer{k + 1}": float(v.item()) for k, v in enumerate(layers)}}


def lin_weights_file(net: str):
    """The learned linear heads of LPIPS v0.1 for ``net``, inside the installed ``lpips`` package (found
    without importing it; None when it is not installed)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"


class LpipsVGG(_Lpips):
    name = "lpips_vgg"
    label = "LPIPS (VGG16) to the structure image"
    default_model = "VGG16 ImageNet trunk (torchvision IMAGENET1K_V1) + LPIPS v0.1 linear heads (lpips wheel)"
    net = "vgg"
    arch = "vgg16"


class LpipsAlex(_Lpips):
    name = "lpips_alex"
    label = "LPIPS (AlexNet) to the structure image"
    default_model = "AlexNet ImageNet trunk (torchvision IMAGENET1K_V1) + LPIPS v0.1 linear heads (lpips wheel)"
    net = "alex"
    arch = "alexnet"


# -- DISTS ---------------------------------------------------------------------------------------------------------

DISTS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
DISTS_SIDE = 256  # piq's DISTS.forward shrinks inputs whose short side exceeds this


def read_alpha_beta(source: WeightsSource):
    """``(alpha, beta)`` tensors of shape (1, 1475, 1, 1); for ``random``: equal weights summing to 1."""
    import torch

    from splice.core.errors import WeightsError
    from splice.core.weightfiles import read_state_dict

    n = sum(DISTS_CHANNELS)
    if source.random:
        w = torch.full((1, n, 1, 1), 0.5 / n)
        return w, w.clone()
    state = read_state_dict(source.path)
    try:
        alpha, beta = state["alpha"], state["beta"]
    except (KeyError, TypeError):
        raise WeightsError(f"{source.path} holds no DISTS 'alpha' and 'beta'") from None
    if tuple(alpha.shape) != (1, n, 1, 1) or tuple(beta.shape) != (1, n, 1, 1):
        raise WeightsError(f"{source.path}: DISTS alpha/beta must have shape (1, {n}, 1, 1), not {tuple(alpha.shape)}")
    return alpha.float(), beta.float()


def piq_dists(features, alpha, beta):
    """``piq.DISTS`` with the given VGG16 ``features`` and alpha/beta, built without its downloads:
    the ``ContentLoss`` constructor with the arguments ``piq.DISTS.__init__`` passes it."""
    import piq
    import torch
    from piq.perceptual import IMAGENET_MEAN, IMAGENET_STD, VGG16_LAYERS, ContentLoss

    class LocalDISTS(piq.DISTS):
        def __init__(self) -> None:  # piq.DISTS.__init__ minus torch.hub / torchvision downloads
            weights = list(torch.split(alpha, list(DISTS_CHANNELS), dim=1))
            weights += list(torch.split(beta, list(DISTS_CHANNELS), dim=1))
            ContentLoss.__init__(
                self, feature_extractor=features, layers=[VGG16_LAYERS[n] for n in DISTS_LAYERS], weights=weights,
                replace_pooling=True, reduction="mean", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                normalize_features=False, allow_layers_weights_mismatch=True)

    return LocalDISTS().eval()


def piq_resize(x):
    """piq's ``DISTS.forward`` resize of a batch whose short side exceeds 256 px (else ``x`` itself)."""
    import torch

    h, w = x.shape[-2:]
    if min(h, w) <= DISTS_SIDE:
        return x
    return torch.nn.functional.interpolate(x, scale_factor=DISTS_SIDE / min(h, w), recompute_scale_factor=False,
                                           mode="bilinear")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DistsOptions:
    weights: str = dataclasses.field(default=TORCHVISION_TAG, metadata={
        "help": "VGG16 trunk: torchvision tag IMAGENET1K_V1, a state-dict file, or random"})
    alpha_beta: str | None = dataclasses.field(default=None, metadata={
        "help": "DISTS alpha/beta file (default: dists_weights.pt in the weights dir or the dists-pytorch wheel)"})


class Dists(Measure):
    name = "dists"
    label = "DISTS (1 - similarity) to the structure image"
    default_model = "VGG16 ImageNet trunk (torchvision IMAGENET1K_V1) + DISTS alpha/beta (dists-pytorch wheel)"
    compares = STRUCTURE
    higher_is_better = False
    reference = DISTS_PAPER
    packages = {"piq": "piq"}
    Options = DistsOptions

    def weight_sources(self) -> dict[str, WeightsSource]:
        return {"trunk": torchvision_source("vgg16", self.opts.weights),
                "alpha_beta": dists_source(self.opts.alpha_beta)}

    def _load(self) -> None:
        sources = self.resolved_sources()
        features = load_torchvision_features("vgg16", sources["trunk"])
        alpha, beta = read_alpha_beta(sources["alpha_beta"])
        self.model = piq_dists(features, alpha, beta).to(self.device)

    def _extract(self, image: Image.Image) -> list[Any]:
        import torch

        x = piq_resize(to_tensor(image)[None].to(self.device))
        with torch.inference_mode():
            return self.model.get_features(x)

    def _compare(self, out: list[Any], ref: list[Any]) -> dict[str, float]:
        import torch

        with torch.inference_mode():
            distances = self.model.compute_distance(out, ref)
            loss = torch.cat([(d * w.to(d)).mean(dim=[2, 3]) for d, w in zip(distances, self.model.weights)],
                             dim=1).sum(dim=1)  # fmt: skip
            return {"value": float((1 - loss.mean()).item())}
