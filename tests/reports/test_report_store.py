"""The synthetic report store reads back through eval.aggregate as its table says."""

from __future__ import annotations

from tests.support.report_store import build_store


def test_store_reads_back_through_eval_aggregate(tmp_path):
    from eval.aggregate import load_results

    run = build_store(tmp_path)
    df = load_results(run)
    assert len(df) == 9
    assert sorted(df["method"].unique()) == ["broken", "cropper", "identity"]
    assert int((df["status"] == "failed").sum()) == 1
    assert df["random_weights"].sum() == 3 and df["metrics_random_weights"].sum() == 8
    row = df[(df["method"] == "identity") & (df["pair_id"] == "p3")].iloc[0]
    assert bool(row["iou_excluded"]) and row["structure_distance"] == 0.0
