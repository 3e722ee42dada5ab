"""What a reader downloads for each chapter page (make book prints it; `--readme` also updates the
table in README.md).

Measured in headless Chromium, offline (tools/site_browser.py): every response the page loads,
MathJax and its fonts, the theme, the inlined frames of the interactive plots, until the maths is
typeset.
- *first visit*: everything the page loads, with nothing cached;
- *further chapter*: what is left once another chapter has been read, that is the files this page
  loads and no other chapter page does (the shared theme, scripts and fonts are in the cache).
Each is given as the bytes of the files and as what goes over the wire from a host that gzips its
responses (GitHub Pages, Netlify, nginx's gzip, ...); the aims apply to the transfer.
Without Chromium it prints only the size of each page's HTML. Aims: 3 MB for a first visit, 2 MB
for each further chapter; over 4 MB of HTML fails.
"""
from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

from readme_section import replace_section

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
BUDGET_MB = 4.0
AIM_FIRST_MB, AIM_FURTHER_MB = 3.0, 2.0


def html_stats(page: Path) -> tuple[float, int, int]:
    text = page.read_text(errors="replace")
    return (page.stat().st_size / 1e6, text.count('class="dlbook-interactive"'),
            len(re.findall(r'"data:image/png;base64,', text)))


def gzipped_size(url: str, base: str, size: int) -> int:
    """What a host that gzips its responses sends for the site file behind ``url``. Files that are
    compressed already (PNG, woff2) do not shrink, and a host sends them as they are."""
    path = SITE / url.removeprefix(base).lstrip("/")
    if not url.startswith(base) or not path.is_file():
        return size
    return min(size, len(gzip.compress(path.read_bytes(), 6)))


def measured(pages: list[Path]) -> dict[str, dict[str, int]]:
    """{page stem: {url: (bytes, gzipped bytes)}} for each chapter page, each loaded in a fresh browser context."""
    import site_browser

    loads = {}
    with site_browser.serve(SITE) as base, site_browser.launch() as browser:
        for page_path in pages:
            page = site_browser.offline_page(browser, base)  # a page of its own: an empty cache
            page.goto(f"{base}/{page_path.relative_to(SITE).as_posix()}")
            site_browser.settle(page)
            loads[page_path.stem] = {url: (size, gzipped_size(url, base, size))
                                     for url, size in page.bytes_by_url.items()}
            page.close()
    return loads


def main() -> int:
    pages = sorted((SITE / "chapters").glob("*.html"))
    if not pages:
        print("no built chapters: run `make book` first", file=sys.stderr)
        return 1
    sys.path.insert(0, str(Path(__file__).parent))
    import site_browser

    worst_html = max(html_stats(p)[0] for p in pages)
    if site_browser.chromium_path() is None:
        print("Chromium is missing (apt-get install -y chromium): HTML sizes only", file=sys.stderr)
        lines = ["| page | HTML (MB) | interactive plots | inline PNG images |", "|---|---:|---:|---:|"]
        lines += [f"| {p.stem} | {html_stats(p)[0]:.2f} | {html_stats(p)[1]} | {html_stats(p)[2]} |"
                  for p in pages]
        print("\n".join(lines))
        return 1 if worst_html > BUDGET_MB else 0
    loads = measured(pages)
    lines = ["| page | first visit, transfer (MB) | further chapter, transfer (MB) | first visit, "
             "files (MB) | HTML (MB) | interactive plots | inline PNG images |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    over_aim = []
    for p in pages:
        mine = loads[p.stem]
        elsewhere = set().union(*(set(v) for k, v in loads.items() if k != p.stem))
        first_files = sum(size for size, _ in mine.values()) / 1e6
        first = sum(sent for _, sent in mine.values()) / 1e6
        further = sum(sent for url, (_, sent) in mine.items() if url not in elsewhere) / 1e6
        html_mb, plots, images = html_stats(p)
        lines.append(f"| {p.stem} | {first:.2f} | {further:.2f} | {first_files:.2f} | {html_mb:.2f} "
                     f"| {plots} | {images} |")
        if first > AIM_FIRST_MB or further > AIM_FURTHER_MB:
            over_aim.append(p.stem)
    table = "\n".join(lines) + (
        "\n\nMeasured offline in headless Chromium by `tools/page_weight.py`: *first visit* is "
        "everything a chapter page loads with an empty cache; *further chapter* is what it adds "
        "once another chapter's shared files (theme, MathJax, fonts) are cached. *Transfer* is "
        "what a host that gzips its responses (GitHub Pages does) sends; *files* is the "
        "uncompressed size of the same files.")
    print(table)
    if over_aim:
        print(f"over the aim of {AIM_FIRST_MB} MB first / {AIM_FURTHER_MB} MB further: "
              + ", ".join(over_aim), file=sys.stderr)
    if "--readme" in sys.argv:
        replace_section("weight", table)
    if worst_html > BUDGET_MB:
        print(f"a page is over the {BUDGET_MB} MB budget: coarsen its sliders' grids", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
