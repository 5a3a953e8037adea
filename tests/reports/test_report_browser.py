"""index.html in a real browser: headless Chromium loads the report, every image decodes, the banner is on top.

The page's own script records, after loading, how many images it has and how many failed to decode
(``<body data-images data-broken-images>``); ``--dump-dom`` returns the DOM after that script ran. Skips
when Chromium is not installed.
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
from tests.support.report_store import build_store

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")) if p and
                 Path(p).exists()), None)  # fmt: skip
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--virtual-time-budget=10000"]  # fmt: skip

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
    root = tmp_path_factory.mktemp("browser")
    run = build_store(root)
    build_report(run, style=GridStyle(cell=128, rows_per_page=2), pdf=False)
    return run / "report"


def test_index_loads_with_every_image(report, tmp_path):
    html = (report / "index.html").read_text()
    n_img = html.count("<img ")
    assert n_img == 3 + 6  # grid pages (demo: 2, other: 1) and six plots
    dom = chromium(tmp_path, "--dump-dom", (report / "index.html").as_uri()).stdout
    attrs = body_attrs(dom)
    assert attrs["data-images"] == str(n_img) and attrs["data-broken-images"] == "0"
    assert attrs["data-random-weights"] == "true" and attrs["data-failed-jobs"] == "1"
    assert re.search(r'<div class="banner broken" id="banner-broken" hidden=""></div>', dom)


def test_missing_image_is_detected_and_shown(report, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(report, copy)
    (copy / "grids" / "demo-p02.png").unlink()
    dom = chromium(tmp_path, "--dump-dom", (copy / "index.html").as_uri()).stdout
    attrs = body_attrs(dom)
    assert attrs["data-broken-images"] == "1"
    assert re.search(r'id="banner-broken">1 of 9 images did not load', dom)


def test_screenshot_shows_the_random_weights_banner_on_top(report, tmp_path):
    shot = tmp_path / "shot.png"
    chromium(tmp_path, "--window-size=1200,900", f"--screenshot={shot}", (report / "index.html").as_uri())
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (900, 1200)
    # the top rows are the red banner (#b71c1c), behind white text
    top = img[2:30, :600].reshape(-1, 3)
    red = (np.abs(top - [0xB7, 0x1C, 0x1C]).sum(axis=1) < 30).mean()
    assert red > 0.6, red
