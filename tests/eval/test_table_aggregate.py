"""eval.aggregate and eval.tables on a synthetic run store with hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from eval.aggregate import COLUMNS, load_results
from eval.tables import metric_table, render
from splice.core.errors import ConfigError, UserError
from tests.support.store import add_job, iou_rec, vit_rec


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "runs" / "t"
    # afhq / splice: IoU 0.5, 0.7, 0.9 used (mean 0.7, sample std 0.2), one excluded, one failed
    add_job(root, "afhq", "p1", "splice", iou=iou_rec(0.5, matched=0.25), vit=vit_rec(0.1, 0.01, 0.9), seconds=10)
    add_job(root, "afhq", "p2", "splice", iou=iou_rec(0.7, matched=0.5), vit=vit_rec(0.2, 0.03, 0.8), seconds=20)
    add_job(root, "afhq", "p3", "splice", iou=iou_rec(0.9, matched=0.75), vit=vit_rec(0.3, 0.05, 0.7), seconds=30)
    add_job(root, "afhq", "p4", "splice", iou=iou_rec(None, excluded=True), vit=vit_rec(0.4, 0.07, 0.6), seconds=40)
    add_job(root, "afhq", "p5", "splice", status="failed")
    # afhq / strotss: one value (std undefined), one job not scored yet
    add_job(root, "afhq", "p1", "strotss", iou=iou_rec(0.4), vit=vit_rec(0.5, 0.02, 0.95))
    add_job(root, "afhq", "p2", "strotss")
    # mountains / splice: everything excluded
    add_job(root, "mountains", "m1", "splice", iou=iou_rec(None, excluded=True), vit=vit_rec(0.05, 0.1, 0.5))
    add_job(root, "mountains", "m2", "splice", iou=iou_rec(None, excluded=True), vit=vit_rec(0.15, 0.3, 0.7))
    return root


def test_load_results_rows_and_columns(store):
    df = load_results(store)
    assert list(df.columns) == COLUMNS
    assert len(df) == 9
    assert list(df["dataset"]) == ["afhq"] * 7 + ["mountains"] * 2
    row = df[(df.pair_id == "p1") & (df.method == "splice")].iloc[0]
    assert row.iou == 0.5 and row.matched_iou == 0.25 and row.iou_scored and not row.iou_excluded
    assert row.structure_distance == 0.1 and row.appearance_cosine == 0.9 and row.vit_scored
    assert row.output.endswith("output.png") and row.status == "ok" and row.seconds == 10
    assert row.detector == "maskrcnn_resnet50_fpn_v2" and row.backbone == "dino_vits8"
    excl = df[(df.pair_id == "p4") & (df.method == "splice")].iloc[0]
    assert excl.iou_excluded and math.isnan(excl.iou) and excl.iou_exclusion_reason.startswith("no detection")
    failed = df[df.pair_id == "p5"].iloc[0]
    assert failed.status == "failed" and failed.output is None and failed.error == "boom"
    unscored = df[(df.pair_id == "p2") & (df.method == "strotss")].iloc[0]
    assert not unscored.iou_scored and not unscored.vit_scored and math.isnan(unscored.iou)


def test_load_results_missing_and_empty(tmp_path):
    with pytest.raises(UserError, match="run store not found"):
        load_results(tmp_path / "nope")
    df = load_results(tmp_path)
    assert len(df) == 0 and list(df.columns) == COLUMNS


def test_iou_table_hand_computed(store):
    t = metric_table(load_results(store), "iou")
    assert list(t[["dataset", "method"]].itertuples(index=False, name=None)) == [
        ("afhq", "splice"), ("afhq", "strotss"), ("mountains", "splice")]  # fmt: skip
    sp = t.iloc[0]
    assert sp["mean"] == pytest.approx(0.7) and sp["std"] == pytest.approx(0.2)
    assert (sp.n_used, sp.n_excluded, sp.n_failed, sp.n_unscored) == (3, 1, 1, 0)
    st = t.iloc[1]
    assert st["mean"] == pytest.approx(0.4) and math.isnan(st["std"])
    assert (st.n_used, st.n_excluded, st.n_failed, st.n_unscored) == (1, 0, 0, 1)
    mo = t.iloc[2]
    assert math.isnan(mo["mean"]) and (mo.n_used, mo.n_excluded) == (0, 2)
    assert t.attrs["higher_is_better"] is True and t.attrs["random_weights"] is False


def test_other_metrics(store):
    df = load_results(store)
    m = metric_table(df, "matched_iou")
    assert m.iloc[0]["mean"] == pytest.approx(0.5) and m.iloc[0]["std"] == pytest.approx(0.25)
    s = metric_table(df, "structure")  # no exclusions for ViT metrics: 0.1..0.4
    assert s.iloc[0]["mean"] == pytest.approx(0.25) and s.iloc[0]["std"] == pytest.approx(math.sqrt(0.05 / 3))
    assert (s.iloc[0].n_used, s.iloc[0].n_excluded, s.iloc[0].n_failed) == (4, 0, 1)
    assert s.attrs["higher_is_better"] is False
    c = metric_table(df, "cosine")
    assert c.iloc[2]["mean"] == pytest.approx(0.6) and c.iloc[2]["std"] == pytest.approx(math.sqrt(0.02))
    sec = metric_table(df, "seconds")
    assert sec.iloc[0]["mean"] == pytest.approx(25.0) and sec.iloc[0].n_used == 4
    with pytest.raises(ConfigError, match="unknown metric"):
        metric_table(df, "fid")


def test_render_formats(store):
    t = metric_table(load_results(store), "iou")
    md = render(t, "md")
    lines = md.splitlines()
    assert lines[0].startswith("| dataset | method | layout IoU")
    assert lines[0].endswith("| used | excluded | failed | unscored |")
    assert "| afhq | splice | **0.700 ± 0.200** | 3 | 1 | 1 | 0 |" in lines
    assert "| afhq | strotss | 0.400 ± – | 1 | 0 | 0 | 1 |" in lines
    assert "| mountains | splice | – | 0 | 2 | 0 | 0 |" in lines
    csv = render(t, "csv").splitlines()
    assert csv[0] == "dataset,method,metric,mean,std,n_used,n_excluded,n_failed,n_unscored"
    assert csv[1] == "afhq,splice,iou,0.7,0.2,3,1,1,0"
    tex = render(t, "latex")
    assert r"afhq & splice & \textbf{0.700 $\pm$ 0.200} & 3 & 1 & 1 & 0 \\" in tex
    assert tex.startswith(r"\begin{tabular}{llrrrrr}") and tex.rstrip().endswith(r"\end{tabular}")
    with pytest.raises(ConfigError, match="unknown table format"):
        render(t, "html")


def test_random_weights_are_announced_first(tmp_path):
    root = tmp_path / "r"
    add_job(root, "demo", "a", "identity", iou=iou_rec(1.0, random=True))
    add_job(root, "demo", "b", "identity", iou=iou_rec(0.5, random=True))
    t = metric_table(load_results(root), "iou")
    assert t.attrs["random_weights"] is True
    assert render(t, "md").splitlines()[0].startswith("> **RANDOM WEIGHTS")
    assert render(t, "csv").startswith("# RANDOM WEIGHTS")
    assert render(t, "latex").startswith("% RANDOM WEIGHTS")
    assert t.iloc[0]["std"] == pytest.approx(math.sqrt(0.125))
