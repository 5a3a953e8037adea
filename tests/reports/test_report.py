"""Report tests on the synthetic run store of test_report_store.py: grid geometry and headers, table numbers
(through eval.tables) against hand-computed values, banners, HTML escaping, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from reports.build import build_report
from reports.grids import FAILED_FILL, MISSING_FILL, UNCOVERED, GridStyle, aligned_output, build_grid
from reports.results import load_run
from reports.tables import build_tables
from splice.core.errors import ConfigError, UserError
from splice.core.geometry import Geometry
from splice.core.store import RunStore
from tests.support.report_store import EVIL_ERROR, RED, build_store

PROJECT = Path(__file__).resolve().parents[2]
STYLE = GridStyle(cell=120, pad=4, label_width=90, header_height=40, title_height=30, rows_per_page=2)


@pytest.fixture
def run(tmp_path) -> Path:
    return build_store(tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The synthetic store's report, built once for the tests that only read it."""
    run = build_store(tmp_path_factory.mktemp("built"))
    return build_report(run, dest=run.parent / "rep", style=STYLE, pdf=False)


def _cell(page, row: int, col: int) -> np.ndarray:
    return np.asarray(page.image.crop(STYLE.cell_box(row, col)))


# -- grids ---------------------------------------------------------------------------------------------------
def test_grid_geometry_headers_and_pages(run):
    df = load_run(run).df
    pages = build_grid(df, "demo", ["identity", "broken", "cropper"], STYLE)
    assert [p.page for p in pages] == [1, 2] and all(p.n_pages == 2 for p in pages)
    assert [p.row_labels for p in pages] == [["p1", "p2"], ["p3"]]
    titles = [c.title for c in pages[0].columns]
    assert titles == ["structure", "appearance", "identity", "broken", "cropper"]
    # the cropper's records say random weights: its header says so
    assert [c.subtitle for c in pages[0].columns] == ["", "", "", "", "random weights"]
    # page = label column + 5 cells wide, title + header + rows of cells high
    assert pages[0].image.size == (90 + 5 * 120, 30 + 40 + 2 * 120) == STYLE.page_size(2, 5)
    assert pages[1].image.size == (90 + 5 * 120, 30 + 40 + 1 * 120)
    header = np.asarray(pages[0].image.convert("L"))[30:70]
    for c in range(5):  # every column header has ink
        assert header[:, 90 + c * 120:90 + (c + 1) * 120].min() < 100
    # the title band names random weights in red
    def red_pixels(page) -> int:
        title = np.asarray(page.image)[:30].reshape(-1, 3).astype(int)
        return int(((title[:, 0] > 150) & (title[:, 1] < 60) & (title[:, 2] < 60)).sum())

    assert red_pixels(pages[0]) > 20
    # "other" holds only identity outputs (real); its metric records are random but change no picture
    assert red_pixels(build_grid(df, "other", ["identity"], STYLE)[0]) == 0


def test_grid_cells_are_aligned_to_the_structure_frame(run):
    df = load_run(run).df
    page = build_grid(df, "demo", ["identity", "broken", "cropper"], STYLE)[0]
    # identity output == structure image: identical cells
    np.testing.assert_array_equal(_cell(page, 0, 0), _cell(page, 0, 2))
    # p1 structure is 96x64; inner box 112x112 -> frame 112x75 (scale 7/6), centred at y = 4 + 18
    # cropper: centre crop (16, 0, 80, 64) -> x in [19, 93) of the frame is red, the rest grey
    cell = _cell(page, 0, 4)
    fx, fy = 4, 4 + (112 - 75) // 2
    assert tuple(cell[fy + 30, fx + 5]) == UNCOVERED and tuple(cell[fy + 30, fx + 106]) == UNCOVERED
    assert tuple(cell[fy + 30, fx + 56]) == RED
    assert tuple(cell[fy - 3, fx + 56]) == (255, 255, 255)  # above the frame: cell background
    # stretch to 64x64 is un-stretched: the broken method's p1 cell has the structure cell's frame shape
    broken = _cell(page, 0, 3).astype(int)
    structure = _cell(page, 0, 0).astype(int)
    assert np.abs(broken - structure).mean() < 12
    # failed job: a labelled blank in the failed colour; never-run job on page 2: the missing colour
    assert tuple(_cell(page, 1, 3)[6, 6]) == FAILED_FILL
    assert page.cells[1][3].label == "failed" and page.cells[1][3].detail == EVIL_ERROR
    page2 = build_grid(df, "demo", ["identity", "broken", "cropper"], STYLE)[1]
    assert page2.cells[0][3].label == "not run" and tuple(_cell(page2, 0, 3)[6, 6]) == MISSING_FILL


def test_aligned_output_places_crop_box():
    out = Image.new("RGB", (10, 10), RED)
    geo = Geometry(source=(200, 100), box=(50, 0, 150, 100), output=(10, 10), kind="center-crop")
    frame = np.asarray(aligned_output(out, geo, (100, 100)))
    assert frame.shape == (50, 100, 3)
    assert tuple(frame[25, 24]) == UNCOVERED and tuple(frame[25, 25]) == RED
    assert tuple(frame[25, 74]) == RED and tuple(frame[25, 75]) == UNCOVERED


def test_missing_output_file_and_input_are_labelled(run):
    df = load_run(run).df
    Path(df[(df.method == "cropper") & (df.pair_id == "p2")].iloc[0]["output"]).unlink()
    Path(df[df.pair_id == "p1"].iloc[0]["appearance"]).unlink()
    page = build_grid(load_run(run).df, "demo", ["identity", "broken", "cropper"], STYLE)[0]
    assert page.cells[1][4].label == "output missing" and tuple(_cell(page, 1, 4)[6, 6]) == FAILED_FILL
    assert page.cells[0][1].label == "appearance not found"


# -- tables --------------------------------------------------------------------------------------------------
def _row(table: pd.DataFrame, dataset: str, method: str) -> pd.Series:
    return table[(table.dataset == dataset) & (table.method == method)].iloc[0]


def test_table_numbers_match_hand_computed(run):
    res = load_run(run)
    tables = {t.metric: t.table for t in build_tables(res.df, res.methods)[0]}
    assert list(tables) == ["iou", "matched_iou", "structure", "appearance", "cosine", "seconds"]
    iou = tables["iou"]
    # the pair every method has a value for on demo is p1 (identity 1.0, cropper 0.5, broken 0.3)
    r = _row(iou, "demo", "identity")  # all pairs: 1.0 and 0.8 used, p3 excluded
    assert (r.n_all, r.excluded, r.failed, r.n_common) == (2, 1, 0, 1) and r.mean_common == 1.0 and r.best
    assert r.mean_all == pytest.approx(0.9) and r.std_all == pytest.approx(math.sqrt(0.02))
    r = _row(iou, "demo", "cropper")  # 0.5, 0.25, 0.75
    assert r.mean_all == pytest.approx(0.5) and r.std_all == pytest.approx(0.25) and r.n_all == 3
    assert r.mean_common == 0.5 and r.n_common == 1 and r.segmenter == "maskrcnn"
    r = _row(iou, "demo", "broken")  # one value, one failed job
    assert (r.n_all, r.failed) == (1, 1) and r.mean_all == pytest.approx(0.3) and math.isnan(r.std_all)
    r = _row(tables["structure"], "demo", "cropper")  # 0.01, 0.02, 0.03
    assert r.mean_all == pytest.approx(0.02) and r.std_all == pytest.approx(0.01)
    r = _row(tables["seconds"], "demo", "cropper")  # 2, 3, 4
    assert r.mean_all == pytest.approx(3.0) and r.std_all == pytest.approx(1.0)


def test_table_files(built):
    summary = built
    t = built.dest / "tables"
    csv = pd.read_csv(t / "iou.csv", comment="#")
    ident = csv[(csv.dataset == "demo") & (csv.method == "identity")].iloc[0]
    assert ident["mean_all"] == pytest.approx(0.9) and ident["std_all"] == pytest.approx(0.141421, abs=1e-5)
    assert ident["n_common"] == 1 and "paper_mean" in csv  # the paper's Table 2 column (no demo row there)
    md = (t / "iou.md").read_text()
    assert md.splitlines()[0].startswith("> **RANDOM WEIGHTS")  # random models: said on the first line
    assert "| demo | identity | maskrcnn | **1.000 ± –** | 1 | 0.900 ± 0.141 | 2 | – | 1 | 0 | — |" in md
    assert "| demo | cropper | maskrcnn | 0.500 ± – | 1 | 0.500 ± 0.250 | 3 | – | 0 | 0 | — |" in md
    tex = (t / "iou.tex").read_text()
    assert tex.startswith("% RANDOM WEIGHTS") and r"\textbf{1.000 $\pm$ --}" in tex
    assert summary.tables == ["iou", "matched_iou", "structure", "appearance", "cosine", "seconds"]
    html = (built.dest / "index.html").read_text()
    assert "0.900 ± 0.141" in html and "0.0200 ± 0.0100" in html and "paper (Table 2)" in html


# -- the page ------------------------------------------------------------------------------------------------
def test_index_banners_and_escaping(built):
    summary, rep = built, built.dest
    html = (rep / "index.html").read_text()
    body = html[html.index("<body"):]
    # the random-weights banner is the first thing in the body, then the incomplete-run banner
    first = body[body.index(">") + 1:].lstrip()
    assert first.startswith('<div class="banner random" id="banner-random">RANDOMLY INITIALISED MODELS')
    assert body.index('id="banner-random"') < body.index('id="banner-incomplete"') < body.index("<main>")
    assert "<b>Incomplete run:</b> 1 of 9 expected jobs have no result — broken on demo: 1 failed" in html
    assert "<title>[RANDOM WEIGHTS]" in html
    # nothing from a record reaches the page unescaped
    assert "<script>alert" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    # relative links only, to files that exist
    import re

    for link in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert not link.startswith(("/", "file:", "http")), link
        assert (rep / link).is_file(), link
    assert summary.random_weights and summary.n_failed == 1
    md = (rep / "report.md").read_text()
    assert md.splitlines()[0].startswith("> **RANDOMLY INITIALISED MODELS")
    assert json.loads((rep / "run.json").read_text())[0]["git_sha"] == "abc123"
    manifest = json.loads((rep / "report.json").read_text())
    assert manifest["random_weights"] is True and "index.html" in manifest["files"]


def test_no_banner_for_clean_real_weights_run(tmp_path):
    run = build_store(tmp_path, random=False, failures=False)
    summary = build_report(run, style=STYLE, pdf=False)
    html = (run / "report" / "index.html").read_text()
    assert not summary.random_weights and summary.n_failed == 0
    assert 'id="banner-random"' not in html and 'id="banner-incomplete"' not in html
    assert "RANDOM" not in html and 'data-random-weights="false"' in html
    assert not (run / "report" / "report.md").read_text().startswith(">")
    assert not (run / "report" / "tables" / "iou.csv").read_text().startswith("#")


def test_filters_and_stale_files(run):
    build_report(run, style=STYLE)
    rep = run / "report"
    assert (rep / "grids" / "other-p01.png").is_file()
    summary = build_report(run, datasets=["demo"], methods=["cropper,identity"], style=STYLE, pdf=False)
    assert summary.datasets == ["demo"] and summary.methods == ["cropper", "identity"]
    assert not (rep / "grids" / "other-p01.png").exists() and not (rep / "grids" / "other.pdf").exists()
    assert not (rep / "grids" / "demo.pdf").exists() and not (rep / "plots" / "iou.pdf").exists()  # --no-pdf
    page = build_grid(load_run(run, ["demo"], ["cropper", "identity"]).df, "demo", summary.methods, STYLE)[0]
    assert [c.title for c in page.columns] == ["structure", "appearance", "cropper", "identity"]
    with pytest.raises(ConfigError, match="--methods nope: not in run .*; it holds: broken, cropper, identity"):
        load_run(run, methods=["nope"])
    with pytest.raises(UserError, match="run folder not found"):
        load_run(run.parent / "absent")


def test_cli(run, tmp_path):
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT)}
    cmd = [sys.executable, "-m", "splice", "report", "--out", str(run), "--rows-per-page", "2", "--cell-size", "96",
           "--dest", str(tmp_path / "r"), "--json"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["random_weights"] is True and out["grid_pages"] == {"demo": 2, "other": 1}
    assert "RANDOMLY INITIALISED" in p.stderr and (tmp_path / "r" / "index.html").is_file()
    assert Image.open(tmp_path / "r" / "grids" / "demo-p01.png").size == GridStyle(cell=96).page_size(2, 5)
    pdf = (tmp_path / "r" / "grids" / "demo.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"/Count 2" in pdf  # both pages of demo in one PDF
    assert (tmp_path / "r" / "plots" / "iou.pdf").read_bytes().startswith(b"%PDF")
    p = subprocess.run([sys.executable, "-m", "splice", "report", "--out", str(tmp_path / "nope")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)  # fmt: skip
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [f"error: --out {tmp_path / 'nope'}: run store not found; create it with "
                                             f"`splice bench --out {tmp_path / 'nope'} ...`"]  # fmt: skip


def test_run_json_shapes_and_command_line():
    from reports.page import _entry_html, _run_entries

    assert _run_entries({"schema": 1, "invocations": [{"id": "a"}, {"id": "b"}]}) == [{"id": "a"}, {"id": "b"}]
    assert _run_entries([{"id": "a"}]) == [{"id": "a"}] and _run_entries({"id": "a"}) == [{"id": "a"}]
    assert _run_entries(None) == []
    html = _entry_html({"command": ["splice", "bench", "--out", "runs/a b"], "settings": {"preset": "smoke",
                        "max_side": None}}, "invocation 1")  # fmt: skip
    assert "<code>splice bench --out &#x27;runs/a b&#x27;</code>" in html
    assert "<th>preset</th><td>smoke</td>" in html and "<th>max_side</th><td><code>null</code></td>" in html


def test_seeds_and_config_variants(run):
    from tests.support.report_store import _job

    store, data = RunStore(run), run.parent / "data"
    # a second seed of identity (not shown: the lowest seed is) and a second cropper configuration (own column)
    _job(store, data, "demo", "p1", "identity", random=False, seed=1)
    key = _job(store, data, "demo", "p1", "cropper", random=False, extra={"steps": 10})
    df = load_run(run).df
    page = build_grid(df, "demo", ["identity", "broken", "cropper"], STYLE)[0]
    titles = [(c.title, c.subtitle) for c in page.columns]
    main_hash = df[(df.method == "cropper") & (df.pair_id == "p2")].iloc[0]["config_hash"]
    assert titles[4] == ("cropper", f"config {main_hash[:8]} · random weights")  # 3 jobs: first
    assert titles[5] == ("cropper", f"config {key.config_hash[:8]}")  # 1 job, real weights
    assert page.cells[0][2].job["seed"] == 0
    assert page.cells[0][5].image is not None and page.cells[1][5].label == "not run"
    assert page.image.size == STYLE.page_size(2, 6)


def test_filter_without_jobs(run):
    # "other" holds no cropper job: with --methods cropper it is left out, not drawn as an empty grid
    assert load_run(run, methods=["cropper"]).datasets == ["demo"]
    with pytest.raises(UserError, match="has no job of methods cropper on data sets other; check"):
        load_run(run, datasets=["other"], methods=["cropper"])


def test_provenance_values_are_readable_not_json():
    """run.json's nested values: floats to six significant digits, a cost estimate's per-method list as a table
    (its list cells as comma lists), a state count as "done 2" (they printed as JSON strings before)."""
    from reports.page import _value_html

    assert _value_html(96.64687280273438) == "96.6469"
    assert _value_html({"done": 2, "failed": 1}) == "done 2, failed 1"
    estimate = {"methods": [{"method": "splice", "seconds": 21.606250000000003, "sources": ["reference table"]}],
                "wall_seconds": 96.64687280273438}  # fmt: skip
    html = _value_html(estimate, "estimate", 1)
    assert "<th>method</th><th>seconds</th><th>sources</th>" in html
    assert "<td>splice</td><td>21.6063</td><td>reference table</td>" in html and "96.6469" in html
    assert "{" not in html  # no JSON left
