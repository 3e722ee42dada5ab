"""Print the size of each built chapter page (run after make book; ``--readme`` also updates the
table in README.md): the interactive plots' frames are inlined, so this is what a reader downloads for a chapter (plus the theme's shared assets)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from readme_section import replace_section

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MB = 4.0


def main() -> int:
    pages = sorted((ROOT / "_build" / "html" / "chapters").glob("*.html"))
    if not pages:
        print("no built chapters: run `make book` first", file=sys.stderr)
        return 1
    worst = 0.0
    lines = ["| page | size (MB) | interactive plots | inline PNG images |", "|---|---:|---:|---:|"]
    for page in pages:
        text = page.read_text(errors="replace")
        mb = page.stat().st_size / 1e6
        worst = max(worst, mb)
        plots = text.count('class="dlbook-interactive"')
        images = len(re.findall(r'"data:image/png;base64,', text))
        lines.append(f"| {page.stem} | {mb:.2f} | {plots} | {images} |")
    table = "\n".join(lines)
    print(table)
    if "--readme" in sys.argv:
        replace_section("weight", table)
    if worst > BUDGET_MB:
        print(f"a page is over the {BUDGET_MB} MB budget: coarsen its sliders' grids", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
