"""The built site and its slide decks in a real browser, offline (make site-test, after make book).

On every page: no console error, no serious or critical axe-core violation (WCAG 2.1 AA), no
request off the machine, every icon drawn, and no sideways scrolling of the page on a 390 px
phone. On every chapter page at 1280x800, every figure's smallest text is at least 12 px. On every chapter page, on that phone: no figure wider than the screen (a tap shows it full
size), no raw TeX in the text, and in dark mode photos and colour maps keep their colours. On every chapter page, every control of every interactive plot changes its figure. Each
chapter's slide deck loads offline with the slides it should have, and a slider in it changes its
figure while the arrow keys stay with the slider. Every deck, measured at 1280x720 slide by
slide: nothing overflows the frame, at most 15 code lines and 120 words a slide (speaker notes
apart), ArrowRight alone reaches every slide, and at least half the slides have speaker notes.
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import site_browser  # noqa: E402

SITE = site_browser.SITE
PAGE = "chapters/02_perceptron.html"
PHONE = 390

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server():
    if not (SITE / PAGE).exists():
        pytest.fail(f"{SITE / PAGE} is missing: run `make book` first")
    with site_browser.serve() as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    if site_browser.chromium_path() is None:
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    with site_browser.launch() as b:
        yield b


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


AXE_SERIOUS = """async () => {
  const r = await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']});
  return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => v.id + ' (' + v.nodes.length + '): ' + v.nodes[0].target.join(' '));
}"""
MISSING_ICONS = """() => Array.from(document.querySelectorAll('i[class*="fa-"]'))
  .filter(i => i.offsetParent !== null)
  .filter(i => { const c = getComputedStyle(i, '::before').content; return !c || c === 'none'; })
  .map(i => i.className)"""


def test_every_page_is_clean_offline_accessible_and_fits_a_phone(server, browser):
    axe = site_browser.axe_source()
    problems = []
    for path in site_browser.site_pages():
        page = site_browser.offline_page(browser, server)
        page.goto(f"{server}/{path}")
        site_browser.settle(page)
        errors = list(page.errors)  # before axe, whose style-sheet preload refetches @imports
        page.add_script_tag(content=axe)
        serious = page.evaluate(AXE_SERIOUS)
        missing = page.evaluate(MISSING_ICONS)
        page.set_viewport_size({"width": PHONE, "height": 800})
        page.wait_for_timeout(300)
        width = page.evaluate("document.documentElement.scrollWidth")
        for kind, found in [("console errors", errors), ("requests off the machine", page.blocked),
                            ("axe serious/critical", serious), ("icons not drawn", missing)]:
            if found:
                problems.append(f"{path}: {kind}: {found[:3]}")
        if width > PHONE:
            problems.append(f"{path}: the page is {width} px wide on a {PHONE} px phone")
        page.close()
    assert not problems, "\n".join(problems)


FIGURES_TOO_WIDE = """() => Array.from(document.querySelectorAll('img.dlbook-figure'))
  .filter(i => i.offsetParent !== null && i.getBoundingClientRect().right > window.innerWidth + 1)
  .map(i => Math.round(i.getBoundingClientRect().width) + ' px: ' + i.alt.slice(0, 50))"""
# TeX that MathJax did not typeset, in what the reader sees (code and typeset maths apart)
RAW_TEX = """() => {
  const main = document.querySelector('main, [role=main]').cloneNode(true);
  main.querySelectorAll('mjx-container, pre, code, script, style, .cell_input, .highlight')
    .forEach(e => e.remove());
  return (main.innerText.match(/\\\\[a-zA-Z]{2,}|\\$\\$|\\\\\\(|\\\\\\[/g) || []).slice(0, 5);
}"""
INVERTED_COLOURS = """() => Array.from(document.querySelectorAll('img.dlbook-figure.dlbook-colour'))
  .filter(i => getComputedStyle(i).filter.includes('invert')).map(i => i.alt.slice(0, 50))"""
ZOOMED = """() => { const i = document.querySelector('.dlbook-zoom img');
  return i ? [i.naturalWidth, Math.round(i.getBoundingClientRect().width)] : null; }"""


def test_every_chapter_reads_on_a_phone_and_in_dark_mode(server, browser):
    """At 390x844: no figure wider than the screen, a tap shows one at its drawn size; no raw
    TeX anywhere; in dark mode, photos and colour maps keep their colours."""
    problems = []
    for path in site_browser.chapter_pages():
        page = site_browser.offline_page(browser, server, width=PHONE, height=844)
        page.goto(f"{server}/{path}")
        site_browser.settle(page)
        for kind, found in [("figures wider than the phone", page.evaluate(FIGURES_TOO_WIDE)),
                            ("raw TeX in the text", page.evaluate(RAW_TEX))]:
            if found:
                problems.append(f"{path}: {kind}: {found[:3]}")
        figure = page.locator("img.dlbook-figure:visible").first
        if figure.count():
            figure.scroll_into_view_if_needed()
            figure.click()
            zoomed = page.evaluate(ZOOMED)
            if not zoomed or zoomed[1] < zoomed[0] - 1:
                problems.append(f"{path}: a tap does not show the figure full size: {zoomed}")
            page.keyboard.press("Escape")
        page.evaluate("document.documentElement.dataset.theme = 'dark'")
        inverted = page.evaluate(INVERTED_COLOURS)
        if inverted:
            problems.append(f"{path}: colour figures inverted in dark mode: {inverted[:3]}")
        page.close()
    assert not problems, "\n".join(problems)


# Each figure's smallest text as Chromium shows it at 1280x800: dlbook recorded it (as
# data-min-text-px) for a figure shown min(COLUMN_PX, its own width) wide; scaled by the width the
# page really gives it. Figures in a closed toggle (not laid out) apart.
FIGURE_TEXT = """column => Array.from(document.querySelectorAll('img.dlbook-figure'))
  .filter(i => i.getBoundingClientRect().width > 0 && i.naturalWidth > 0)
  .map(i => { const shown = i.getBoundingClientRect().width, assumed = Math.min(column, i.naturalWidth);
    const px = i.dataset.minTextPx;
    return {alt: i.alt.slice(0, 50), shown: shown, assumed: assumed,
            px: px === undefined ? null : (px === 'none' ? Infinity : Number(px) * shown / assumed)}; })"""


def test_figures_show_at_the_width_their_text_assumed(server, browser):
    """At 1280x800 every figure and slider frame shows at the width dlbook assumed when it
    sized the figure's text (the 688 px column, or its own width when narrower), so its smallest
    text (data-min-text-px) is at least 12 px on the screen."""
    sys.path.insert(0, str(ROOT / "src"))
    from dlbook.style import COLUMN_PX, MIN_TEXT_PX

    problems, report = [], []
    for path in site_browser.chapter_pages():
        page = site_browser.offline_page(browser, server, width=1280, height=800)
        page.goto(f"{server}/{path}")
        page.wait_for_load_state("load")
        figures = page.evaluate(FIGURE_TEXT, COLUMN_PX)
        page.close()
        if not figures:
            problems.append(f"{path}: no figure laid out")
            continue
        report.append(f"{path}: {len(figures)} figures, smallest text "
                      f"{min(f['px'] or 0 for f in figures):.1f} px")
        for f in figures:
            if f["px"] is None:
                problems.append(f"{path}: {f['alt']!r} has no data-min-text-px")
            elif f["px"] < MIN_TEXT_PX - 0.05:
                problems.append(f"{path}: {f['alt']!r}: text {f['px']:.1f} px (shown "
                                f"{f['shown']:.0f} px wide, sized for {f['assumed']} px)")
    print("\n".join(report))
    assert not problems, "\n".join(problems)


MOVE_EVERY_CONTROL = """fig => {
  const img = fig.querySelector('img');
  const changed = [];
  fig.querySelectorAll('[data-control]').forEach((el, i) => {
    const before = img.src, start = el.value;
    if (el.type === 'range') {
      el.value = String(el.value === el.max ? el.min : Number(el.value) + 1);
    } else {
      el.selectedIndex = (el.selectedIndex + 1) % el.options.length;
    }
    el.dispatchEvent(new Event('input'));
    changed.push([i, img.src !== before]);
    el.value = start;
    el.dispatchEvent(new Event('input'));
  });
  return changed;
}"""


def test_every_control_of_every_plot_changes_its_figure(server, browser):
    dead = []
    chapters = site_browser.chapter_pages()
    assert chapters
    for path in chapters:
        page = site_browser.offline_page(browser, server)
        page.goto(f"{server}/{path}")
        page.wait_for_load_state("load")
        figures = page.locator("figure.dlbook-interactive")
        assert figures.count() >= 1, f"{path} has no interactive plot"
        for k in range(figures.count()):
            for control, changed in figures.nth(k).evaluate(MOVE_EVERY_CONTROL):
                if not changed:
                    dead.append(f"{path}: plot {k}, control {control}")
        page.close()
    assert not dead, "controls that do not change their figure:\n" + "\n".join(dead)


def test_slider_redraws_the_plot_from_the_keyboard(server, browser):
    page = site_browser.offline_page(browser, server)
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
    after = pixels(img.screenshot())
    page.screenshot(path=str(ROOT / "_build" / "browser-test-02.png"))
    assert figure.get_attribute("data-frame") != frame_before, "moving the slider did not switch frames"
    assert slider.get_attribute("aria-valuetext") == figure.locator("output").first.inner_text(), (
        "a screen reader hears the value shown")
    assert before.shape == after.shape
    changed = np.any(before != after, axis=-1).mean()
    assert changed > 0.001, f"only {changed:.4%} of the plot's pixels changed"
    page.close()


def test_maths_is_typeset_and_out_of_the_tab_order(server, browser):
    page = site_browser.offline_page(browser, server)
    page.goto(f"{server}/{PAGE}")
    site_browser.settle(page)
    assert page.locator("mjx-container").count() > 3, "MathJax did not typeset the page's maths"
    tab_stops = page.evaluate("""() => Array.from(document.querySelectorAll('mjx-container'))
      .filter(m => m.getAttribute('tabindex') === '0' && m.scrollWidth <= m.clientWidth + 1)
      .length""")
    assert tab_stops == 0, "formulas that do not scroll are Tab stops"
    assert page.blocked == [], f"the page tried to leave the machine: {page.blocked[:5]}"
    page.close()


def test_every_deck_loads_offline_with_its_slides(server, browser):
    counts = json.loads((SITE / "slides" / "decks.json").read_text())
    assert set(counts) == {Path(p).stem for p in site_browser.chapter_pages()}
    problems = []
    for name, expected in counts.items():
        page = site_browser.offline_page(browser, server, width=1280, height=720)
        page.goto(f"{server}/slides/{name}.html")
        page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=20_000)
        total = page.evaluate("Reveal.getTotalSlides()")
        if total != expected:
            problems.append(f"{name}: {total} slides, expected {expected}")
        if page.errors or page.blocked:
            problems.append(f"{name}: errors {page.errors[:3]}, requests off the machine {page.blocked[:3]}")
        page.close()
    assert not problems, "\n".join(problems)


def test_a_deck_slider_changes_its_figure_and_keeps_the_arrow_keys(server, browser):
    page = site_browser.offline_page(browser, server, width=1280, height=720)
    page.goto(f"{server}/slides/02_perceptron.html")
    page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=20_000)
    where = page.evaluate("""() => {
      const el = document.querySelector('.reveal figure.dlbook-interactive input[type=range]');
      const at = Reveal.getIndices(el.closest('section'));
      Reveal.slide(at.h, at.v);
      return Reveal.getIndices();
    }""")
    page.wait_for_timeout(300)
    figure = page.locator(".reveal section.present figure.dlbook-interactive").first
    src_before = figure.locator("img").get_attribute("src")
    figure.locator('input[type="range"]').first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(200)
    assert page.evaluate("Reveal.getIndices()") == where, "the arrow key changed the slide"
    assert figure.locator("img").get_attribute("src") != src_before, "the slider did not change the figure"
    page.close()


CODE_LINES, WORDS, NOTES_SHARE = 15, 120, 0.5
# Decks known to be short of the notes share, listed so a gap is explicit; the check fails once
# a listed deck meets it, so that the entry is removed. (Chapter 00 met it when code the page
# shows but a slide has no room for went to the notes.)
SHORT_OF_NOTES: set[str] = set()


def test_every_deck_fits_the_frame_and_presents_from_the_keyboard(server, browser):
    """What an instructor needs of a deck (issue 25), measured in Chromium on every deck:
    slides overflowing 1280x720 (0), code lines a slide (<= 15), words a slide, notes apart
    (<= 120), slides ArrowRight does not reach (0), share of slides with notes (>= 0.5).
    A raw TeX command on a slide or in its notes counts as a problem too."""
    counts = json.loads((SITE / "slides" / "decks.json").read_text())
    assert counts, "no decks: run `make book`"
    problems, report = [], []
    for name in counts:
        page = site_browser.offline_page(browser, server, width=1280, height=720)
        page.goto(f"{server}/slides/{name}.html")
        slides = site_browser.measure_deck(page)
        reached, total = site_browser.arrow_right_reach(page)
        noted = sum(s["notes"] for s in slides) / len(slides)
        report.append(f"{name}: {len(slides)} slides, {sum(bool(s['problems']) for s in slides)} "
                      f"overflowing, max {max(s['code_lines'] for s in slides)} code lines, "
                      f"max {max(s['words'] for s in slides)} words, {total - reached} unreached, "
                      f"notes on {noted:.0%}")
        for s in slides:
            where = f"{name} slide {s['index'] + 1} ({s['heading'][:40]!r})"
            problems += [f"{where}: {p}" for p in s["problems"]]
            if s["code_lines"] > CODE_LINES:
                problems.append(f"{where}: {s['code_lines']} lines of code")
            if s["words"] > WORDS:
                problems.append(f"{where}: {s['words']} words")
        if reached < total:
            problems.append(f"{name}: ArrowRight reaches {reached} of {total} slides")
        if (noted < NOTES_SHARE) != (name in SHORT_OF_NOTES):
            problems.append(f"{name}: speaker notes on {noted:.0%} of the slides"
                            + (" (listed in SHORT_OF_NOTES: remove it)" if noted >= NOTES_SHARE
                               else ""))
        if page.errors or page.blocked:
            problems.append(f"{name}: errors {page.errors[:3]}, off the machine {page.blocked[:3]}")
        page.close()
    print("\n".join(report))
    assert not problems, "\n".join(problems)
