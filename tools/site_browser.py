"""The built site in headless Chromium, offline: shared by tests/test_browser.py and
tools/page_weight.py.

The site is served from `_build/html` on 127.0.0.1; every request to anywhere else is aborted and
recorded, so a page that works here works with no network. Chromium is Debian's
(`apt-get install -y chromium`), driven by Playwright through `executable_path`; nothing downloads
a browser.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import re
import shutil
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
AXE_VERSION = "4.10.3"
AXE_PREFIX = ROOT / ".venv" / "npm-axe"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(site: Path = SITE):
    """Serve the built site on a free local port; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def chromium_path() -> str | None:
    return shutil.which("chromium")


@contextlib.contextmanager
def launch():
    """Debian's Chromium under Playwright."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("Debian's chromium is missing: apt-get install -y chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def offline_page(browser, base: str, width: int = 1280, height: int = 900):
    """A page in a context of its own (an empty cache) whose requests off `base` are aborted (page.blocked), whose console errors and
    uncaught exceptions are collected (page.errors), and whose responses are sized
    (page.bytes_by_url)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.blocked, page.errors, page.bytes_by_url = [], [], {}

    def route(r):
        if r.request.url.startswith(base):
            r.continue_()
        else:
            page.blocked.append(r.request.url)
            r.abort()

    def sized(response):
        if response.status >= 400:
            page.errors.append(f"HTTP {response.status}: {response.url}")
        try:
            page.bytes_by_url[response.url.split("?")[0]] = len(response.body())
        except Exception:  # a response the page navigated away from has no body to size
            pass

    page.route("**/*", route)
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("response", sized)
    return page


def settle(page, timeout_ms: int = 20_000) -> None:
    """Wait until the page's maths is typeset (pages without maths load no MathJax)."""
    page.wait_for_load_state("load")
    if page.evaluate("!!document.querySelector('div.math, span.math')"):
        page.wait_for_function("document.querySelectorAll('mjx-container').length > 0",
                               timeout=timeout_ms)
    page.wait_for_timeout(300)


def axe_source() -> str:
    """axe-core from the npm registry, installed once into .venv/ (never from a CDN)."""
    script = AXE_PREFIX / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is missing: it installs axe-core for the accessibility check")
        subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix",
                        str(AXE_PREFIX), f"axe-core@{AXE_VERSION}"], check=True)
    return script.read_text()


def site_pages(site: Path = SITE) -> list[str]:
    """Every HTML page of the built site (decks and redirects apart), as paths relative to the
    site root."""
    pages = [p for p in site.rglob("*.html")
             if 'http-equiv="refresh"' not in p.read_text(errors="replace")[:2000].lower()]
    names = [p.relative_to(site).as_posix() for p in pages]
    return sorted(p for p in names if not p.startswith(("slides/", "_static/", "_sources/")))


def chapter_pages(site: Path = SITE) -> list[str]:
    return [p for p in site_pages(site) if re.match(r"chapters/\d\d_", p)]


# Every slide of a deck (tools/build_slides.py) as laid out at the deck's 1280x720: how far its
# content runs below or beside the frame, its code lines, its words (notes, code, maths and
# scripts apart), whether it has speaker notes, the height its figure gets, and TeX that MathJax
# left raw on the slide or in its notes.
MEASURE_DECK = """async () => {
  if (window.MathJax && MathJax.startup) await MathJax.startup.promise;
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const rawTex = /\\\\\\(|\\\\\\[|\\$\\$|\\\\(frac|mathbf|sum|begin|left|right|alpha|beta|theta|sigma|cdot|top|mathcal|hat)\\b/;
  const text = (el) => {
    const c = el.cloneNode(true);
    c.querySelectorAll('mjx-container, pre, script, style, svg, aside').forEach(e => e.remove());
    return c.textContent;
  };
  const slides = Reveal.getSlides();
  const out = [];
  for (let i = 0; i < slides.length; i++) {
    const s = slides[i];
    Reveal.slide(Reveal.getIndices(s).h, Reveal.getIndices(s).v);
    await frame();
    const box = s.querySelector('.dl-slide') || s;
    await Promise.all([...box.querySelectorAll('img')].map(im => im.complete ? null :
      new Promise(r => { im.onload = im.onerror = r; })));
    await frame();
    const heading = (box.querySelector('h1, h2') || {textContent: ''}).textContent.trim();
    const words = text(box).split(/\\s+/).filter(w => /[A-Za-z0-9]/.test(w)).length;
    const code = [...box.querySelectorAll('pre.dl-code')]
      .reduce((n, p) => n + p.textContent.replace(/\\n$/, '').split('\\n').length, 0);
    const notes = s.querySelector('aside.notes');
    const scale = Reveal.getScale();
    const fig = box.querySelector('.dl-visual img, .dl-visual svg');
    const m = {index: i, heading, words, code_lines: code,
      below: Math.max(0, box.scrollHeight - box.clientHeight),
      beside: Math.max(0, box.scrollWidth - box.clientWidth),
      notes: !!(notes && notes.textContent.trim()),
      figure_height: fig ? Math.round(fig.getBoundingClientRect().height / scale) : null,
      raw_tex: rawTex.test(text(box)) || (notes ? rawTex.test(text(notes)) : false)};
    m.problems = [];
    if (m.below > 1) m.problems.push(`content ${m.below} px below the frame`);
    if (m.beside > 1) m.problems.push(`content ${m.beside} px beside the frame`);
    if (fig && m.figure_height < 280) m.problems.push(`figure squeezed to ${m.figure_height} px`);
    if (m.raw_tex) m.problems.push('raw TeX');
    out.push(m);
  }
  Reveal.slide(0, 0);
  return out;
}"""


def measure_deck(page, timeout_ms: int = 30_000) -> list[dict]:
    """Measure every slide of the deck open in `page` (see MEASURE_DECK)."""
    page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=timeout_ms)
    return page.evaluate(MEASURE_DECK)


def arrow_right_reach(page) -> tuple[int, int]:
    """(slides reached from the first by ArrowRight alone, slides in the deck)."""
    total = page.evaluate("Reveal.getTotalSlides()")
    page.evaluate("Reveal.slide(0, 0); document.activeElement && document.activeElement.blur()")
    seen = {json_key(page.evaluate("Reveal.getIndices()"))}
    for _ in range(total + 2):
        page.keyboard.press("ArrowRight")
        seen.add(json_key(page.evaluate("Reveal.getIndices()")))
    return len(seen), total


def json_key(indices: dict) -> tuple:
    return (indices.get("h"), indices.get("v"))
