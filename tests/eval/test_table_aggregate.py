"""eval.aggregate and eval.tables on a synthetic run store with hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from eval.aggregate import COLUMNS, load_results
from eval.tables import metric_table, paired_bootstrap_ci, render
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
    assert list(t.columns[:12]) == ["dataset", "method", "n_common", "mean_common", "std_common", "n_all", "mean_all",
                                    "diff_vs_reference", "diff_ci_low", "diff_ci_high", "excluded", "failed"]
    assert list(t[["dataset", "method"]].itertuples(index=False, name=None)) == [
        ("afhq", "splice"), ("afhq", "strotss"), ("mountains", "splice")]  # fmt: skip
    sp, st, mo = (t.iloc[i] for i in range(3))
    # afhq: splice has p1..p3 (0.5, 0.7, 0.9), strotss only p1 (0.4): the common pairs are {p1}
    assert (sp.n_common, st.n_common) == (1, 1)
    assert sp.mean_common == pytest.approx(0.5) and math.isnan(sp.std_common) and st.mean_common == pytest.approx(0.4)
    assert sp.mean_all == pytest.approx(0.7) and sp.std_all == pytest.approx(0.2) and sp.n_all == 3
    assert (sp.excluded, sp.failed, sp.unscored) == (1, 1, 0) and (st.excluded, st.failed, st.unscored) == (0, 0, 1)
    # the difference to the reference (splice) on the common pair; one pair gives no interval
    assert math.isnan(sp.diff_vs_reference) and st.diff_vs_reference == pytest.approx(-0.1)
    assert math.isnan(st.diff_ci_low) and st.reference == "splice"
    assert sp.best and not st.best and not mo.best
    assert math.isnan(mo.mean_common) and (mo.n_common, mo.n_all, mo.excluded) == (0, 0, 2)
    # mountains defaults to panoptic, but its jobs only hold Mask R-CNN records: those are shown, and say so
    assert (sp.segmenter, mo.segmenter) == ("maskrcnn", "maskrcnn")
    assert t.attrs["higher_is_better"] is True and t.attrs["random_weights"] is False


def test_best_is_chosen_on_common_pairs(tmp_path):
    root = tmp_path / "r"
    # a: 0.7, 0.95, 0.95 (mean over its own pairs 0.867); b: 0.8 on p1, failed on p2 and p3
    for pair, value in (("p1", 0.7), ("p2", 0.95), ("p3", 0.95)):
        add_job(root, "wild-pairs", pair, "a", iou=iou_rec(value))
    add_job(root, "wild-pairs", "p1", "b", iou=iou_rec(0.8))
    add_job(root, "wild-pairs", "p2", "b", status="failed")
    add_job(root, "wild-pairs", "p3", "b", status="failed")
    t = metric_table(load_results(root), "iou", reference="a").set_index("method")
    assert t.loc["a", "mean_all"] > t.loc["b", "mean_all"]
    assert t.loc["b", "best"] and not t.loc["a", "best"]  # 0.8 > 0.7 on the one common pair
    assert (t.loc["a", "n_common"], t.loc["b", "n_common"], t.loc["b", "failed"]) == (1, 1, 2)
    md = render(metric_table(load_results(root), "iou", reference="a"), "md")
    assert "| wild-pairs | b | maskrcnn | **0.800 ± –** | 1 | 0.800 ± – | 1 | +0.100 | 0 | 2 |" in md
    with pytest.raises(ConfigError, match="--reference c: no such method"):
        metric_table(load_results(root), "iou", reference="c")


def test_seeds_are_averaged_per_pair_and_the_interval_is_a_paired_bootstrap(tmp_path):
    root = tmp_path / "r"
    # ref: 0.5 on p1..p3; m: seeds 0 and 1 on p1 (0.4, 0.6 -> 0.5), 0.5 on p2, 1.5 on p3 -> diffs 0, 0, 1
    for pair in ("p1", "p2", "p3"):
        add_job(root, "afhq", pair, "splice", iou=iou_rec(0.5))
    add_job(root, "afhq", "p1", "m", iou=iou_rec(0.4))
    add_job(root, "afhq", "p1", "m", iou=iou_rec(0.6), seed=1)
    add_job(root, "afhq", "p2", "m", iou=iou_rec(0.5))
    add_job(root, "afhq", "p3", "m", iou=iou_rec(1.5))
    r = metric_table(load_results(root), "iou").set_index("method").loc["m"]
    assert (r.n_common, r.n_all) == (3, 3) and r.mean_common == pytest.approx(2.5 / 3)
    # resampled means of (0, 0, 1) are k/3 with k ~ Binomial(3, 1/3): P(k=0) = 8/27 > 2.5% and P(k=3) = 1/27 > 2.5%
    assert r.diff_vs_reference == pytest.approx(1 / 3) and (r.diff_ci_low, r.diff_ci_high) == (0.0, 1.0)


def test_paired_bootstrap_ci():
    assert paired_bootstrap_ci(np.array([0.0, 1.0])) == (0.0, 1.0)  # means 0, 0.5, 1 with P = 1/4, 1/2, 1/4
    assert paired_bootstrap_ci(np.array([0.2, 0.2, 0.2])) == pytest.approx((0.2, 0.2))
    low, high = paired_bootstrap_ci(np.linspace(-1, 1, 40))
    assert -0.2 < low < -0.16 and 0.16 < high < 0.2  # about ±1.96 * 0.59 / sqrt(40) = ±0.18
    assert all(math.isnan(x) for x in paired_bootstrap_ci(np.array([0.3])))
    assert paired_bootstrap_ci(np.linspace(-1, 1, 40)) == (low, high)  # seeded: the same interval every time


def test_the_papers_numbers_beside_ours(tmp_path):
    root = tmp_path / "r"
    add_job(root, "mountains", "k1", "splice", iou=iou_rec(0.9))
    add_job(root, "mountains", "k1", "wct2", iou=iou_rec(0.8))
    add_job(root, "afhq", "a1", "splice", iou=iou_rec(0.7))
    t = metric_table(load_results(root), "iou", paper=True).set_index(["dataset", "method"])
    assert t.loc[("mountains", "splice"), "paper_mean"] == "0.95"
    assert t.loc[("mountains", "splice"), "paper_std"] == "0.10"
    assert t.loc[("mountains", "wct2"), "paper_std"] == "0.82" and "0.196" in t.loc[("mountains", "wct2"), "paper_note"]
    assert pd.isna(t.loc[("afhq", "splice"), "paper_mean"])
    md = render(metric_table(load_results(root), "iou", paper=True), "md")
    assert "| mountains | wct2 | maskrcnn | 0.800 ± – | 1 | 0.800 ± – | 1 | -0.100 | 0 | 0 | 0.96 ± 0.82* |" in md
    assert "afhq: the paper has no Table 2 row for AFHQ" in md
    assert "mountains: the paper (Tumanyan et al., CVPR 2022, Table 2) reports swapping-autoencoder 0.91 ± 0.07" in md
    csv = render(metric_table(load_results(root), "iou", paper=True), "csv").splitlines()
    assert csv[0].endswith(",metric,paper_mean,paper_std,paper_note")
    # other metrics have no paper values
    assert "paper_mean" not in metric_table(load_results(root), "structure", paper=True)


def test_other_metrics(store):
    df = load_results(store)
    m = metric_table(df, "matched_iou")
    assert m.iloc[0]["mean_all"] == pytest.approx(0.5) and m.iloc[0]["std_all"] == pytest.approx(0.25)
    s = metric_table(df, "structure")  # no exclusions for ViT metrics: 0.1..0.4; strotss only p1 (0.5)
    assert s.iloc[0]["mean_all"] == pytest.approx(0.25) and s.iloc[0]["std_all"] == pytest.approx(math.sqrt(0.05 / 3))
    assert (s.iloc[0].n_all, s.iloc[0].excluded, s.iloc[0].failed, s.iloc[0].n_common) == (4, 0, 1, 1)
    assert s.attrs["higher_is_better"] is False and s.iloc[0].segmenter == ""
    assert s.iloc[0].best and not s.iloc[1].best  # lower is better: 0.1 (splice) vs 0.5 on p1
    c = metric_table(df, "cosine")
    assert c.iloc[2]["mean_all"] == pytest.approx(0.6) and c.iloc[2]["std_all"] == pytest.approx(math.sqrt(0.02))
    sec = metric_table(df, "seconds")
    assert sec.iloc[0]["mean_all"] == pytest.approx(25.0) and sec.iloc[0].n_all == 4
    with pytest.raises(ConfigError, match="unknown metric"):
        metric_table(df, "fid")
    with pytest.raises(ConfigError, match="needs the maskrcnn segmenter"):
        metric_table(df, "matched_iou", segmenter="panoptic")


def test_render_formats(store):
    t = metric_table(load_results(store), "iou")
    md = render(t, "md")
    lines = md.splitlines()
    assert lines[0].startswith("| dataset | method | segmenter | layout IoU ↑ (common pairs) | n | all pairs |")
    assert lines[0].endswith("| vs splice [95% CI] | excluded | failed | unscored |")
    assert "| afhq | splice | maskrcnn | **0.500 ± –** | 1 | 0.700 ± 0.200 | 3 | – | 1 | 1 | 0 |" in lines
    assert "| afhq | strotss | maskrcnn | 0.400 ± – | 1 | 0.400 ± – | 1 | -0.100 | 0 | 0 | 1 |" in lines
    assert "| mountains | splice | maskrcnn | – | 0 | – | 0 | – | 2 | 0 | 0 |" in lines
    assert any(line.startswith("_Common pairs:") for line in lines)
    csv = render(t, "csv").splitlines()
    assert csv[0] == ("dataset,method,n_common,mean_common,std_common,n_all,mean_all,diff_vs_reference,diff_ci_low,"
                      "diff_ci_high,excluded,failed,std_all,unscored,segmenter,reference,best,unfinished,metric")
    assert csv[1] == "afhq,splice,1,0.5,,3,0.7,,,,1,1,0.2,0,maskrcnn,splice,True,0,iou"
    tex = render(t, "latex")
    assert r"afhq & splice & maskrcnn & \textbf{0.500 $\pm$ --} & 1 & 0.700 $\pm$ 0.200 & 3 & -- & 1 & 1 & 0 \\" in tex
    assert tex.startswith(r"\begin{tabular}{lllrrrrrrrr}") and r"\end{tabular}" in tex
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
    assert t.iloc[0]["std_common"] == pytest.approx(math.sqrt(0.125))


def test_a_table_says_when_another_segmenter_has_records(tmp_path):
    """Scored with both segmenters: the table shows the data set's default and names the other, so a reader
    does not take one for the only one (and --segmenter picks the other)."""
    from tests.support.store import write_job

    root = tmp_path / "r"
    for method, (mask, pano) in {"a": (0.6, 0.9), "b": (0.4, 0.7)}.items():
        write_job(root, "afhq", "p1", method, metrics={
            "iou": {"metric": "iou", "protocol_version": "2", **iou_rec(mask)},
            "panoptic": {"metric": "panoptic", "protocol_version": "2", "segmenter": "panoptic", "iou": pano,
                         "pixel_accuracy": pano, "excluded": False, "model": "mask2former"}})  # fmt: skip
    df = load_results(root)
    t = metric_table(df, "iou", reference="a")
    assert list(t["segmenter"]) == ["maskrcnn", "maskrcnn"] and list(t["mean_common"]) == pytest.approx([0.6, 0.4])
    assert "afhq: panoptic records exist too (--segmenter panoptic tabulates them)" in t.attrs["notes"]
    p = metric_table(df, "iou", reference="a", segmenter="panoptic")
    assert list(p["mean_common"]) == pytest.approx([0.9, 0.7])
    assert "afhq: maskrcnn records exist too (--segmenter maskrcnn tabulates them)" in p.attrs["notes"]
    assert "panoptic records exist too" in render(t, "md")


def test_the_random_weights_line_names_what_was_random(tmp_path):
    """A table warns about random weights only when its own numbers came from them, and says whose: a method's
    outputs, or the tabulated metric's model (a random LPIPS record elsewhere in the job does not taint Lab EMD)."""
    from tests.support.store import write_job

    root = tmp_path / "r"
    for method, random_method in (("a", False), ("b", True)):
        write_job(root, "demo", "p1", method, random_weights=random_method, metrics={
            "lab_emd": {"metric": "lab_emd", "protocol_version": "1", "value": 3.0, "random_weights": False},
            "lpips_vgg": {"metric": "lpips_vgg", "protocol_version": "1", "value": 0.2, "random_weights": True}})
    df = load_results(root)
    clean = metric_table(df[df["method"] == "a"], "lab_emd")
    assert not clean.attrs["random_weights"] and not render(clean, "md").startswith(">")
    assert render(metric_table(df, "lab_emd"), "md").splitlines()[0] == (
        "> **RANDOM WEIGHTS: method b ran with random weights; these numbers mean nothing.**")
    assert render(metric_table(df[df["method"] == "a"], "lpips_vgg"), "csv").splitlines()[0] == (
        "# RANDOM WEIGHTS: the metric's model had random weights; these numbers mean nothing.")


def test_latex_escape_is_one_pass():
    """A backslash becomes \\textbackslash{} and its braces are not escaped again (the chained replace of the
    metric tables gave a\\textbackslash\\{\\}b); the study's Table 1 and the metric tables share the escaper."""
    from eval.latex import latex_escape

    assert latex_escape("a\\b") == r"a\textbackslash{}b"
    assert latex_escape("wild_pairs 50% & {x} ± ^") == r"wild\_pairs 50\% \& \{x\} $\pm$ \textasciicircum{}"
