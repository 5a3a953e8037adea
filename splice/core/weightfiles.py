"""Weight files: reading a state dict from any of the usual formats, their sha256 (once per file), fetching one
with a short timeout, and whether a hub is reachable.

Shared by the Splice method's ViT, the baselines' networks and the metrics' models. Offline, a
hub that cannot be reached must be found out in milliseconds (:func:`host_reachable`), never by
waiting for a download library's retries.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from splice.core.errors import WeightsError

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


_SHA: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a weights file, computed once per (path, size, mtime) in this process (records name the weights
    they ran with; hashing a 300 MB file for every job would cost more than some jobs)."""
    from splice.core.imageio import sha256_file

    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA:
        _SHA[key] = sha256_file(path)
    return _SHA[key]


#: seconds a weights download may wait on the network before it counts as "not available here"
DOWNLOAD_TIMEOUT_S = 20


def download_weights(url: str, dest: Path) -> Path | None:
    """Fetch ``url`` to ``dest`` with a short socket timeout; None when offline (``SPLICE_OFFLINE`` set, no
    network) or refused, so that the caller says in one line where to put the file."""
    if os.environ.get("SPLICE_OFFLINE"):
        return None
    import socket

    import torch

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        log.warning("downloading %s to %s", url, dest)
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=None, progress=False)
        return dest
    except Exception as e:  # DNS failure, timeout, HTTP error: all mean "not available here"
        log.info("download of %s failed: %s", url, e)
        return None
    finally:
        socket.setdefaulttimeout(old)


def read_state_dict(path: Path) -> dict:
    """A state dict from a ``.safetensors`` file or a ``torch.save`` file (tensors only, no code)."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, pickle with code, wrong format
        raise WeightsError(f"cannot read weights file {path}: {type(e).__name__}: {e}") from None


def host_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """One quick TCP connection attempt. huggingface_hub retries an unreachable host with
    back-off for ~25 s; this answers in milliseconds when DNS fails, as it does offline."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hf_hub_reachable() -> bool:
    """Whether the Hugging Face hub can be asked for files: not when ``HF_HUB_OFFLINE`` or
    ``SPLICE_OFFLINE`` is set, nor when its host does not answer one TCP connection."""
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("SPLICE_OFFLINE"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    return host_reachable(endpoint.split(":")[0])
