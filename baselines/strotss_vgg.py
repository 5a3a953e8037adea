"""ImageNet VGG16 hypercolumn features for STROTSS (Kolkin, Salavon, Shakhnarovich, CVPR 2019).

STROTSS describes every image location by a *hypercolumn*: the raw RGB value (in [0, 1]) plus
the VGG16 activations after ``relu1_1, relu1_2, relu2_1, relu2_2, relu3_1, relu3_2, relu3_3,
relu4_3`` and ``relu5_3`` (indices 1, 3, 6, 8, 11, 13, 15, 22, 29 of torchvision's
``vgg16().features``), 3 + 2*64 + 2*128 + 3*256 + 2*512 = 2179 channels in all. As in the
authors' ``vgg_pt.py`` (``Vgg16_pt.forward_base``), the extractor takes raw RGB and applies the
ImageNet normalisation itself; the hypercolumn's first three channels are the raw RGB input.

Weights come, in this order of priority, from a local file the user names (``.pth`` / ``.pt``
holding a torchvision ``vgg16`` state dict or only its ``features``, or ``.safetensors``), from
torchvision's cache by tag (``IMAGENET1K_V1``, the weights the authors' code loads with
``pretrained=True``), or are ``random`` (tests and smoke runs only; marked in every record).
A tagged file is looked for in torchvision's cache (``$TORCH_HOME/hub/checkpoints``), then in
``$SPLICE_WEIGHTS_DIR`` (default ``~/.cache/splice-bench/weights``) under the same name.
Nothing is ever downloaded: a missing file is a one-line :class:`~splice.core.errors.WeightsError`
that says which file to fetch and where to put it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from splice.core.errors import WeightsError
from splice.core.paths import weights_dir
from splice.core.weightfiles import file_sha256

#: torchvision's VGG16 layout ("D"): numbers are conv widths, "M" a 2x2 max-pool.
VGG16_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512
)

#: indices of ``features`` whose outputs enter the hypercolumn (all ReLU outputs).
HYPERCOLUMN_LAYERS: tuple[int, ...] = (1, 3, 6, 8, 11, 13, 15, 22, 29)

#: channels of a hypercolumn: RGB + the layers above.
HYPERCOLUMN_CHANNELS = 3 + 64 + 64 + 128 + 128 + 256 + 256 + 256 + 512 + 512

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DEFAULT_TAG = "IMAGENET1K_V1"
RANDOM = "random"
RANDOM_INIT_SEED = 0  # random stand-in weights do not depend on the run seed


def strotss_vgg_features() -> nn.Sequential:
    """VGG16 ``features`` up to ``relu5_3`` (index 29), with torchvision's module indices."""
    layers: list[nn.Module] = []
    width = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(width, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            width = int(item)
    assert len(layers) == HYPERCOLUMN_LAYERS[-1] + 1
    return nn.Sequential(*layers)


class StrotssVGG(nn.Module):
    """Returns ``[image, relu1_1, ..., relu5_3]`` for a raw-RGB batch in [0, 1] (normalised inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = strotss_vgg_features()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        out = [image]
        x = (image - self.mean) / self.std
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in HYPERCOLUMN_LAYERS:
                out.append(x)
        return out


@dataclass(frozen=True)
class VGGWeights:
    """Where VGG16 weights for a spec are (or would be) and whether they are there."""

    spec: str
    kind: str  # "file" | "tag" | "random"
    path: Path | None
    url: str | None = None
    also: Path | None = None  # second place a tagged file is looked for

    @property
    def present(self) -> bool:
        return self.kind == "random" or (self.path is not None and self.path.is_file())

    def how(self) -> str:
        if self.kind == "random":
            return "random weights (smoke runs and tests only)"
        if self.kind == "tag":
            return f"download {self.url} and put it at {self.path} (torchvision's cache) or in {self.also.parent}/"
        return f"the VGG16 weight file {self.path} (a torchvision vgg16 state dict)"


def resolve_vgg_weights(spec: str | None) -> VGGWeights:
    """Turn a weights spec (None, a torchvision tag, a file path or ``random``) into a location."""
    spec = str(spec) if spec not in (None, "") else DEFAULT_TAG
    if spec.lower() == RANDOM:
        return VGGWeights(spec=RANDOM, kind="random", path=None)
    tag = spec.split(".")[-1] if spec.startswith("VGG16_Weights.") else spec
    if tag in ("DEFAULT", DEFAULT_TAG, "IMAGENET1K_FEATURES"):
        from torchvision.models import VGG16_Weights

        weights = VGG16_Weights[tag]
        url = weights.url
        name = os.path.basename(url)
        # torchvision's cache first, then the suite's weights folder (same file name)
        candidates = [Path(torch.hub.get_dir()) / "checkpoints" / name, weights_dir() / name]
        path = next((c for c in candidates if c.is_file()), candidates[0])
        return VGGWeights(spec=weights.name, kind="tag", path=path, url=url, also=candidates[1])
    return VGGWeights(spec=spec, kind="file", path=Path(spec).expanduser())


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unreadable, truncated, pickled code: all a user problem
        raise WeightsError(f"VGG16 weight file {path} cannot be read ({type(e).__name__}); re-download it") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"VGG16 weight file {path} holds no state dict; save vgg16().state_dict() instead")
    return state


def _features_state(state: dict[str, Any], path: Path, model: nn.Sequential) -> dict[str, torch.Tensor]:
    """Keys ``features.N.*`` (a whole vgg16) or ``N.*`` (only features) -> ``N.*``."""
    expected = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, ref in expected.items():
        value = state.get(f"features.{key}", state.get(key))
        if value is None:
            raise WeightsError(f"{path} does not look like a VGG16 checkpoint: features.{key} is missing")
        if tuple(value.shape) != tuple(ref.shape):
            shape = tuple(value.shape)
            raise WeightsError(f"{path} does not look like a VGG16 checkpoint: features.{key} has shape {shape}")
        out[key] = value
    return out


def _random_init(model: nn.Module) -> None:
    """torchvision's VGG initialisation, from a fixed generator (reproducible smoke runs)."""
    g = torch.Generator().manual_seed(RANDOM_INIT_SEED)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_out) ** 0.5)
                m.bias.zero_()


def load_strotss_vgg(
    spec: str | None, device: str = "cpu", allow_random: bool = False
) -> tuple[StrotssVGG, dict[str, Any]]:
    """Build the hypercolumn extractor with the weights ``spec`` names.

    Returns the model (eval mode, no gradients for its parameters) and the identity of its
    weights for the record: ``{"spec", "path", "sha256", "random"}``.

    Raises:
        WeightsError: the weights are missing (and ``allow_random`` is False) or unusable.
    """
    where = resolve_vgg_weights(spec)
    identity: dict[str, Any] = {"backbone": "vgg16", "spec": where.spec, "path": None, "sha256": None, "random": False}
    if where.kind != "random" and not where.present:
        if not allow_random:
            if where.kind == "tag":
                raise WeightsError(
                    f"VGG16 ImageNet weights ({where.spec}) not found: download {where.url} and put it at {where.path} "
                    f"(torchvision's cache) or in {where.also.parent}/, or pass --weights /path/to/vgg16.pth "
                    "(or allow random weights for a smoke run)"
                )
            raise WeightsError(
                f"VGG16 weight file not found: {where.path}; pass the path of a torchvision vgg16 .pth file"
            )
        identity["fallback_from"] = where.spec
        where = VGGWeights(spec=RANDOM, kind="random", path=None)
    model = StrotssVGG()
    if where.kind == "random":
        _random_init(model.features)
        identity.update(spec=RANDOM, random=True, init_seed=RANDOM_INIT_SEED)
    else:
        assert where.path is not None
        state = _features_state(_read_state_dict(where.path), where.path, model.features)
        model.features.load_state_dict(state, strict=True)
        identity.update(path=str(where.path), sha256=file_sha256(where.path))
    return model.to(device), identity
