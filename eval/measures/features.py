"""Per-image features of the registry's models, computed once and shared.

Every measure compares two images through features that depend on one image only (LPIPS's
normalised VGG activations, a CLIP embedding, Gram matrices, Lab pixels). An image's features
depend on its pixels, the model (weights identity, library version) and the settings, so they are
keyed like :mod:`eval.cache` keys masks and ViT features: the content hash of the decoded image
(:func:`splice.core.imageio.sha256_image`) plus the model identity and settings
(:func:`eval.cache.cache_key`). The structure image of a pair, compared with the output of every
method and seed, goes through a model once.

Two tiers:

- memory: every kind, in an LRU bounded in bytes (feature maps of LPIPS and DISTS are tens to
  hundreds of MB per image: far too big for a disk cache, cheap to keep for the jobs of one pair);
- disk: kinds a measure declares small (embeddings, Gram matrices), as ``.npz`` files under
  ``<root>/measures/<model>/`` through :class:`eval.cache.FeatureCache`, so a second scoring
  process runs no model on an image it has seen.

``calls`` counts the computations per model (``model_hits`` the answers from either tier): the counting
tests assert one computation per distinct image.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import cache as _cache

log = logging.getLogger(__name__)

KIND = "measures"
DEFAULT_MEMORY_MB = 2048.0


def nbytes(value: Any) -> int:
    """Bytes held by the arrays/tensors in ``value`` (nested lists, tuples and dicts)."""
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    size = getattr(value, "element_size", None)
    if size is not None:  # a torch tensor
        return int(value.element_size() * value.nelement())
    return 0


class FeatureStore:
    """Features by key: an in-memory LRU for every kind and, with ``root``, a disk tier for small ones.

    Args:
        root: the cache folder (``--cache-dir``; :func:`eval.cache.resolve_cache_dir`); None keeps
            features in memory only.
        memory_mb: the LRU's budget; the most recent entry is always kept, whatever its size.
    """

    def __init__(self, root: str | Path | None = None, memory_mb: float = DEFAULT_MEMORY_MB):
        self.root = Path(root).expanduser() if root is not None else None
        self.budget = int(memory_mb * 2**20)
        self.calls: Counter[str] = Counter()
        self.model_hits: Counter[str] = Counter()
        self.hits = 0
        self.misses = 0
        self._memory: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._held = 0
        self._disk: dict[str, _cache.FeatureCache] = {}

    def _remember(self, key: str, value: Any) -> None:
        size = nbytes(value)
        old = self._memory.pop(key, None)
        if old is not None:
            self._held -= old[1]
        self._memory[key] = (value, size)
        self._held += size
        while self._held > self.budget and len(self._memory) > 1:
            _, (_, dropped) = self._memory.popitem(last=False)
            self._held -= dropped

    def disk(self, model: str) -> _cache.FeatureCache | None:
        if self.root is None:
            return None
        if model not in self._disk:
            self._disk[model] = _cache.FeatureCache(self.root, KIND, model)
        return self._disk[model]

    def get(self, model: str, key: str, compute: Callable[[], Any], persist: bool = False) -> Any:
        """The features under ``key``; ``compute()`` runs (and counts for ``model``) only on a miss.

        With ``persist``, ``compute`` must return a dict of numpy arrays; they are written to disk
        and read back the same way on a later hit, so a value computed from them does not depend
        on which tier answered.
        """
        if key in self._memory:
            self._memory.move_to_end(key)
            self.hits += 1
            self.model_hits[model] += 1
            return self._memory[key][0]
        disk = self.disk(model) if persist else None
        if disk is not None:
            arrays = disk.get(key)
            if arrays is not None:
                self.hits += 1
                self.model_hits[model] += 1
                self._remember(key, arrays)
                return arrays
        self.misses += 1
        value = compute()
        self.calls[model] += 1
        if persist:
            value = {k: np.ascontiguousarray(v) for k, v in value.items()}
            if disk is not None:
                disk.put(key, value)
        self._remember(key, value)
        return value

    def clear_memory(self) -> None:
        self._memory.clear()
        self._held = 0

    def stats(self) -> dict[str, Any]:
        disk = {m: c.stats() for m, c in self._disk.items()}
        return {"hits": self.hits, "misses": self.misses, "calls": dict(self.calls), "memory_mb": self._held / 2**20,
                "disk": disk}
