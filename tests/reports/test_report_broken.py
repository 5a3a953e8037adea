"""The report of a killed and broken run (tests/support/broken.py): a banner says what is missing, every job
without a result has a named state in the summary, the headline table, the grid, its pair page and the list
with its path and fix; and the page reads results first, provenance last, as tables."""

from __future__ import annotations

import json
import re

import pytest

from reports.build import build_report
from reports.grids import GridStyle
from tests.support.broken import broken_run
from tests.support.report_store import build_store

STYLE = GridStyle(cell=96, rows_per_page=2)


@pytest.fixture(autouse=True)
def _dummies(monkeypatch):
    from tests.support.dummies import ensure_importable, register

    ensure_importable(monkeypatch)
    register()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from tests.support.dummies import register

    register()
    b = broken_run(tmp_path_factory.mktemp("broken"))
    summary = build_report(b.out, style=STYLE, pdf=False)
    return b, summary, (b.out / "report" / "index.html").read_text()


def test_banner_summary_and_headline_name_every_state(report):
    b, summary, html = report
    assert summary.jobs == {"done": 1, "failed": 1, "stale": 1, "pending": 3, "corrupt": 1, "output-missing": 1}
    banner = re.search(r'<div class="banner incomplete" id="banner-incomplete">(.*?)</div>', html).group(1)
    assert ("7 of 8 expected jobs have no result — dummy on toy: 1 failed, 1 corrupt record, 1 output missing; "
            "nomaxside on toy: 1 stale claim, 3 pending.") in banner
    assert 'data-incomplete-jobs="7"' in html and 'data-failed-jobs="1"' in html
    summary_html = html[html.index('<section id="summary">'):html.index("</section>")]
    for tag in ("1 done", "1 failed", "1 stale claim", "3 pending", "1 corrupt record", "1 output missing"):
        assert f">{tag}</span>" in summary_html, tag
    assert f"To fix, run the bench again: <code>{' '.join(b.argv)}</code>" in summary_html.replace("&#x27;", "'")
    headline = re.search(r"<table class=headline>(.*?)</table>", html).group(1)
    assert '<td>nomaxside</td><td class=jobs>0/4 <span class="st st-stale">1 stale claim</span>' in headline
    assert '<td class=jobs>1/4 <span class="st st-failed">1 failed</span><span class="st st-corrupt">1 corrupt ' \
           "record</span>" in headline


def test_grid_pair_pages_and_the_list_show_states_with_paths_and_fixes(report):
    b, _, html = report
    grid = re.search(r'<table class=grid data-dataset="toy".*?</table>', html, re.S).group(0)
    assert grid.count('class="state st-pending"') == 3 and grid.count('class="state st-stale"') == 1
    assert '<b>corrupt record</b><small>record.json is not JSON' in grid
    assert '<b>output missing</b><small>the record says ok; the file is gone</small>' in grid
    assert "file no output image recorded" not in html and "<b>not run</b>" not in grid
    page = (b.out / "report" / "pairs" / "toy" / "p0.html").read_text()
    assert "corrupt record" in page and f"fix: <code>{' '.join(b.argv)}</code>" in page.replace("&#x27;", "'")
    assert (b.out / "report" / "pairs" / "toy" / "p2" / "02-dummy-s0.png").is_file()  # the one output, full size
    health = html[html.index('<section id="health">'):html.index('<section id="provenance">')]
    rel = b.job_dir("dummy", "p0").relative_to(b.out) / "record.json"
    assert f"<code>{rel}</code>" in health and "record.corrupt-&lt;time&gt;.json" in health
    assert health.count("<tr>") == 1 + 7


def test_sections_in_reading_order_and_provenance_as_tables(tmp_path):
    run = build_store(tmp_path)
    build_report(run, style=STYLE, pdf=False)
    html = (run / "report" / "index.html").read_text()
    order = [html.index(f'<section id="{s}">') for s in ("summary", "tables", "grids", "plots", "cost", "health",
                                                         "provenance")]  # fmt: skip
    assert order == sorted(order)
    prov = html[html.index('<section id="provenance">'):]
    # weights as name / source / sha256, never a JSON string; seeds as values, never a bare count
    assert "<th>name</th><th>source</th><th>sha256</th>" in prov and '{"sha256"' not in prov
    assert "<td>identity-v1</td>" in prov and "<td>seed 0</td>" in prov
    # cost from the records: cropper took 2, 3 and 4 s
    cost = html[html.index('<section id="cost">'):html.index('<section id="health">')]
    assert "<td>cropper</td><td class=num>3</td><td class=num>3.00</td><td class=num>3.00</td>" in cost
    assert (run / "report" / "tables" / "cost.csv").read_text().splitlines()[0].startswith("dataset,method,jobs,")
    # every link of every page of the folder points inside it, to a file that exists
    rep = run / "report"
    pages = [rep / "index.html", *sorted((rep / "pairs").rglob("*.html"))]
    assert len(pages) == 1 + 4
    for page in pages:
        for link in re.findall(r'(?:src|href)="([^"#]+)', page.read_text()):
            assert not link.startswith(("/", "file:", "http")), (page, link)
            assert (page.parent / link).resolve().is_file(), (page, link)
    manifest = json.loads((rep / "report.json").read_text())
    assert "pairs/demo/p1.html" in manifest["files"] and "thumbs/demo/p1/00.jpg" in manifest["files"]


def test_headline_shows_the_papers_table_2_beside_ours(tmp_path):
    from tests.support.images import make_image
    from tests.support.store import add_job, iou_rec

    root = tmp_path / "run"
    s, a = tmp_path / "s.png", tmp_path / "a.png"
    make_image(96, 80, seed=1).save(s)
    make_image(72, 72, seed=2).save(a)
    for pair, (ours, theirs) in {"w1": (0.9, 0.8), "w2": (0.7, 0.6)}.items():
        add_job(root, "wild-pairs", pair, "splice", iou=iou_rec(ours), structure=str(s), appearance=str(a))
        add_job(root, "wild-pairs", pair, "strotss", iou=iou_rec(theirs), structure=str(s), appearance=str(a))
    build_report(root, style=STYLE, pdf=False)
    headline = re.search(r"<table class=headline>(.*?)</table>", (root / "report" / "index.html").read_text()).group(1)
    assert "<th>paper (Table 2)</th>" in headline
    assert ("<td>splice</td><td class=jobs>2/2 </td><td class='num best' title='2 common pairs'>0.800 ± 0.141</td>"
            "<td class=num>0.88 ± 0.06</td>") in headline
    assert "<td class='num' title='2 common pairs'>0.700 ± 0.141</td><td class=num>0.83 ± 0.11</td>" in headline


def test_an_open_slot_takes_a_section_after_the_tables(tmp_path):
    run = build_store(tmp_path)
    build_report(run, style=STYLE, pdf=False, extra={"metrics-overview": "<h2>Metrics overview</h2><p>x</p>"})
    html = (run / "report" / "index.html").read_text()
    slot = html.index('<section id="metrics-overview"><h2>Metrics overview</h2>')
    assert html.index('<section id="tables">') < slot < html.index('<section id="grids">')
