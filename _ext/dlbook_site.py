"""Site fixes that the theme and its extensions cannot be configured to make (Jupyter Book 1).

- Each page's scripts and stylesheets are listed once. With Sphinx 7, the configuration scripts of
  sphinx-thebe and sphinx-togglebutton are injected twice, and the second copy of a `const`
  declaration throws ("Identifier 'THEBE_JS_URL' has already been declared") on every page.
- MathJax loads only on pages that have maths: myst-nb asks Sphinx to put it on every page
  (a notebook output might carry maths), which costs each page 2.5 MB of JavaScript.
- No page loads Font Awesome's SVG-with-JavaScript bundle (1.5 MB on every page, for about twenty
  icons): the theme's template hard-codes it, so it is taken out of the written pages, and
  _static/dlbook-icons.css draws the same icons from the web fonts the theme already ships.
- Search indexes prose, not code or raw TeX: Sphinx's index reads every text node, so
  "KV cache" found chapter 04 through `from functools import cache`, and formulas added words
  such as "mathbf". Code blocks (cell inputs and printed outputs) and maths are skipped.
  (_static/dlbook.js leaves them out of the result snippets too.)
"""
from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx import search

FONTAWESOME_JS = re.compile(r'\s*<script[^>]*src="[^"]*_static/scripts/fontawesome\.js[^"]*"[^>]*>\s*</script>')


def _key(asset) -> tuple:
    """Two assets are the same when file and attributes agree: the duplicates differ only in
    an inline script's filename, None against "", which is why Sphinx keeps both."""
    attrs = tuple(sorted((k, str(v)) for k, v in getattr(asset, "attributes", {}).items()))
    return (str(getattr(asset, "filename", asset) or ""), attrs)


def _unique(assets: list) -> list:
    seen, kept = set(), []
    for asset in assets:
        key = _key(asset)
        if key not in seen:
            seen.add(key)
            kept.append(asset)
    return kept


def _has_maths(context: dict) -> bool:
    body = context.get("body", "")
    return 'class="math' in body or "\\(" in body or "\\[" in body


def tidy_assets(app, pagename, templatename, context, doctree) -> None:
    if "script_files" in context:
        scripts = _unique(context["script_files"])
        if not _has_maths(context):
            scripts = [s for s in scripts if "mathjax" not in str(getattr(s, "filename", s)).lower()
                       and "MathJax" not in getattr(s, "attributes", {}).get("body", "")]
        context["script_files"] = scripts
    if "css_files" in context:
        context["css_files"] = _unique(context["css_files"])


def drop_fontawesome_js(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        lean = FONTAWESOME_JS.sub("", text)
        if lean != text:
            page.write_text(lean, encoding="utf-8")


NOT_INDEXED = (nodes.literal_block, nodes.math, nodes.math_block, nodes.doctest_block)


def _prose_only(feed):
    """IndexBuilder.feed, given a copy of the page without its code and maths."""
    def feed_prose(self, docname, filename, title, doctree) -> None:
        prose = doctree.deepcopy()
        for node in list(prose.findall(lambda n: isinstance(n, NOT_INDEXED))):
            node.parent.remove(node)
        return feed(self, docname, filename, title, prose)

    feed_prose.dlbook_prose_only = True
    return feed_prose


def setup(app):
    # Sphinx's index has no hook for what it reads: wrap its feed once per process.
    if not getattr(search.IndexBuilder.feed, "dlbook_prose_only", False):
        search.IndexBuilder.feed = _prose_only(search.IndexBuilder.feed)
    # After every other handler has added its assets to the page.
    app.connect("html-page-context", tidy_assets, priority=900)
    app.connect("build-finished", drop_fontawesome_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
