"""Tables with jobs recorded ``not-applicable`` (a method that does not apply to a data set): "—", not failures,
and not one of the data set's compared methods (it cannot empty the common pairs)."""

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
    assert math.isnan(na.mean_common)
    assert (na.n_common, na.n_all, na.failed, na.excluded, na.unscored) == (0, 0, 0, 0, 0)
    # splice keeps its common pair on wild-pairs: the inapplicable method is not compared there
    sp = t[(t.dataset == "wild-pairs") & (t.method == "splice")].iloc[0]
    assert (sp.n_common, sp.mean_common) == (1, 0.5) and not sp.best
    afhq = t[t.dataset == "afhq"].iloc[0]
    assert afhq.mean_all == 0.7 and afhq.failed == 0
    md = render(t, "md")
    assert "| wild-pairs | swapping-autoencoder | maskrcnn | — | 0 | – | 0 | – | 0 | 0 |" in md
    assert "| wild-pairs | splice | maskrcnn | 0.500 ± – | 1 | 0.500 ± – | 1 | – | 0 | 0 |" in md
    assert r"wild-pairs & swapping-autoencoder & maskrcnn & --- & 0" in render(t, "latex")
