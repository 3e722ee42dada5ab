"""Copy MathJax 3 from the installed `django-static-mathjax` wheel into the built site,
`_build/html/_static/mathjax` (run after `jupyter-book build`; `make book` does).

The site then typesets its maths with no CDN, so it reads the same offline as online.
Only the parts the `tex-chtml` bundle loads are copied: the bundle, TeX extensions it
auto-loads, the CHTML web fonts, and the menu/accessibility components; and the `tex-svg`
bundle, which the slide decks use (tools/build_slides.py: SVG maths shows typeset in the
speaker view too). `python tools/vendor_mathjax.py SITE` copies into another built site. Not into the book's own
`_static/`: Jupyter Book 1 adds every .js file found there to every page.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "_build" / "html" / "_static" / "mathjax"
PARTS = ["tex-chtml.js", "tex-svg.js", "input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y", "adaptors"]


def main(argv: list[str] | None = None) -> int:
    global TARGET
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        TARGET = Path(argv[0]).resolve() / "_static" / "mathjax"
    if not TARGET.parent.is_dir():
        print(f"{TARGET.parent} is missing: build the site first (make book)", file=sys.stderr)
        return 1
    try:
        import mathjax  # the django-static-mathjax wheel installs a data-only package named mathjax
    except ImportError:
        print("MathJax is missing: pip install django-static-mathjax (it is in requirements.txt)",
              file=sys.stderr)
        return 1
    source = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (source / "tex-chtml.js").exists():
        print(f"{source}/tex-chtml.js not found: is django-static-mathjax 3.x installed?", file=sys.stderr)
        return 1
    for part in PARTS:
        src, dst = source / part, TARGET / part
        if not src.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    size = sum(p.stat().st_size for p in TARGET.rglob("*") if p.is_file())
    print(f"MathJax copied to {TARGET} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
