"""The static site in a real browser, offline: a slider on chapter 02 redraws its plot.

Needs the built site (make book) and Debian's chromium; run with `make browser-test`.
Every request that is not to the local static server is blocked, so the page must work offline.
"""
from __future__ import annotations

import functools
import http.server
import io
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
PAGE = "chapters/02_perceptron.html"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.browser


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    if not (SITE / PAGE).exists():
        pytest.fail(f"{SITE / PAGE} is missing: run `make book` first")
    handler = functools.partial(QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def offline_page(browser, server):
    """A page whose every request off the local static server is aborted and recorded."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.blocked = []

    def route(r):
        if r.request.url.startswith(server):
            r.continue_()
        else:
            page.blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return page


def test_slider_redraws_the_plot_offline(server, browser):
    page = offline_page(browser, server)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server}/{PAGE}", wait_until="load")
    figure = page.locator("figure.dlbook-interactive").first
    figure.scroll_into_view_if_needed()
    img = figure.locator("img")
    assert img.evaluate("el => el.complete && el.naturalWidth > 0"), "the plot's first frame did not render"
    slider = figure.locator('input[type="range"]').first
    frame_before = figure.get_attribute("data-frame")
    before = pixels(img.screenshot())

    slider.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(200)
    frame_after = figure.get_attribute("data-frame")
    after = pixels(img.screenshot())

    page.screenshot(path=str(ROOT / "_build" / "browser-test-02.png"))
    assert frame_after != frame_before, "moving the slider did not switch frames"
    assert before.shape == after.shape
    changed = np.any(before != after, axis=-1).mean()
    assert changed > 0.001, f"only {changed:.4%} of the plot's pixels changed"
    assert not [e for e in errors if "dlb" in e], errors
    page.close()


def test_pages_work_offline_with_typeset_maths(server, browser):
    page = offline_page(browser, server)
    page.goto(f"{server}/{PAGE}", wait_until="load")
    page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20_000)
    assert page.locator("mjx-container").count() > 3, "MathJax did not typeset the page's maths"
    assert page.blocked == [], f"the page tried to leave the machine: {page.blocked[:5]}"
    page.close()
