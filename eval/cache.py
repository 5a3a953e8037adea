"""Content-addressed cache of per-image model outputs (Mask R-CNN masks, ViT features).

PROTOCOL.md: masks and features of an image depend only on its pixels, the model and
the settings, so they are cached by the content hash of the decoded RGB image
(:func:`splice.core.imageio.sha256_image`), the model identity (weights hash or tag, random
seed) and the settings (thresholds, sizes). Re-scoring a run or rebuilding a table never
runs a model on an image it has already seen.

Layout (``root`` is ``--cache-dir``, default :func:`splice.core.paths.cache_dir`)::

    <root>/<kind>/<model-slug>/<key[:2]>/<key>.npz

``kind`` is ``masks`` or ``vit``; ``model-slug`` is a readable name of the model
(``maskrcnn_resnet50_fpn_v2-COCO_V1``); ``key`` is the sha256 of the canonical JSON of
image hash, model identity, settings and :data:`CACHE_VERSION`. Entries are written
atomically; an unreadable entry counts as a miss and is rewritten.

Counters (``hits``, ``misses``, ``writes``) let tests assert that a second scoring run
performs zero model calls.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from splice.core.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

CACHE_VERSION = "1"


def cache_key(image_sha: str, identity: dict[str, Any], settings: dict[str, Any]) -> str:
    blob = json.dumps({"image": image_sha, "model": identity, "settings": settings, "version": CACHE_VERSION},
                      sort_keys=True, default=str, separators=(",", ":"))  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()


LOCATION_KEYS = ("path", "note", "url")


def location_free(identity: dict[str, Any]) -> dict[str, Any]:
    """A model identity without where its files live (a moved weights file keeps its cache entries)."""
    return {k: v for k, v in identity.items() if k not in LOCATION_KEYS}


def slug(text: str) -> str:
    """A file-name-safe short label (``maskrcnn_resnet50_fpn_v2-COCO_V1``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:80] or "model"


@dataclass
class FeatureCache:
    """Arrays per (image, model, settings), stored as ``.npz`` files under ``root/kind/model``."""

    root: Path
    kind: str
    model: str
    hits: int = 0
    misses: int = 0
    writes: int = 0
    enabled: bool = True
    _memo: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.root = Path(self.root).expanduser()

    def path(self, key: str) -> Path:
        return self.root / self.kind / slug(self.model) / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None (counted as a miss)."""
        if key in self._memo:
            self.hits += 1
            return self._memo[key]
        p = self.path(key)
        if self.enabled and p.is_file():
            try:
                with np.load(p, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                self.hits += 1
                return arrays
            except (OSError, ValueError, EOFError) as e:
                log.warning("unreadable cache entry %s (%s): recomputing", p, e)
        self.misses += 1
        return None

    def put(self, key: str, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
        """Store ``arrays`` under ``key`` (atomic). With the cache disabled, only for this process."""
        if not self.enabled:
            self._memo[key] = arrays
            return
        buf = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buf, **arrays)
        atomic_write_bytes(self.path(key), buf.getvalue())
        self.writes += 1

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "writes": self.writes}


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    from splice.core.paths import cache_dir as default_cache_dir

    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
