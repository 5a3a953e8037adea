"""Splice's configuration: one dataclass, named presets, CLI overrides, a stable hash.

Presets (``SpliceConfig.from_preset``):

============  =====================================================================
``paper``      the paper: 2,000 steps, ViT-B/8, native resolution (faithful)
``paper-10k``  the public configuration: 10,000 steps (faithful)
``fast``       1,000 steps in bf16 autocast (not faithful: half the steps, lower precision)
``smoke``      12 steps, ViT-S/16 at 112 px, both images resized to 128 px, full-image term
               every 5 steps: seconds on a CPU, for tests and pipelines (not faithful)
============  =====================================================================

Everything that changes the output is hashed (:meth:`SpliceConfig.hash`); run-time
settings (device, snapshot and checkpoint frequency, progress bars) are not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from splice.core import options as _options
from splice.core.errors import ConfigError
from splice.core.method import config_hash
from splice.model.weights import DEFAULT_BACKBONE, canonical_backbone, default_weights


@dataclass
class SpliceConfig:
    # length and optimiser (SPLICE.md "Each training step" 5)
    steps: int = 2000
    lr: float = 0.002
    beta1: float = 0.0
    beta2: float = 0.99
    # loss weights and schedule (step 4)
    lambda_appearance: float = 10.0
    lambda_structure: float = 1.0
    lambda_identity: float = 1.0
    lambda_entire_structure: float = 1.0
    lambda_entire_appearance: float = 10.0
    entire_every: int = 75
    # augmentations and crops (steps 1-2)
    crop_min_cover: float = 0.95
    flip_p: float = 0.5
    jitter_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)  # brightness, contrast, saturation, hue
    blur_p: float = 0.2
    blur_kernel: int = 3
    # feature extractor
    backbone: str = DEFAULT_BACKBONE
    weights: str | None = None  # None -> "<backbone>.dino"
    vit_short_side: int = 224
    vit_max_side: int = 480
    # input size: None = native; else the structure image's shorter side in pixels
    resize: int | None = None
    resize_appearance: int | None = None  # the appearance image's shorter side (None = native, as the reference)
    # how it is computed (precision changes numbers slightly; compile and checkpointing do not)
    precision: Literal["fp32", "bf16"] = "fp32"
    memory_format: Literal["auto", "channels-last", "nchw"] = "auto"  # the generator's (see splice.model.train)
    compile: bool = False
    checkpoint_full: bool = field(default=False, metadata={"hash": False})  # activation checkpointing, same numbers
    preset: str = field(default="paper", metadata={"option": False})  # set by from_preset
    # run-time settings, not hashed
    checkpoint_every: int = field(default=50, metadata={"hash": False})
    save_every: int = field(default=0, metadata={"hash": False})

    def __post_init__(self) -> None:
        self.backbone = canonical_backbone(self.backbone, option="splice.backbone:")
        self.jitter = tuple(self.jitter)
        if self.weights is None:
            self.weights = default_weights(self.backbone)
        if self.steps < 1:
            raise ConfigError(f"--steps (splice.steps) must be >= 1, not {self.steps}")
        if self.entire_every < 1:
            raise ConfigError(f"splice.entire_every must be >= 1, not {self.entire_every}")
        if self.resize is not None and self.resize < 32:
            raise ConfigError(f"--resize (splice.resize) must be at least 32 px, not {self.resize}")

    @classmethod
    def from_preset(cls, name: str = "paper", **overrides: Any) -> "SpliceConfig":
        """The configuration of preset ``name`` with ``overrides`` (text or typed; None = not given),
        typed and checked by the suite's one option parser (:mod:`splice.core.options`)."""
        given = {k: v for k, v in overrides.items() if v is not None and k != "preset"}
        cfg = _options.resolve(cls, PRESETS, name, given, "splice")
        cfg.preset = name
        return cfg

    @property
    def faithful(self) -> bool:
        """True when the configuration computes exactly what the reference computes."""
        ref = SpliceConfig()
        same = all(getattr(self, f.name) == getattr(ref, f.name) for f in fields(self)
                   if f.name not in ("steps", "backbone", "weights", "resize", "compile", "checkpoint_full", "preset")
                   and f.metadata.get("hash", True))
        return same

    def hashed(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("hash", True) and f.name != "preset"}

    def hash(self) -> str:
        return config_hash(self.hashed())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["jitter"] = list(self.jitter)
        return d

    def replace(self, **changes: Any) -> "SpliceConfig":
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"steps": 2000},
    "paper-10k": {"steps": 10000},
    "fast": {"steps": 1000, "precision": "bf16"},
    "smoke": {"steps": 12, "backbone": "vit_small_patch16_224", "vit_short_side": 112, "vit_max_side": 240,
              "resize": 128, "resize_appearance": 128, "entire_every": 5, "checkpoint_every": 4},
}
