"""Devices: what ``--device`` (one) and ``--devices`` (a list) mean in every command.

``auto`` is CUDA when torch sees a GPU, else MPS, else the CPU. An explicit device that is not
here is a one-line error naming the option the user typed (``option``), never a CUDA traceback.
"""

from __future__ import annotations

from splice.core.errors import ConfigError


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Device types usable here: ``cpu`` always; ``cuda`` / ``mps`` when torch sees them."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if _mps_available():
        out.append("mps")
    return out


def resolve_device(device: str | None, option: str = "--device") -> str:
    """``auto`` -> cuda if available, else mps, else cpu. Explicit devices are checked."""
    import torch

    device = (device or "auto").strip().lower()
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"
    if device != "cpu" and not (device == "mps" or device == "cuda" or
                                (device.startswith("cuda:") and device[5:].isdigit())):  # fmt: skip
        raise ConfigError(f"{option} {device!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{option} {device}: no CUDA GPU is available here; use {option} cpu or auto")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            raise ConfigError(f"{option} {device}: only {torch.cuda.device_count()} CUDA GPU(s) here "
                              f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")  # fmt: skip
    if device == "mps" and not _mps_available():
        raise ConfigError(f"{option} mps: MPS is not available here; use {option} cpu or auto")
    return device


def parse_devices(value: str, option: str = "--devices", present: bool = True) -> list[str]:
    """``auto`` (every CUDA GPU, else MPS, else CPU), ``cpu``, ``cuda`` (every GPU), ``cuda:0,cuda:1``, ``mps``.

    ``present=False`` (planning for another machine, ``bench --dry-run``): well-formed devices this machine lacks
    are taken as given (``cuda`` as ``cuda:0``); a malformed one is still an error."""
    items = [v.strip().lower() for v in str(value).split(",") if v.strip()]
    if not items:
        raise ConfigError(f"{option} is empty; use auto, cpu or e.g. cuda:0,cuda:1")
    if items == ["cpu"]:
        return ["cpu"]
    import torch

    out: list[str] = []
    for item in items:
        if item in ("auto", "cuda") and torch.cuda.is_available():
            out.extend(f"cuda:{i}" for i in range(torch.cuda.device_count()))
        elif item == "auto":
            out.append(resolve_device("auto", option))
        elif not present and (item in ("cpu", "mps", "cuda") or (item.startswith("cuda:") and item[5:].isdigit())):
            out.append("cuda:0" if item == "cuda" else item)  # how many GPUs that machine has is unknown here
        else:
            out.append(resolve_device(item, option))
    return list(dict.fromkeys(out))
