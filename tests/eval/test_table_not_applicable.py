"""Tables with jobs recorded ``not-applicable`` (a method that does not apply to a data set): "—", not failures."""

from __future__ import annotations

import math

from eval.aggregate import load_results
from eval.tables import metric_table, render
from tests.support.store import add_job, iou_rec


def test_not_applicable_cells_show_a_dash_and_count_nowhere(tmp_path):
    root = tmp_path / "run"
    add_job(root, "afhq", "p1", "swapping-autoencoder", iou=iou_rec(0.6))
    add_job(root, "afhq", "p2", "swapping-autoencoder", iou=iou_rec(0.8))
    add_job(root, "wild-pairs", "w1", "swapping-autoencoder", status="not-applicable", error="no model for it")
    add_job(root, "wild-pairs", "w2", "swapping-autoencoder", status="not-applicable", error="no model for it")
    add_job(root, "wild-pairs", "w1", "splice", iou=iou_rec(0.5))
    df = load_results(root)
    assert set(df[df.dataset == "wild-pairs"].status) == {"ok", "not-applicable"}
    t = metric_table(df, "iou", methods=["splice", "swapping-autoencoder"])
    assert t.attrs["not_applicable"] == [("wild-pairs", "swapping-autoencoder")]
    na = t[(t.dataset == "wild-pairs") & (t.method == "swapping-autoencoder")].iloc[0]
    assert math.isnan(na["mean"]) and (na.n_used, na.n_failed, na.n_excluded, na.n_unscored) == (0, 0, 0, 0)
    afhq = t[t.dataset == "afhq"].iloc[0]
    assert afhq["mean"] == 0.7 and afhq.n_failed == 0
    md = render(t, "md")
    assert "| wild-pairs | swapping-autoencoder | — | 0 | 0 | 0 |" in md
    assert "| wild-pairs | splice | 0.500 ± – | 1 | 0 | 0 |" in md
    assert "wild-pairs & swapping-autoencoder & --- & 0 & 0 & 0" in render(t, "latex")
