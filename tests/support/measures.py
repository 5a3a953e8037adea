"""Tiny settings of the registry's measures for the tests (no test in this file): random weights, small inputs.

``TINY_CLIP`` is a 0.2 M-parameter open_clip configuration; :func:`register_tiny_clip` registers it with
open_clip as ``splice-tiny-clip``. :data:`TINY_OPTIONS` gives every measure options (``--metric-args``) that
keep it to well under a second per image on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_CLIP_NAME = "splice-tiny-clip"
TINY_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16,
                                             "head_width": 32},
             "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1}}  # fmt: skip

TINY_OPTIONS = {
    "lpips_vgg": {"weights": "random", "max_side": "32"},
    "lpips_alex": {"weights": "random", "max_side": "64"},
    "dists": {"weights": "random", "alpha_beta": "random"},
    "clip": {"model": TINY_CLIP_NAME, "weights": "random"},
    "dino": {"weights": "random", "image_size": "32"},
    "dinov2": {"weights": "random", "image_size": "28"},
    "gram": {"weights": "random", "max_side": "32"},
}
"""Options per measure (``lab_emd`` has none)."""


def offline(tmp_path: Path, monkeypatch) -> Path:
    """No weights anywhere and no hub: an empty weights dir, torch hub cache and Hugging Face cache under
    ``tmp_path`` (for readiness and offline-error tests); returns ``tmp_path``."""
    import huggingface_hub.constants as hf

    monkeypatch.setenv("SPLICE_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SPLICE_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def register_tiny_clip(folder: Path) -> str:
    """Register :data:`TINY_CLIP` with open_clip (a JSON config in ``folder``); returns its model name."""
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{TINY_CLIP_NAME}.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder)
    return TINY_CLIP_NAME
