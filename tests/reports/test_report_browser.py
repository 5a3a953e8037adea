"""index.html in a real browser: headless Chromium loads the report, every image decodes, the banner is on top,
the first screen (1400x1000) holds results (summary, headline table, the start of the grid) and not settings,
and a pair page shows every image.

The page's own script records, after loading, how many images it has and how many failed to decode
(``<body data-images data-broken-images>``); ``--dump-dom`` returns the DOM after that script ran. The layout
checks drive the page with Playwright (never downloading a browser: it launches the installed Chromium). Skips
when Chromium (or Playwright, for those) is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reports.build import build_report
from reports.grids import GridStyle
from splice.core.atomic import atomic_write_json
from splice.core.health import JOB_SPEC
from splice.core.store import RunStore
from tests.support.report_store import build_store

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")) if p and
                 Path(p).exists()), None)  # fmt: skip
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--virtual-time-budget=10000"]  # fmt: skip
SCREEN = {"width": 1400, "height": 1000}

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    p = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                       timeout=180)  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    return p


def body_attrs(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The synthetic store's report, with one more job planned and never run (an incomplete run)."""
    root = tmp_path_factory.mktemp("browser")
    run = build_store(root)
    store = RunStore(run)
    done = next(k for k, _ in store.iter_records() if k.method == "broken")
    pending = done.__class__(done.dataset, "p3", done.method, done.seed, done.config_hash)
    atomic_write_json(store.job_dir(pending) / JOB_SPEC, {"key": pending.to_dict(), "pair": {"pair_id": "p3"}})
    build_report(run, style=GridStyle(cell=128, rows_per_page=2), pdf=False)
    return run / "report"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def test_index_loads_with_every_image(report, tmp_path):
    html = (report / "index.html").read_text()
    n_img = html.count("<img ")
    # grid cells: demo 3 pairs x 5 columns but broken's p2 (failed) and p3 (pending); other 1 pair x 3; six plots
    assert n_img == 3 * 5 - 2 + 3 + 6
    dom = chromium(tmp_path, "--dump-dom", (report / "index.html").as_uri()).stdout
    attrs = body_attrs(dom)
    assert attrs["data-images"] == str(n_img) and attrs["data-broken-images"] == "0"
    assert attrs["data-random-weights"] == "true" and attrs["data-failed-jobs"] == "1"
    assert attrs["data-incomplete-jobs"] == "2"
    assert re.search(r'<div class="banner broken" id="banner-broken" hidden=""></div>', dom)


def test_missing_image_is_detected_and_shown(report, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(report, copy)
    (copy / "thumbs" / "demo" / "p1" / "02.jpg").unlink()
    dom = chromium(tmp_path, "--dump-dom", (copy / "index.html").as_uri()).stdout
    attrs = body_attrs(dom)
    assert attrs["data-broken-images"] == "1"
    assert re.search(r'id="banner-broken">1 of 22 images did not load', dom)


def test_screenshot_shows_the_random_weights_banner_on_top(report, tmp_path):
    shot = tmp_path / "shot.png"
    chromium(tmp_path, "--window-size=1200,900", f"--screenshot={shot}", (report / "index.html").as_uri())
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (900, 1200)
    # the top rows are the red banner (#b71c1c), behind white text
    top = img[2:30, :600].reshape(-1, 3)
    red = (np.abs(top - [0xB7, 0x1C, 0x1C]).sum(axis=1) < 30).mean()
    assert red > 0.6, red


def test_the_first_screen_holds_results_not_settings(report, browser, tmp_path):
    page = browser.new_page(viewport=SCREEN)
    try:
        page.goto((report / "index.html").as_uri())
        page.wait_for_load_state("load")

        def box(selector: str) -> dict:
            b = page.locator(selector).first.bounding_box()
            assert b is not None, selector
            return b

        fold = SCREEN["height"]
        for selector in ("#banner-random", "#banner-incomplete", "#summary", "table.headline"):
            b = box(selector)
            assert b["y"] + b["height"] <= fold, (selector, b)  # entirely on the first screen
        first_row = box("table.grid tbody tr")
        assert first_row["y"] < fold - 60, first_row  # the grid starts on it, pictures showing
        assert page.locator("table.grid tbody tr").first.locator("img").count() >= 3
        for selector in ("#provenance", "#cost", "#plots"):  # settings and the rest come later
            assert box(selector)["y"] > fold, selector
        assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]  # no sideways scrolling
        page.screenshot(path=str(tmp_path / "first-screen.png"))
        text = page.inner_text("#summary")
        assert "1 failed" in text and "1 pending" in text and "demo (3 pairs)" in text
    finally:
        page.close()


def test_the_metrics_overview_is_folded_and_its_link_opens_it(report, browser):
    page = browser.new_page(viewport=SCREEN)
    try:
        page.goto((report / "index.html").as_uri())
        page.wait_for_load_state("load")
        assert not page.locator("table.overview").first.is_visible()  # folded: the grid keeps the first screen
        page.locator("nav a", has_text="Metrics overview").click()
        page.wait_for_function("document.querySelector('#metrics-overview details').open")
        assert page.locator("table.overview").first.is_visible()
        assert page.locator('table.overview[data-dataset="demo"] tr').count() == 1 + 3  # header and 3 methods
    finally:
        page.close()


def test_a_pair_page_loads_with_all_images(report, browser):
    page = browser.new_page(viewport=SCREEN)
    try:
        page.goto((report / "index.html").as_uri())
        page.wait_for_load_state("load")
        with page.expect_navigation():
            page.locator("table.grid tbody th a", has_text="p1").first.click()
        assert page.url.endswith("/pairs/demo/p1.html")
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
        # structure, appearance and the outputs of identity, broken and cropper, at full size
        assert [alt for _, _, alt in images] == ["structure image", "appearance image", "identity output",
                                                 "broken output", "cropper output"]  # fmt: skip
        assert all(ok and width > 0 for ok, width, _ in images), images
        widths = dict((alt, w) for _, w, alt in images)
        assert widths["structure image"] == 96 and widths["cropper output"] == 64  # the files' own sizes
        assert page.evaluate("document.body.dataset.brokenImages") == "0"
        assert "layout IoU" in page.inner_text("body") and "0.500" in page.inner_text("body")
    finally:
        page.close()
