"""The report's metrics overview (one table per data set, every registry metric a column, arrows for the better
direction) and each output's values pair by pair, on the synthetic store of tests/support/report_store.py with
two metrics of eval.measures added to its records."""

from __future__ import annotations

import csv
import io
import re

import pytest

from reports.build import build_report
from reports.grids import GridStyle
from splice.core.atomic import atomic_write_json
from splice.core.store import RunStore
from tests.support.report_store import build_store

STYLE = GridStyle(cell=80, pad=2, label_width=60, header_height=30, title_height=20, rows_per_page=3)
LAB = {("identity", "p1"): 2.0, ("identity", "p2"): 3.0, ("identity", "p3"): 4.0, ("cropper", "p1"): 1.0,
       ("cropper", "p2"): 5.0, ("cropper", "p3"): 6.0, ("broken", "p1"): 7.0, ("identity", "q1"): 1.5}  # fmt: skip
CLIP = {("identity", "p1"): 0.5, ("cropper", "p1"): 0.9, ("broken", "p1"): 0.1, ("identity", "p2"): 0.7}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = build_store(tmp_path_factory.mktemp("overview"))
    store = RunStore(run)
    for key, rec in store.iter_records():
        if not rec.ok:
            continue
        where = (key.method, key.pair_id)
        if where in LAB:
            atomic_write_json(store.metrics_dir(key) / "lab_emd.json", {"metric": "lab_emd", "value": LAB[where]})
        if where in CLIP:
            atomic_write_json(store.metrics_dir(key) / "clip.json", {"metric": "clip", "value": CLIP[where],
                                                                      "random_weights": True})  # fmt: skip
    dest = run.parent / "rep"
    summary = build_report(run, dest=dest, style=STYLE, pdf=False)
    return dest, summary


def _overview(html: str, dataset: str) -> list[list[str]]:
    table = re.search(rf'<table class=overview data-dataset="{dataset}">(.*?)</table>', html, re.S).group(1)
    return [[re.sub(r"<[^>]+>", " ", c).split("n=")[0].strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table)]  # fmt: skip


def test_overview_one_table_per_data_set_every_metric_a_column(report):
    dest, summary = report
    html = (dest / "index.html").read_text()
    assert html.index('id="tables"') < html.index('<section id="metrics-overview">') < html.index('id="plots"')
    assert '<a href="#metrics-overview">' in html
    # registry metrics without values are counted, not listed one by one in the results section
    results = html[html.index('<section id="tables">') : html.index('<section id="metrics-overview">')]
    assert re.search(r"\d+ more metrics of the registry without values here", results) and "LPIPS" not in results
    rows = _overview(html, "demo")
    assert rows[0] == ["method", "iou ↑", "matched_iou ↑", "structure ↓", "appearance ↓", "cosine ↑", "clip ↑",
                       "lab_emd ↓"]  # fmt: skip
    body = {r[0]: r[1:] for r in rows[1:]}
    # the common pairs of demo are {p1} (broken has only p1): iou 1.0 / 0.5 / 0.3, lab_emd 2 / 1 / 7, clip .5/.9/.1
    assert body["identity"][0] == "1.000" and body["cropper"][0] == "0.500" and body["broken"][0] == "0.300"
    assert [body[m][-1] for m in ("identity", "cropper", "broken")] == ["2.00", "1.00", "7.00"]
    assert [body[m][-2] for m in ("identity", "cropper", "broken")] == ["0.5000", "0.9000", "0.1000"]
    demo = re.search(r'data-dataset="demo">(.*?)</table>', html, re.S).group(1)
    assert re.search(r"class='num best'>1\.00</td>", demo) and re.search(r"class='num best'>0\.9000</td>", demo)
    other = _overview(html, "other")
    assert other[0][-1] == "lab_emd ↓" and other[1][0] == "identity" and other[1][-1] == "1.50"
    md = (dest / "report.md").read_text()
    assert "## Metrics overview" in md and "| method | iou ↑ (n=1) |" in md and "| cropper |" in md
    assert "**1.00**" in md.split("## Metrics overview")[1]
    rows_csv = list(csv.DictReader(io.StringIO((dest / "tables" / "overview.csv").read_text())))
    got = {(r["dataset"], r["method"]): r for r in rows_csv}
    assert float(got[("demo", "broken")]["lab_emd"]) == 7.0 and got[("other", "identity")]["clip"] == ""
    assert "tables/overview.csv" in summary.files and "tables/lab_emd.md" in summary.files


def _figures(page: str) -> dict[str, dict[str, tuple[str, bool]]]:
    """method -> {label: (value text, bold)} of each output figure of a pair page."""
    out = {}
    for fig in re.findall(r"<figure[^>]*>(.*?)</figure>", page, re.S):
        alt = re.search(r'alt="([^"]+) output"', fig)
        if alt:
            rows = re.findall(r"<tr><th>(.*?)</th><td class='num( best)?'>(.*?)</td></tr>", fig)
            out[alt.group(1)] = {k: (v, bool(b)) for k, b, v in rows}
    return out


def test_pair_pages_show_each_outputs_value_of_every_metric(report):
    dest, summary = report
    html = (dest / "index.html").read_text()
    assert '<a href="#grid-demo">each output' in html  # the overview leads to the grid, whose pairs open the pages
    assert not any(f.startswith("pairs/") and f.count("/") == 1 for f in summary.files)  # no second kind of page
    page = (dest / "pairs" / "demo" / "p1.html").read_text()
    assert page.index('<div class="banner random">') < page.index("<main>")  # random clip / metric models
    figs = _figures(page)
    assert set(figs) == {"identity", "cropper", "broken"}
    lab, clip = "Lab colour EMD to the appearance image ↓", "CLIP image cosine to the appearance image ↑"
    assert [figs[m][lab] for m in ("identity", "cropper", "broken")] == [("2.00", False), ("1.00", True),
                                                                         ("7.00", False)]  # fmt: skip
    assert [figs[m][clip] for m in ("identity", "cropper", "broken")] == [("0.5000", False), ("0.9000", True),
                                                                          ("0.1000", False)]  # fmt: skip
    assert figs["identity"]["layout IoU ↑"] == ("1.000", True) and "seconds" in figs["identity"]
    p2 = _figures((dest / "pairs" / "demo" / "p2.html").read_text())
    assert "broken" not in p2 and lab in p2["cropper"]  # the failed job has no values, only its state
