"""Building the frozen DINO ViT and loading its weights.

``--weights`` takes one of:

- a timm pretrained tag such as ``vit_base_patch8_224.dino`` (the default for ViT-B/8),
  fetched through timm's Hugging Face cache when online;
- a local state-dict file (``.pth``/``.pt``/``.bin``/``.safetensors``) in DINO's or timm's
  key layout (DINO's full training checkpoints with ``teacher``/``student`` entries work
  too: the teacher backbone is used, as DINO's own evaluation does);
- ``random``: timm's random initialisation (from a fixed seed, so reproducible), for tests
  and smoke runs only. Every record made with it says so.

Offline without cached weights the result is one :class:`~splice.core.errors.WeightsError`
line that says which file to download and where to put it. Files placed in
``$SPLICE_WEIGHTS_DIR`` (default ``~/.cache/splice-bench/weights``) under DINO's release
file name are found without any flag.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from splice.core.errors import ConfigError, WeightsError
from splice.core.paths import weights_dir
from splice.core.weightfiles import WEIGHT_SUFFIXES, file_sha256, hf_hub_reachable, read_state_dict

log = logging.getLogger(__name__)

#: supported backbones: timm architecture -> DINO release file name
DINO_FILES: dict[str, str] = {
    "vit_base_patch8_224": "dino_vitbase8_pretrain.pth",
    "vit_small_patch8_224": "dino_deitsmall8_pretrain.pth",
    "vit_base_patch16_224": "dino_vitbase16_pretrain.pth",
    "vit_small_patch16_224": "dino_deitsmall16_pretrain.pth",
}
DINO_URL = "https://dl.fbaipublicfiles.com/dino/{stem}/{file}"
ALIASES = {"B/8": "vit_base_patch8_224", "S/8": "vit_small_patch8_224",
           "B/16": "vit_base_patch16_224", "S/16": "vit_small_patch16_224"}  # fmt: skip
DEFAULT_BACKBONE = "vit_base_patch8_224"


def canonical_backbone(name: str, option: str = "--backbone") -> str:
    """``B/8`` / ``vit_base_patch8_224.dino`` / ``vit_base_patch8_224`` -> ``vit_base_patch8_224``.

    Known: the four DINO backbones (by alias or timm name) and any timm ``vit_*`` architecture
    (tests use ``vit_tiny_patch16_224``); anything else is a one-line error listing the DINO ones.
    """
    arch = ALIASES.get(name, name).split(".", 1)[0]
    if arch in DINO_FILES:
        return arch
    if arch.startswith("vit_"):
        import timm

        if timm.is_model(arch):
            return arch
    known = ", ".join(f"{alias} ({full})" for alias, full in ALIASES.items())
    raise ConfigError(f"{option} {name!r} is not a known ViT; use one of {known}, or another timm vit_* architecture")


def default_weights(backbone: str) -> str:
    arch = canonical_backbone(backbone)
    return f"{arch}.dino" if arch in DINO_FILES else "random"


@dataclass(frozen=True)
class WeightsIdentity:
    """What the ViT was loaded from; stored in every record."""

    backbone: str
    spec: str
    source: str  # "timm-cache" | "file" | "random"
    sha256: str | None = None
    random: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "spec": self.spec, "source": self.source, "sha256": self.sha256,
                "random": self.random}  # fmt: skip


def _missing_message(arch: str, spec: str) -> str:
    file = DINO_FILES.get(arch)
    if file is None:
        return (f"no cached weights for {spec!r} and it could not be downloaded; "
                f"pass --weights /path/to/state_dict.pth (timm or DINO key layout)")
    url = DINO_URL.format(stem=file[: -len(".pth")], file=file)
    return (f"DINO weights {spec!r} are not cached and could not be downloaded (offline?): download {url} "
            f"and put it in {weights_dir()}/ (or pass --weights /path/to/{file}), "
            f"or use --weights random for a smoke run with meaningless output")


def normalise_state_dict(sd: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Accept DINO release files, DINO training checkpoints and timm state dicts."""
    for outer in ("teacher", "state_dict", "model"):
        if outer in sd and isinstance(sd[outer], dict):
            sd = sd[outer]
            break
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        if k.startswith("head.") or k.startswith("fc_norm."):
            continue  # DINO projection heads / classifier: not part of the feature extractor
        out[k] = v
    return out


def load_state_dict_into(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    sd = normalise_state_dict(sd)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    shape_bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or shape_bad:
        what = []
        if missing:
            what.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
        if shape_bad:
            k = shape_bad[0]
            what.append(f"wrong shapes (e.g. {k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)})")
        raise WeightsError(f"weights {source} do not fit this backbone: {'; '.join(what)}; check --backbone")
    model.load_state_dict({k: sd[k] for k in own}, strict=True)


RANDOM_SEED = 0
"""``random`` weights are timm's initialisation drawn from this fixed seed, so that smoke runs
are reproducible across processes (a resumed run must see the same ViT)."""


def create_vit(backbone: str) -> torch.nn.Module:
    import timm

    arch = canonical_backbone(backbone)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = timm.create_model(arch, pretrained=False, num_classes=0)
    except RuntimeError as e:
        raise WeightsError(f"unknown backbone {backbone!r} ({e}); use one of {', '.join(DINO_FILES)}") from None
    if getattr(model, "cls_token", None) is None or not hasattr(model, "blocks"):
        raise WeightsError(f"backbone {backbone!r} is not a ViT with a CLS token")
    return model


def _timm_cached_file(arch: str, tag: str) -> Path | None:
    """The locally cached file of a timm pretrained tag, without touching the network."""
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(f"{arch}.{tag}")
    except Exception:
        return None
    if cfg is None or not cfg.hf_hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        hit = try_to_load_from_cache(cfg.hf_hub_id, filename)
        if isinstance(hit, str) and os.path.exists(hit):
            return Path(hit)
    return None


def _download_timm(arch: str, tag: str) -> Path | None:
    """Try to fetch a timm tag into the Hugging Face cache (short timeout; None when offline)."""
    if not hf_hub_reachable():
        log.info("the Hugging Face hub is not reachable: not downloading %s.%s", arch, tag)
        return None
    try:
        import timm
        from huggingface_hub import hf_hub_download

        cfg = timm.models.get_pretrained_cfg(f"{arch}.{tag}")
        if cfg is None or not cfg.hf_hub_id:
            return None
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
        hub_log = logging.getLogger("huggingface_hub")
        level = hub_log.level
        hub_log.setLevel(logging.ERROR)  # its retry warnings would bury our one-line message
        try:
            return Path(hf_hub_download(cfg.hf_hub_id, "model.safetensors"))
        finally:
            hub_log.setLevel(level)
    except Exception as e:  # offline, DNS failure, 404: all mean "not available here"
        log.info("download of %s.%s failed: %s", arch, tag, e)
        return None


def load_vit_weights(
    backbone: str = DEFAULT_BACKBONE, weights: str | None = None, allow_random: bool = False
) -> tuple[torch.nn.Module, WeightsIdentity]:
    """Build the timm ViT for ``backbone`` and load ``weights`` (see module docstring).

    Priority: an existing local file > ``random`` > a timm tag (local weights dir under
    DINO's file name, then timm's cache, then a download) > ``random`` fallback when
    ``allow_random`` (warned) > :class:`WeightsError`.
    """
    arch = canonical_backbone(backbone)
    spec = weights or default_weights(arch)
    model = create_vit(arch)
    path = Path(spec).expanduser()
    if path.suffix in WEIGHT_SUFFIXES or os.sep in spec:
        if not path.exists():
            raise WeightsError(f"weights file not found: {path}")
        load_state_dict_into(model, read_state_dict(path), str(path))
        return model, WeightsIdentity(arch, spec, "file", file_sha256(path))
    if spec == "random":
        return model, WeightsIdentity(arch, "random", "random", None, random=True)

    tag_arch, _, tag = spec.partition(".")
    if tag_arch != arch or not tag:
        raise WeightsError(f"--weights {spec!r} does not name a {arch} tag (e.g. {arch}.dino), a file, or 'random'")
    local = weights_dir() / DINO_FILES.get(arch, "-")
    found = local if local.exists() else _timm_cached_file(arch, tag) or _download_timm(arch, tag)
    if found is not None:
        load_state_dict_into(model, read_state_dict(found), str(found))
        return model, WeightsIdentity(arch, spec, "file" if found == local else "timm-cache", file_sha256(found))
    if allow_random:
        log.warning("%s; continuing with RANDOM weights as allowed", _missing_message(arch, spec))
        return model, WeightsIdentity(arch, "random", "random", None, random=True)
    raise WeightsError(_missing_message(arch, spec))
