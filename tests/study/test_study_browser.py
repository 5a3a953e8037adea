"""The lab study page end to end in headless Chromium (skipped where Chromium is absent).

One test needs only the ``chromium`` binary (``--dump-dom`` after answering trials over HTTP);
the click-through drives the page with Playwright when it is installed (never downloads a
browser: it launches /usr/bin/chromium).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from eval.study import csvsafe
from eval.study.analyze import AnalysisSettings, analyze
from tests.support.study import Server, exported_study
from tests.support.study import answer_key as _key

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


ALL_IMAGES_LOADED = ("document.images.length === 4 && "
                     "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")


def _need_chromium():
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")


@pytest.fixture
def server(tmp_path):
    s = Server(exported_study(tmp_path))
    yield s
    s.close()


def test_page_renders_with_images_in_chromium(server, tmp_path):
    _need_chromium()
    lab = server.lab
    for choice in ("left", "right"):  # answer two trials over plain HTTP form posts
        t = lab.next_trial("P01")
        assert server.request("POST", "/answer", {"rater": "P01", "trial": t.trial_id, "choice": choice})[0] == 303
    current = lab.next_trial("P01")
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                           "--dump-dom", f"http://127.0.0.1:{server.port}/trial?rater=P01"],
                          capture_output=True, text=True, timeout=90)
    dom = proc.stdout
    assert "Question 3 of 12" in dom, proc.stderr[-2000:]
    assert 'data-images-total="4"' in dom and 'data-images-loaded="4"' in dom  # set by the page's script
    assert f'value="{current.trial_id}"' in dom
    assert len(csvsafe.read_csv_rows(server.lab.results_path)[1]) == 2


def test_click_through_a_whole_session(server, tmp_path):
    _need_chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    study, key = server.lab.root, _key(server.lab.root)
    chosen: dict[str, str] = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15000)
            page.goto(f"http://127.0.0.1:{server.port}/")
            page.fill("input[name=rater]", "lab.P03")
            with page.expect_navigation():
                page.click("#start")
            for n in range(12):
                assert page.inner_text("#progress") == f"Question {n + 1} of 12"
                # every image decoded (waits: a slow CI machine may still be fetching them)
                page.wait_for_function(ALL_IMAGES_LOADED)
                trial = page.get_attribute("input[name=trial]", "value")
                if n == 5:  # stop, and continue later from the start page with the same name
                    with page.expect_navigation():
                        page.click("#stop")
                    page.fill("input[name=rater]", "lab.P03")
                    with page.expect_navigation():
                        page.click("#start")
                    assert page.inner_text("#progress") == "Question 6 of 12"
                side = ("left", "right")[n % 2]
                with page.expect_navigation():
                    if n % 3 == 0:
                        page.keyboard.press("1" if side == "left" else "ArrowRight")
                    else:
                        page.click(f"#choose-{side}")
                chosen[trial] = side
            assert "All 12 questions answered" in page.inner_text("#progress")
        finally:
            browser.close()
    header, rows = csvsafe.read_csv_rows(study / "lab" / "results.csv")
    got = {}
    for r in rows:
        slot = int(re.sub(r"\D", "", next(c for c in header if c.startswith("Answer.") and r[c])))
        got[r[f"Input.trial_{slot}_id"]] = r[f"Answer.trial_{slot}"]
        assert r["WorkerId"] == "lab.P03"
    assert got == chosen and len(rows) == 12
    assert {key[t]["hit"] for t in got} == set(server.lab.hits)  # every HIT, each comparison once
    a = analyze(AnalysisSettings(results=[study / "lab" / "results.csv"], key=study / "private" / "answer_key.csv",
                                 min_vigilance=0.0))
    assert a.dropped["votes_used"] == 9 and a.dropped["raters"] == 1
