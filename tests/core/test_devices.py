"""splice.core.devices: device lists, for this machine or (planning) for another."""

from __future__ import annotations

import pytest

from splice.core.errors import ConfigError


def test_parse_devices_for_another_machine():
    """Planning (bench --dry-run) takes well-formed devices this machine lacks as given; malformed ones are still
    the one-line error."""
    import torch

    from splice.core.devices import parse_devices

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: nothing is missing")
    assert parse_devices("cuda:0,cuda:1", present=False) == ["cuda:0", "cuda:1"]
    assert parse_devices("cuda,cpu", present=False) == ["cuda:0", "cpu"]
    with pytest.raises(ConfigError, match="no CUDA GPU is available here"):
        parse_devices("cuda:0")
    with pytest.raises(ConfigError, match="'cudax1' is not a device"):
        parse_devices("cudax1", present=False)
