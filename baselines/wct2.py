"""``wct2``: Photorealistic Style Transfer via Wavelet Transforms (Yoo, Uh, Chun, Kang, Ha,
ICCV 2019), one of the Splice paper's baselines.

A feed-forward method: the released wavelet encoder/decoder (``cat5`` model) with the
whitening-colouring transform at the encoder, the high-frequency skips and the decoder (the
public code's defaults, ``alpha = 1``, no segmentation masks). The network lives in
:mod:`baselines.wct2_model`.

Weights: the authors' checkpoints ``wave_encoder_cat5_l4.pth`` and ``wave_decoder_cat5_l4.pth``
(in the ``model_checkpoints`` folder of https://github.com/clovaai/WCT2), read from a folder given
by ``--weights DIR`` (``splice bench --weights wct2=DIR``), else ``$SPLICE_WEIGHTS_DIR/wct2``
(default ``~/.cache/splice-bench/weights/wct2``). ``random`` builds randomly initialised networks
(tests and smoke runs only; marked in every record).

Input geometry, as the public code prepares images: resize so the shorter side is 512
(torchvision ``Resize(512)``: bilinear, long side truncated), then centre-crop both sides down
to multiples of 16. The same is done to the appearance image. The output has the cropped size,
and the geometry from the structure image to it is recorded. ``max_side`` (OOM ladder) lowers
the 512. WCT2 has no randomness; the seed is recorded only.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from splice.core.devices import resolve_device
from splice.core.errors import WeightsError
from splice.core.geometry import Geometry
from splice.core.imageio import load_rgb, sha256_file, to_tensor
from splice.core.method import Method, MethodResult, Pair, Requirement, RunSettings
from splice.core.paths import weights_dir

from .wct2_model import TRANSFER_POINTS, WaveDecoder, WaveEncoder, wct2_transfer

log = logging.getLogger(__name__)

OFFICIAL_REPO = "https://github.com/clovaai/WCT2"
RANDOM = "random"
RANDOM_INIT_SEED = 0  # random stand-in weights do not depend on the run seed


@dataclass(frozen=True)
class WCT2Config:
    """Everything that changes a WCT2 output (it has no randomness)."""

    image_size: int = field(default=512, metadata={"help": "shorter side after resizing (the public --image_size)"})
    option_unpool: Literal["cat5", "sum"] = "cat5"
    transfer_at: str = field(default="encoder,decoder,skip", metadata={"help": "comma list of encoder, decoder, skip"})
    alpha: float = 1.0
    reg: float = field(
        default=1.0, metadata={"help": "the '+ I' added to both covariances before the eigendecomposition"}
    )
    multiple: int = field(default=16, metadata={"help": "both sides are centre-cropped to a multiple of this"})

    def __post_init__(self) -> None:
        points = [p.strip() for p in self.transfer_at.split(",") if p.strip()]
        if not points or set(points) - set(TRANSFER_POINTS):
            raise ValueError(f"transfer_at={self.transfer_at!r}; use a comma list of {', '.join(TRANSFER_POINTS)}")
        if self.image_size < 16 or self.multiple < 8 or self.multiple % 8:
            raise ValueError("image_size >= 16 and multiple a multiple of 8 are needed")
        object.__setattr__(self, "transfer_at", ",".join(p for p in TRANSFER_POINTS if p in points))


PRESETS: dict[str, dict[str, Any]] = {"paper": {}, "smoke": {"image_size": 64}}


def wct2_config(settings: RunSettings) -> WCT2Config:
    """The options of ``settings`` (preset, then ``--method-args``), typed and checked."""
    return WCT2().options(settings)


def checkpoint_names(option_unpool: str = "cat5") -> tuple[str, str]:
    return f"wave_encoder_{option_unpool}_l4.pth", f"wave_decoder_{option_unpool}_l4.pth"


def default_weights_dir() -> Path:
    return weights_dir() / "wct2"


def wct2_input_geometry(size: tuple[int, int], short_side: int, multiple: int = 16) -> Geometry:
    """torchvision ``Resize(short_side)`` then ``CenterCrop`` to multiples of ``multiple``."""
    w, h = size
    if w <= h:
        rw, rh = short_side, int(short_side * h / w)
    else:
        rw, rh = int(short_side * w / h), short_side
    resize = Geometry.resize((w, h), (rw, rh))
    cw, ch = rw // multiple * multiple, rh // multiple * multiple
    # torchvision's CenterCrop offsets: int(round((size - crop) / 2)) (round half to even)
    left, top = int(round((rw - cw) / 2.0)), int(round((rh - ch) / 2.0))
    if (cw, ch) == (rw, rh):
        return resize
    crop = Geometry(source=(rw, rh), box=(left, top, left + cw, top + ch), output=(cw, ch), kind="crop")
    return resize.then(crop)


def _prepare(image: Image.Image, short_side: int, multiple: int) -> tuple[Image.Image, Geometry]:
    """Resize (PIL bilinear, as torchvision does for PIL input) and crop exactly as the geometry says."""
    w, h = image.size
    rw, rh = (short_side, int(short_side * h / w)) if w <= h else (int(short_side * w / h), short_side)
    resized = image if (rw, rh) == (w, h) else image.resize((rw, rh), Image.Resampling.BILINEAR)
    cw, ch = rw // multiple * multiple, rh // multiple * multiple
    left, top = int(round((rw - cw) / 2.0)), int(round((rh - ch) / 2.0))
    cropped = resized.crop((left, top, left + cw, top + ch)) if (cw, ch) != (rw, rh) else resized
    return cropped, wct2_input_geometry((w, h), short_side, multiple)


def _to_image_rounded(x: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) -> 8-bit RGB with torchvision ``save_image`` rounding (x*255 + 0.5, clamped)."""
    arr = (x.detach()[0].clamp(0, 1) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")


def _load_state(path: Path, model: torch.nn.Module, what: str) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        problem = type(e).__name__
        raise WeightsError(f"WCT2 {what} checkpoint {path} cannot be read ({problem}); download it again") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"WCT2 {what} checkpoint {path} holds no state dict")
    expected = model.state_dict()
    haar_keys = ("LL.weight", "LH.weight", "HL.weight", "HH.weight")
    merged = {}
    for key, ref in expected.items():
        value = state.get(key)
        if value is None:
            if key.endswith(haar_keys):
                merged[key] = ref  # fixed Haar filters: the formula is the reference
                continue
            raise WeightsError(f"{path} is not a WCT2 {what} checkpoint for this option_unpool: {key} is missing")
        if tuple(value.shape) != tuple(ref.shape):
            raise WeightsError(f"{path} is not a WCT2 {what} checkpoint: {key} has shape {tuple(value.shape)}")
        if key.endswith(haar_keys) and not torch.allclose(value.float(), ref, atol=1e-5):
            raise WeightsError(f"{path}: {key} is not a Haar filter; this is not a WCT2 checkpoint")
        merged[key] = value
    model.load_state_dict(merged, strict=True)


def random_init(*models: torch.nn.Module) -> None:
    """Variance-preserving (He) random convolutions from a fixed generator, zero biases: random
    stand-in networks whose outputs keep the input's scale (a smoke output is not all black)."""
    g = torch.Generator().manual_seed(RANDOM_INIT_SEED)
    for model in models:
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                with torch.no_grad():
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                    m.bias.zero_()


class WCT2(Method):
    name = "wct2"
    paper = "Yoo, Uh, Chun, Kang, Ha. Photorealistic Style Transfer via Wavelet Transforms. ICCV 2019"
    summary = "Wavelet-pooling VGG autoencoder with whitening-colouring transforms (released cat5 checkpoints)."
    devices = ("cpu", "cuda", "mps")
    supports_max_side = True
    in_smoke = True
    Options = WCT2Config
    presets = PRESETS

    def _weights(self, settings: RunSettings) -> str:
        return str(settings.weights) if settings.weights else str(default_weights_dir())

    def requirements(self, settings: RunSettings) -> list[Requirement]:
        spec = self._weights(settings)
        cfg = wct2_config(settings)
        if spec == RANDOM:
            return [Requirement(name="WCT2 checkpoints", how="random weights (smoke runs and tests only)", ready=True)]
        folder = Path(spec).expanduser()
        names = checkpoint_names(cfg.option_unpool)
        ready = all((folder / n).is_file() for n in names)
        how = f"download {' and '.join(names)} from {OFFICIAL_REPO} (folder model_checkpoints) into {folder}"
        return [Requirement(name=f"WCT2 checkpoints ({cfg.option_unpool})", how=how, ready=ready, path=str(folder))]

    def config(self, settings: RunSettings) -> dict[str, Any]:
        spec = self._weights(settings)
        return {
            "method": self.name,
            "preset": self.resolved_preset(settings),
            "weights": RANDOM if spec == RANDOM else "released",
            "max_side": settings.max_side,
            **dataclasses.asdict(wct2_config(settings)),
        }

    def load_networks(
        self, settings: RunSettings, cfg: WCT2Config, device: str
    ) -> tuple[WaveEncoder, WaveDecoder, dict[str, Any]]:
        """The encoder/decoder pair and the identity of their weights (for the record)."""
        spec = self._weights(settings)
        identity: dict[str, Any] = {"spec": spec, "random": False}
        folder = None if spec == RANDOM else Path(spec).expanduser()
        names = checkpoint_names(cfg.option_unpool)
        if folder is not None and folder.is_file():
            both = " and ".join(names)
            raise WeightsError(f"--weights for wct2 must be the folder holding {both}, not a file: {folder}")
        missing = [] if folder is None else [n for n in names if not (folder / n).is_file()]
        if missing and not settings.allow_random_weights:
            raise WeightsError(
                f"WCT2 checkpoints missing: {', '.join(missing)} not in {folder}; download them from the "
                f"model_checkpoints folder of {OFFICIAL_REPO} (see its README) and put them in {folder}, "
                "or pass --weights DIR"
            )
        if missing:
            identity["fallback_from"] = str(folder)
            folder = None
        encoder, decoder = WaveEncoder(cfg.option_unpool), WaveDecoder(cfg.option_unpool)
        if folder is None:
            random_init(encoder, decoder)
            identity.update(spec=RANDOM, random=True, init_seed=RANDOM_INIT_SEED)
        else:
            files = {}
            for model, name, what in ((encoder, names[0], "encoder"), (decoder, names[1], "decoder")):
                _load_state(folder / name, model, what)
                files[name] = sha256_file(folder / name)
            identity.update(path=str(folder), sha256=files)
        return encoder.to(device).eval(), decoder.to(device).eval(), identity

    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:
        cfg = wct2_config(settings)
        device = resolve_device(settings.device)
        s = load_rgb(pair.structure, role="structure image")
        a = load_rgb(pair.appearance, role="appearance image")
        short = min(cfg.image_size, settings.max_side) if settings.max_side else cfg.image_size
        short = max(short, cfg.multiple)
        content, geometry = _prepare(s.image, short, cfg.multiple)
        style, _ = _prepare(a.image, short, cfg.multiple)
        encoder, decoder, weights = self.load_networks(settings, cfg, device)
        if weights["random"]:
            log.warning("wct2: RANDOM encoder/decoder weights (smoke/test only): the output means nothing")
        start = time.perf_counter()
        with torch.no_grad():
            out = wct2_transfer(
                encoder,
                decoder,
                to_tensor(content).unsqueeze(0).to(device),
                to_tensor(style).unsqueeze(0).to(device),
                transfer_at=cfg.transfer_at.split(","),
                alpha=cfg.alpha,
                reg=cfg.reg,
            )
        image = _to_image_rounded(out)
        assert image.size == tuple(geometry.output), (image.size, geometry)
        info = {
            "seed": settings.seed,
            "deterministic": True,
            "device": device,
            "weights": weights,
            "random_weights": bool(weights["random"]),
            "inputs": {"structure": s.record(), "appearance": a.record()},
            "style_size": list(style.size),
            "short_side": short,
            "transfer_seconds": round(time.perf_counter() - start, 3),
        }
        return MethodResult(image=image, geometry=geometry, info=info)
