"""Plumbing shared by the baselines that train from scratch on one pair (``structural-analogy``, ``sincut``).

- :func:`seeded` runs a block with torch's global generator seeded, restoring the caller's state afterwards
  (so a method never changes the randomness of whatever runs next in the same process);
- :func:`check_device` resolves ``auto`` and refuses devices the method does not list;
- :func:`save_checkpoint` / :func:`load_checkpoint` keep a resumable training state in the job's work folder,
  tagged with the configuration and seed so a stale checkpoint is never resumed;
- :func:`train_seeded` runs a method's training under its seed with that checkpoint in the job's work folder,
  and :func:`trained_info` starts the ``info`` record both methods return (no weights: trained on the pair).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from splice.core.atomic import atomic_torch_save
from splice.core.devices import resolve_device
from splice.core.errors import ConfigError
from splice.core.options import resolve_preset

log = logging.getLogger(__name__)

T = TypeVar("T")

def check_device(device: str | None, allowed: tuple[str, ...], method: str) -> str:
    resolved = resolve_device(device)
    if resolved.split(":")[0] not in allowed:
        raise ConfigError(f"{method} runs on {', '.join(allowed)}, not {resolved}; use --device cpu")
    return resolved


@contextlib.contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch's global generator (CPU and, for ``cuda``, that GPU) for the block, then restore it."""
    import torch

    devices = []
    if device.startswith("cuda"):
        devices = [torch.device(device).index or 0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def preset_name(settings: Any) -> str:
    """The preset these methods run for ``settings.preset``: ``smoke``, else their published ``paper``."""
    return resolve_preset(settings.preset, ("paper", "smoke"))


def train_seeded(settings: Any, device: str, config: dict[str, Any], checkpoint_name: str,
                 train: Callable[..., T]) -> T:
    """``train(checkpoint=..., checkpoint_tag=...)`` under ``seeded(settings.seed)``.

    The checkpoint lives in ``settings.workdir`` (None without one) and is tagged with ``config``, the seed and
    the device; it is deleted once training has finished, having served its purpose.
    """
    workdir = Path(settings.workdir) if settings.workdir else None
    path = workdir / checkpoint_name if workdir is not None else None
    tag = {"config": config, "seed": int(settings.seed), "device": device}
    with seeded(int(settings.seed), device):
        result = train(checkpoint=path, checkpoint_tag=tag)
    if path is not None:
        path.unlink(missing_ok=True)
    return result


def trained_info(structure: Any, appearance: Any, settings: Any) -> dict[str, Any]:
    """The common head of ``MethodResult.info`` for a method trained from scratch on the pair."""
    return {
        "weights": {"spec": "none: trained from scratch on the pair"},
        "random_weights": False,
        "inputs": {"structure": structure.record(), "appearance": appearance.record()},
        "seed": int(settings.seed),
        "preset": preset_name(settings),
    }


def save_checkpoint(path: Path, tag: dict[str, Any], state: dict[str, Any]) -> None:
    atomic_torch_save(path, {"tag": tag, "state": state})


def load_checkpoint(path: Path | None, tag: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state when ``path`` exists and was written for the same ``tag`` (config + seed), else None."""
    import torch

    if path is None or not Path(path).exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a torn or foreign file: start again rather than fail the job
        log.warning("ignoring unreadable checkpoint %s (%s)", path, e)
        return None
    if not isinstance(blob, dict) or blob.get("tag") != tag:
        log.info("checkpoint %s is for another configuration or seed; starting from scratch", path)
        return None
    return blob["state"]


def rng_state(device: str) -> dict[str, Any]:
    """torch's generator states (CPU, and the GPU for ``cuda``) for a resumable checkpoint."""
    import torch

    state = {"cpu": torch.get_rng_state()}
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: str) -> None:
    import torch

    torch.set_rng_state(state["cpu"])
    if device.startswith("cuda") and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
