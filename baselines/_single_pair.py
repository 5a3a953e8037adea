"""Plumbing shared by the baselines that train from scratch on one pair (``structural-analogy``, ``sincut``).

- :func:`apply_options` turns ``--method-args k=v`` strings into a typed copy of a config dataclass, with a
  one-line :class:`~splice.core.errors.ConfigError` for unknown keys or bad values;
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
import dataclasses
import logging
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from splice.core.atomic import atomic_torch_save
from splice.core.errors import ConfigError
from splice.core.method import resolve_device

log = logging.getLogger(__name__)

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(method: str, key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
        if origin is tuple:
            items = value if isinstance(value, (list, tuple)) else [v for v in str(value).split(",") if v.strip()]
            return tuple(int(v) for v in items)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{method}: option {key}={value!r} is not a valid {getattr(hint, '__name__', hint)}")


def apply_options(config: Any, options: dict[str, Any] | None, method: str) -> Any:
    """A copy of the dataclass ``config`` with ``options`` (strings or typed values) applied."""
    if not options:
        return config
    hints = typing.get_type_hints(type(config))
    names = [f.name for f in dataclasses.fields(config)]
    changes = {}
    for key, value in options.items():
        if key not in names:
            raise ConfigError(f"{method}: unknown option {key!r}; known options: {', '.join(names)}")
        changes[key] = _coerce(method, key, value, hints[key])
    return dataclasses.replace(config, **changes)


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
    """``smoke`` for the smoke preset; every other preset runs the published (``paper``) settings."""
    return "smoke" if settings.preset == "smoke" else "paper"


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
