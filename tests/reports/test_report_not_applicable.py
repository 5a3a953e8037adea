"""Grids and the report with jobs recorded ``not-applicable``: a "—" cell, not a failure."""

from __future__ import annotations

from eval.aggregate import load_results
from reports.grids import GridStyle, grid_cells, method_columns
from reports.results import collect_models
from tests.support.images import make_image
from tests.support.store import add_job


def test_not_applicable_grid_cell_and_no_failure(tmp_path):
    root = tmp_path / "run"
    s, a = tmp_path / "s.png", tmp_path / "a.png"
    make_image(96, 80, seed=1).save(s)
    make_image(72, 72, seed=2).save(a)
    add_job(root, "wild-pairs", "w1", "splice", structure=str(s), appearance=str(a))
    add_job(root, "wild-pairs", "w1", "swapping-autoencoder", status="not-applicable", error="no model",
            structure=str(s), appearance=str(a))  # fmt: skip
    df = load_results(root)
    columns = method_columns(df, ["splice", "swapping-autoencoder"])
    [row] = grid_cells(df, ["w1"], columns, GridStyle())
    cell = row[[c.method for c in columns].index("swapping-autoencoder")]
    assert cell.label == "—" and cell.detail == "not applicable" and cell.image is None
    models, _ = collect_models(df, ["splice", "swapping-autoencoder"])
    assert {m.method: m.n_failed for m in models} == {"splice": 0, "swapping-autoencoder": 0}
