"""precomputed: stored outputs on a folder layout like the Splice authors', built in tmp_path."""

from __future__ import annotations

import pytest

from splice.core.method import Pair
from tests.support.precomputed import authors_layout


@pytest.fixture
def layout(tmp_path):
    return authors_layout(tmp_path)


@pytest.mark.paper_data
def test_authors_sample_sa_is_a_256_resize(paper_data):
    """The real ../shared/data/paper/afhq folder: SA outputs import as 512 -> 256 resizes, matched by hash."""
    afhq = paper_data / "afhq"
    first = sorted(p for p in afhq.iterdir() if (p / "A").is_dir())[0]
    pair = Pair("any", next((first / "A").iterdir()), next((first / "B").iterdir()), "afhq")
    res = _run(pair, root=str(afhq), method_dir="sa")
    assert res.info["precomputed"]["matched_by"] == "hash" and res.info["precomputed"]["key"] == first.name
    assert res.geometry.kind == "resize" and res.geometry.output == (256, 256)
