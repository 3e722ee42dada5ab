"""Build a static reveal.js slide deck of every chapter, into the built site (make book).

    python tools/build_slides.py [--site _build/html] [--executed _build/executed/chapters]
                                 [--no-measure]

Each deck is made from the notebook the book build executed, so its numbers, figures and
interactive plots are the page's own. The deck is generated here, cell by cell, by rules that
hold for any chapter (no chapter is tuned by hand):

- a title slide: the book, the chapter's number and title, its learning objectives;
- then one idea per slide, in one flat horizontal sequence (ArrowRight alone reaches every
  slide): a heading, a few short points or the key equations, and a figure or interactive plot
  scaled to fill what is left of the 1280x720 frame;
- code only where it is the idea: a visible code cell of at most 15 lines, or a library listing
  (``show_source``), cut to 15 lines; never imports, set-up, drawing code (hide-input), hidden
  checks, ``say()`` cells' code or solutions;
- code that shows and defines nothing (no print, display or value at its end, no def or
  class) is the set-up of a result a later cell shows: the slide shows the result, the notes the
  code; a library listing loses its docstrings and, if longer than a slide, breaks where a
  definition starts, over two slides at most; a short code block in the prose (an interface, a
  command) stays on its slide;
- every paragraph too long for a slide goes, whole and with its maths typeset, into the slide's
  speaker notes (``S``), what to say first and the code that ran after it; a slide keeps a
  paragraph's first sentence (never cut inside a formula, markup, brackets or quotes, nor after
  "et al." or an initial), and a long bullet its first sentence or clause, marked "...";
- a section too long for one slide continues on the next, but leaves no orphan: a last slide
  that fits on the one before rejoins it, a lone last point takes its neighbour along, and a
  sentence ending in a colon goes with what it introduces; a figure alone on its slide shows
  the first sentence the chapter says about it; a reading list is one slide (the references
  that fit; the rest in its notes).

Where the slides break is decided per cell by :func:`slide_arc`, which ``make format``
(tools/nbformat_chapters.py) also writes into the notebooks as RISE metadata, so presenting live
from Jupyter follows the same arc (a section too long for one slide, which the deck continues on
the next, is one scrolling slide live). A cell tagged ``slide-manual`` keeps the slide type its
author set, in the deck as live ("subslide" starts a slide: the deck has no vertical stacks).

After writing the decks, each is opened in Debian's chromium (tools/site_browser.py) at
1280x720 and every slide is measured; the build fails, naming deck and slide, if anything lies
below or beside the frame or a figure is squeezed small. Nothing comes from a CDN: reveal.js
(from the npm registry, installed once into .venv/) and the site's own MathJax are served from
the site's `_static/`. Decks land in `<site>/slides/NN_topic.html`, linked from each chapter page.
"""
from __future__ import annotations

import argparse
import ast
import html
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
EXECUTED = ROOT / "_build" / "executed" / "chapters"
REVEAL_VERSION = "4.6.1"
NPM_PREFIX = ROOT / ".venv" / "npm-reveal"
TEMPLATES = Path(__file__).resolve().parent / "slides"

# What fits one slide (the browser check after the build is the judge; these keep it rare).
CODE_LINES = 15  # code on a slide, at most
OUTPUT_LINES = 8  # printed output under a code cell on its slide; longer goes to the notes
SHORT_WORDS = 35  # a paragraph this short stays on the slide; a longer one is notes
SPARSE_WORDS = 25  # a slide with fewer on-slide words shows the start of its notes' prose
FILL_WORDS = 75  # ... up to this many words
POINT_WORDS = 45  # a longer bullet shows its first sentence (the notes have it whole)
LEAD_WORDS = 30  # a long paragraph under a heading leaves its first sentence, if this short
TEXT_WORDS = 100  # on-slide words of a text slide
MERGE_WORDS = 110  # a section's last slide rejoins the one before if together they hold no more
BESIDE_VISUAL_WORDS = 45  # on-slide words of a slide that also has a figure or code
POINTS = 6  # bullets, sentences and equations on a slide
EQUATIONS = 2
TABLE_ROWS = 8
SLIDE_WORDS = 115  # a displayed table's slide, heading and numbers included (the deck test: 120)
OBJECTIVE_WORDS = 85  # on the title slide; more objectives continue on a slide of their own
# Heights in px, estimated as the stylesheet (tools/slides/dlbook-slides.css) lays them out.
BODY_HEIGHT = 720 - 52  # the frame less its padding
FIGURE_MIN = 360  # a figure gets at least this much height
WORDS_A_LINE, LINE = 11, 40  # 29 px text on a 1208 px column
CODE_LINE, OUTPUT_LINE = 26, 24
CODE_WIDTH = 1160  # px of the code box; monospace is 0.6 em a character


def mono_style(lines: list[str], size: int) -> str:
    """A smaller font for code or output whose longest line would not fit the slide's width."""
    widest = max((len(line) for line in lines), default=0)
    fit = int(CODE_WIDTH / (0.61 * widest)) if widest else size
    return f" style='font-size:{fit}px'" if fit < size else ""


def text_height(n_words: int, bullet: bool = False) -> int:
    return -(-max(n_words, 1) // (WORDS_A_LINE - bullet)) * LINE + 8


def equation_height(tex: str) -> int:
    rows = 1 + len(re.findall(r"\\\\", tex))
    tall = 1 + bool(re.search(r"\\(frac|sum|prod|int|binom|begin\{[pb]?matrix)", tex))
    return 20 + rows * (36 + 24 * tall)


def heading_height(text: str) -> int:
    return 84 if len(text) <= 46 else 140


def markdown_height(text: str) -> int:
    """A said sentence, or a table the chapter printed as Markdown."""
    rows = len(re.findall(r"^\s*\|", text, re.M))
    if rows:
        return 30 + 40 * rows + text_height(words(re.sub(r"^\s*\|.*$", "", text, flags=re.M)))
    return text_height(words(text)) + 6

SKIP_TAGS = {"remove-cell", "colab-setup", "solution", "hide-cell"}
HIDDEN_INPUT_TAGS = {"hide-input", "remove-input", "prose"}
FIGURE_CALL = re.compile(r"\b(show|interactive_plot)\(")
LISTING_CALL = re.compile(r"\bshow_source\(")
DISPLAY_MATHS = re.compile(r"\$\$|\\begin\{")
INLINE_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)  # display maths inside a paragraph
OBJECTIVES = re.compile(r"learning objectives", re.I)
REFERENCES = re.compile(r"(further reading|references|bibliography|reading list)\b", re.I)
REF_WORDS = 110  # a reading list's slide: as many references as this many words; the rest, notes
MIN_OUTPUT_PX = 14  # printed output that would need a smaller font to fit is for the speaker


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def tags(cell: dict) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


# --------------------------------------------------------------------------------------------
# Markdown: blocks of a cell, rendered with their maths left for MathJax
# --------------------------------------------------------------------------------------------

def markdown():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.amsmath import amsmath_plugin
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    dollarmath_plugin(md, double_inline=True)
    amsmath_plugin(md)
    esc = html.escape
    md.add_render_rule("math_inline", lambda self, t, i, o, e: rf"\({esc(t[i].content, False)}\)")
    md.add_render_rule("math_inline_double",
                       lambda self, t, i, o, e: rf"\[{esc(t[i].content, False)}\]")
    md.add_render_rule("math_block",
                       lambda self, t, i, o, e: rf"<p class='dl-eq'>\[{esc(t[i].content, False)}\]</p>")
    md.add_render_rule("math_block_label",
                       lambda self, t, i, o, e: rf"<p class='dl-eq'>\[{esc(t[i].content, False)}\]</p>")
    md.add_render_rule("amsmath",
                       lambda self, t, i, o, e: f"<p class='dl-eq'>{esc(t[i].content, False)}</p>")
    return md


_MD = None


def md_engine():
    global _MD
    if _MD is None:
        _MD = markdown()
    return _MD


def words(text: str) -> int:
    """Words as a reader counts them: a formula is one, markup none."""
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|\\\[.*?\\\]|\\\(.*?\\\)", " x ", text, flags=re.S)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"<[^>]+>", " ", text)
    return len(re.findall(r"[\w\u00c0-\u024f][\w'\u2019.,:-]*", text))


def short_point(item: str) -> str:
    """A bullet as a slide shows it: whole when short; else its first sentence, or its first
    clause (to a semicolon), when that is short enough, else its opening words; never cut inside
    a word, a formula or markup, and a cut shows "..." (the whole bullet is in the notes)."""
    if words(item) <= POINT_WORDS:
        return item
    lead = first_sentence(item)
    if lead and words(lead) <= POINT_WORDS:
        return lead
    flat = " ".join(item.split())
    for match in re.finditer(";", flat):
        clause = flat[:match.start()]
        if balanced(clause):
            if words(clause) <= POINT_WORDS:
                return clause + " \u2026"
            break
    # else its opening words, cut where no formula or code is open
    kept, cut = [], ""
    for token in flat.split(" "):
        kept.append(token)
        text = " ".join(kept)
        if words(text) > LEAD_WORDS:
            break
        if balanced(text):
            cut = text
    return (cut.rstrip(",;:") + " \u2026") if cut else item


def balanced(text: str) -> bool:
    """No formula, code, bold, bracket or quotation left open."""
    return (text.count("$") % 2 == 0 and text.count("`") % 2 == 0 and text.count("**") % 2 == 0
            and text.count("(") <= text.count(")") and text.count("[") <= text.count("]")
            and text.count("\u201c") <= text.count("\u201d")
            and text.replace("\\\"", "").count('"') % 2 == 0)


# A full stop that ends no sentence: "et al.", "e.g.", "Mr.", an initial ("W. Pitts"), "1."
NOT_AN_END = re.compile(r"(\bet al|\be\.g|\bi\.e|\bcf|\bvs|\bFig|\bEq|\bch|\bSec|\bMr|\bMrs|"
                        r"\bDr|\bSt|\bNo|\b[A-Z]|^\W*\d+)\.$")


def sentences(text: str) -> list[str]:
    """The sentences of a paragraph: split after . ! or ? before a capital, a formula or markup,
    never inside a formula, markup, brackets or quotes, nor after an abbreviation or a number."""
    flat = " ".join(text.split())
    out, start = [], 0
    for match in re.finditer(r"[.!?][\"\u201d')]*(?=\s+[A-Z*`(\\$\"\u201c_\[])", flat):
        piece = flat[start:match.end()]
        if not balanced(piece) or NOT_AN_END.search(flat[start:match.start() + 1].strip()):
            continue
        out.append(piece.strip())
        start = match.end()
    if flat[start:].strip():
        out.append(flat[start:].strip())
    return out


def first_sentence(text: str) -> str:
    """The paragraph's first sentence (ending in . ! or ?); if display maths opens first, the
    words before it, which introduce the maths the slide keeps."""
    parts = sentences(text)
    if not parts:
        return ""
    lead = parts[0]
    if "$$" in lead:
        lead = lead.split("$$")[0].strip()
        return lead if lead.endswith(":") and balanced(lead) else ""
    return lead if re.search(r"[.!?][\"\u201d')]*$", lead) else ""


@dataclass
class Block:
    kind: str  # heading, points, equation, table, prose, html
    text: str = ""  # markdown source (for headings: the heading text)
    level: int = 0
    items: list[str] = field(default_factory=list)  # points: one markdown source per bullet
    ordered: bool = False

    @property
    def n_words(self) -> int:
        return sum(words(t) for t in self.items) if self.kind == "points" else words(self.text)


def markdown_blocks(text: str) -> list[Block]:
    """The top-level blocks of a markdown cell."""
    lines = text.split("\n")
    tokens = md_engine().parse(text)
    blocks = []
    for k, token in enumerate(tokens):
        if token.level != 0 or token.map is None or token.nesting == -1:
            continue
        chunk = "\n".join(lines[token.map[0]:token.map[1]]).strip()
        if token.type == "heading_open":
            blocks.append(Block("heading", tokens[k + 1].content, level=int(token.tag[1])))
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            items = [t for t in tokens[k + 1:] if t.level == 1 and t.type == "list_item_open"
                     and t.map and token.map[0] <= t.map[0] < token.map[1]]
            sources = []
            for item in items:
                body = "\n".join(lines[item.map[0]:item.map[1]]).strip()
                sources.append(re.sub(r"^(\s*)([-*+]|\d+[.)])\s+", "", body, count=1))
            start = int(token.attrGet("start") or 1) if token.type == "ordered_list_open" else 1
            blocks.append(Block("points", items=sources, ordered=token.type == "ordered_list_open",
                                level=start))
        elif token.type in ("math_block", "math_block_label", "amsmath"):
            blocks.append(Block("equation", chunk))
        elif token.type == "paragraph_open" and DISPLAY_MATHS.search(chunk) and \
                words(re.sub(r"\$\$.*?\$\$", "", chunk, flags=re.S)) == 0:
            blocks.append(Block("equation", chunk))
        elif token.type == "table_open":
            blocks.append(Block("table", chunk))
        elif token.type in ("fence", "code_block"):  # code in the prose: an interface, a command
            blocks.append(Block("code", token.content.rstrip("\n"), items=[token.info.strip()]))
        elif token.type == "paragraph_open":
            blocks.append(Block("prose", chunk))
        else:  # code fences, quotes, html: kept as they are
            blocks.append(Block("html", chunk))
    return blocks


def render(text: str) -> str:
    return md_engine().render(text)


def render_inline(text: str) -> str:
    return md_engine().renderInline(text)


# --------------------------------------------------------------------------------------------
# Cells: what each one is on a slide
# --------------------------------------------------------------------------------------------

def is_setup_code(src: str) -> bool:
    """The chapter's imports cell: imports, and the setup_chapter() call."""
    if "setup_chapter(" in src:
        return True
    try:
        body = ast.parse(src).body
    except SyntaxError:
        return False
    return bool(body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body)


def is_quiet_code(src: str) -> bool:
    """Code that shows nothing and defines nothing (no print, display or value at its end, no def
    or class): the set-up of a computation whose result a later cell shows. The slide shows that
    result; the code is for the speaker. Decided from the source, as the arc must be."""
    try:
        body = ast.parse(src).body
    except SyntaxError:
        return False
    if not body or isinstance(body[-1], ast.Expr):
        return False
    if any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in body):
        return False
    return not re.search(r"\b(print|display|show|interactive_plot|say|Markdown|HTML)\(", src)


def code_lines(src: str) -> list[str]:
    return src.rstrip().split("\n") if src.strip() else []


def cell_kind(cell: dict, first_code: int, index: int) -> str:
    """skip | heading | text | visual | listing | code | say | hidden (code kept off the slide)."""
    src = source(cell)
    if cell["cell_type"] == "markdown":
        return "heading" if src.lstrip().startswith("#") else "text"
    if cell["cell_type"] != "code" or index == first_code or tags(cell) & SKIP_TAGS:
        return "skip"
    if "prose" in tags(cell):
        return "say"
    if FIGURE_CALL.search(src) or any(is_visual(o) for o in cell.get("outputs", [])):
        return "visual"
    if LISTING_CALL.search(src) and not tags(cell) & HIDDEN_INPUT_TAGS:
        return "listing"
    if tags(cell) & HIDDEN_INPUT_TAGS or is_setup_code(src) or len(code_lines(src)) > CODE_LINES \
            or is_quiet_code(src):
        return "hidden"
    return "code"


def on_slide_words(blocks: list[Block], after_heading: bool) -> tuple[int, int]:
    """(words, equations) of the blocks that a slide keeps."""
    total, equations = 0, 0
    for block in blocks:
        if block.kind == "heading":
            after_heading = True
            continue
        if block.kind == "equation":
            equations += 1
        elif block.kind == "points":
            total += sum(words(short_point(item)) for item in block.items)
        elif block.kind == "table":
            total += block.n_words
        elif block.kind == "prose":
            if block.n_words <= SHORT_WORDS:
                total += block.n_words
            else:
                equations += len(INLINE_DISPLAY.findall(block.text))
                if after_heading and words(first_sentence(block.text)) <= LEAD_WORDS:
                    total += words(first_sentence(block.text))
        after_heading = False
    return total, equations


def slide_arc(cells: list[dict]) -> list[str]:
    """Per cell, its place in the deck's arc, as RISE slide types: "slide" (starts a slide),
    "-" (joins the slide before), "notes" (speaker notes only), "skip".

    Decided from the cells' sources and tags alone (an unexecuted notebook gives the same arc):
    a heading starts a slide; a figure, interactive plot, listing or code cell joins the slide
    before when that slide has room (no figure or code yet, a few words), else starts one; text
    after a figure or code starts a slide; prose with nothing for the slide is notes."""
    codes = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    first_code = codes[0] if codes else -1
    arc = []
    busy, n_words, n_eq = False, 0, 0  # the current slide: has a figure or code; its text
    for i, cell in enumerate(cells):
        kind = cell_kind(cell, first_code, i)
        if kind == "skip":
            arc.append("skip")
        elif kind == "heading":
            blocks = markdown_blocks(source(cell))
            if blocks and blocks[0].kind == "heading" and OBJECTIVES.match(blocks[0].text):
                arc.append("-")  # the objectives are on the title slide
                continue
            n_words, n_eq = on_slide_words(blocks, True)
            busy = False
            arc.append("slide")
        elif kind == "text":
            blocks = markdown_blocks(source(cell))
            w, e = on_slide_words(blocks, False)
            if not w and not e:
                arc.append("notes")
            elif busy or n_words + w > TEXT_WORDS or n_eq + e > EQUATIONS:
                arc.append("slide")
                busy, n_words, n_eq = False, w, e
            else:
                arc.append("-")
                n_words, n_eq = n_words + w, n_eq + e
        elif kind in ("visual", "listing", "code"):
            if busy or n_words > BESIDE_VISUAL_WORDS or n_eq > 1:
                arc.append("slide")
                n_words, n_eq = 0, 0
            else:
                arc.append("-")
            busy = True
        elif kind == "say":
            arc.append("-")
        else:  # hidden code: its printed output, if any, is for the speaker
            arc.append("notes")
    # A cell tagged slide-manual keeps the type its author set, in the deck as live.
    return [manual_type(cell) or kind for cell, kind in zip(cells, arc)]


def manual_type(cell: dict) -> str | None:
    if "slide-manual" not in tags(cell):
        return None
    return cell.get("metadata", {}).get("slideshow", {}).get("slide_type")


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------

def output_html(output: dict) -> str | None:
    data = output.get("data", {})
    if "text/html" in data:
        return "".join(data["text/html"])
    for mime in ("image/png", "image/jpeg", "image/svg+xml"):
        if mime in data:
            raw = "".join(data[mime])
            if mime == "image/svg+xml":
                return raw
            return f'<img class="dlbook-figure" src="data:{mime};base64,{raw.strip()}" alt="">'
    return None


def is_visual(output: dict) -> bool:
    page = output_html(output) or ""
    return "<img" in page or "dlbook-interactive" in page or "<svg" in page


def output_text(output: dict) -> str | None:
    if output.get("output_type") == "stream" and output.get("name") == "stdout":
        return "".join(output["text"])
    data = output.get("data", {})
    if "text/plain" in data and not any(k in data for k in ("text/html", "text/markdown",
                                                              "image/png")):
        return "".join(data["text/plain"])
    return None


def output_table(output: dict) -> str | None:
    """A table the chapter displays as HTML (a DataFrame), without pandas' scoped style."""
    page = output_html(output) or ""
    match = re.search(r"<table\b.*?</table>", page, re.S)
    if not match or is_visual(output):
        return None
    return re.sub(r'<table[^>]*>', "<table class='dl-frame'>", match.group(0), count=1)


def table_size(table: str) -> tuple[int, int]:
    """(rows, characters of the widest row) of an HTML table."""
    rows = re.findall(r"<tr\b.*?</tr>", table, re.S)
    widths = [sum(len(html.unescape(re.sub(r"<[^>]+>", "", c)).strip()) + 2
                  for c in re.findall(r"<t[hd]\b.*?</t[hd]>", row, re.S)) for row in rows]
    return len(rows), max(widths, default=0)


def table_words(table: str) -> int:
    """Words of an HTML table as the deck's measure counts them (any token with a letter or
    digit: every number counts)."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", table))
    return sum(1 for w in text.split() if re.search(r"[A-Za-z0-9]", w))


def output_markdown(output: dict) -> str | None:
    data = output.get("data", {})
    return "".join(data["text/markdown"]) if "text/markdown" in data else None


# --------------------------------------------------------------------------------------------
# Slides
# --------------------------------------------------------------------------------------------

@dataclass
class Slide:
    heading: str  # inline HTML
    continued: bool = False
    body: list[str] = field(default_factory=list)  # HTML, in order
    visual: str = ""
    code: str = ""
    notes: list[str] = field(default_factory=list)
    n_words: int = 0
    n_points: int = 0
    n_eq: int = 0
    kind: str = "content"
    height: int = 0  # estimated, of the heading, text and code
    # prose (markdown) sent to the notes, with the place in the body where it stood
    left_out: list[tuple[int, str]] = field(default_factory=list)
    sizes: list[tuple[int, int, int]] = field(default_factory=list)  # body items: words, px, eq
    refs: bool = False  # a reading list: one slide, the references that fit, the rest in notes
    split: bool = False  # continued by the deck (its section ran out of room), not by the arc
    code_notes: list[str] = field(default_factory=list)  # code that ran, after what to say

    @property
    def busy(self) -> bool:
        return bool(self.visual or self.code)

    def room(self, n_words: int, height: int, equation: bool = False) -> bool:
        limit = BESIDE_VISUAL_WORDS if self.busy else TEXT_WORDS
        tall = BODY_HEIGHT - (FIGURE_MIN if self.visual else 0)
        if self.height + height > tall or self.n_points >= POINTS:
            return False
        if equation:
            return self.n_eq < (1 if self.busy else EQUATIONS)
        return self.n_words + n_words <= limit


class Deck:
    def __init__(self, title: str):
        self.slides: list[Slide] = []
        self.heading = render_inline(title)
        self.source_heading = title

    @property
    def current(self) -> Slide:
        return self.slides[-1]

    def new(self, heading: str | None = None, continued: bool = False) -> Slide:
        if heading is not None:
            self.heading = render_inline(heading)
        text = re.sub(r"<[^>]+>", "", self.heading)
        self.slides.append(Slide(self.heading, continued=continued, height=heading_height(text),
                                 refs=bool(REFERENCES.match(text))))
        return self.current

    def more(self) -> Slide:
        """A continuation of the current slide's idea, on a slide of its own."""
        return self.new(continued=True)

    def add_text(self, html_text: str, n_words: int, height: int, equation: bool = False) -> None:
        slide = self.current
        if not slide.room(n_words, height, equation):
            slide = self.more()
            slide.split = True
        slide.body.append(html_text)
        slide.sizes.append((n_words, height, int(equation)))
        slide.n_words += n_words
        slide.n_points += 1
        slide.n_eq += int(equation)
        slide.height += height

    def fits(self, n_words: int, height: int) -> bool:
        return self.current.room(n_words, height)

    def add_notes(self, html_text: str) -> None:
        self.current.notes.append(html_text)

    def add_blocks(self, blocks: list[Block], after_heading: bool) -> None:
        for block in blocks:
            if block.kind == "heading":
                if block.level <= 1:
                    continue
                if self.current.body or self.current.busy or self.current.kind == "title":
                    self.new(block.text)
                else:  # a heading straight after a heading: the later one names the slide
                    self.current.heading = self.heading = render_inline(block.text)
                    self.current.refs = bool(REFERENCES.match(block.text))
                after_heading = True
                continue
            if block.kind == "equation":
                self.add_text(render(block.text), 1, equation_height(block.text), equation=True)
            elif block.kind == "points":
                tag = "ol" if block.ordered else "ul"
                for k, item in enumerate(block.items):
                    start = f' start="{block.level + k}"' if block.ordered else ""
                    if self.current.refs:  # a reading list: what fits on its one slide
                        n = words(item)
                        html_item = f"<{tag}{start} class='dl-refs'><li>{render(item)}</li></{tag}>"
                        if self.current.n_words + n <= REF_WORDS and not self.current.notes \
                                and self.current.height + text_height(n, True) <= BODY_HEIGHT - 60:
                            self.current.body.append(html_item)
                            self.current.sizes.append((n, text_height(n, True), 0))
                            self.current.n_words += n
                            self.current.height += text_height(n, True)
                        else:
                            self.current.notes.append(html_item)
                        continue
                    shown = short_point(item)
                    self.add_text(f"<{tag}{start}><li>{render(shown)}</li></{tag}>", words(shown),
                                  text_height(words(shown), bullet=True))
                    if shown != item:  # the slide has the point, its notes all of it
                        self.add_notes(f"<{tag}{start}><li>{render(item)}</li></{tag}>")
            elif block.kind == "table":
                rows = block.text.count("\n") - 1
                height = 20 + 40 * (rows + 1)
                if rows <= TABLE_ROWS and self.fits(block.n_words, height):
                    self.add_text(render(block.text), block.n_words, height)
                else:
                    self.add_notes(render(block.text))
            elif block.kind == "prose":
                n = block.n_words
                lead = first_sentence(block.text)
                if n <= SHORT_WORDS:
                    self.add_text(render(block.text), n, text_height(n))
                else:
                    n_lead = words(lead)
                    if after_heading and lead and n_lead <= LEAD_WORDS \
                            and self.fits(n_lead, text_height(n_lead)):
                        self.add_text(f"<p class='dl-lead'>{render_inline(lead)}</p>", n_lead,
                                      text_height(n_lead))
                    for tex in INLINE_DISPLAY.findall(block.text):  # the equations stay
                        self.add_text(render(f"$${tex}$$"), 1, equation_height(tex), True)
                    self.add_notes(render(block.text))
                    self.current.left_out.append((len(self.current.body), block.text))
            elif block.kind == "code" and len(code_lines(block.text)) <= CODE_LINES:
                code = code_lines(block.text)
                height = 40 + CODE_LINE * len(code)
                lang = (block.items or [""])[0].lower()
                body = highlight("\n".join(code)) if lang in ("", "python", "py", "python3") \
                    else html.escape("\n".join(code))
                self.add_text(f"<pre class='dl-code dl-fence'{mono_style(code, 20)}><code>{body}"
                              "</code></pre>", 0, height)
            elif block.kind == "code":
                self.add_notes(f"<pre>{html.escape(block.text)}</pre>")
            else:
                self.add_notes(render(block.text))
            after_heading = False

    def add_visual(self, page: str, starts: bool) -> None:
        if starts or self.current.visual or \
                self.current.height > BODY_HEIGHT - FIGURE_MIN:
            self.more()
        self.current.visual = page
        alt = re.search(r'<img[^>]*\balt="([^"]+)"', page)
        if alt:  # what the figure shows, for the speaker to say
            self.add_notes(f"<p class='dl-figure-note'><em>The figure:</em> {alt.group(1)}</p>")

    def add_table(self, table: str, starts: bool) -> None:
        """A displayed table on the slide, in the largest font (at most the Markdown tables'
        22 px) that fits the slide's width and the height left; on a slide of its own when the
        current one has no room; in the notes when it would need a font under 14 px or hold
        more words (numbers included) than a slide may."""
        rows, widest = table_size(table)
        heading = heading_height(re.sub(r"<[^>]+>", "", self.heading))
        n = table_words(table)
        head_words = words(re.sub(r"<[^>]+>", "", self.heading))
        if n + head_words > SLIDE_WORDS:  # more than a slide may hold: the speaker's
            self.add_notes(table)
            return

        def font(room: int) -> int:  # a row is 1.25 em of text plus 8 px of padding and rule
            by_width = CODE_WIDTH / (0.55 * max(widest, 1))
            by_height = ((room - 20) / max(rows, 1) - 8) / 1.25
            return int(min(22, by_width, by_height))

        slide = self.current
        size = font(BODY_HEIGHT - slide.height)
        if starts or slide.busy or slide.n_points >= POINTS or size < MIN_OUTPUT_PX \
                or slide.n_words + n + head_words > SLIDE_WORDS:
            size = font(BODY_HEIGHT - heading)
            if size < MIN_OUTPUT_PX:
                self.add_notes(table)
                return
            slide = self.more()
        height = 20 + rows * int(1.25 * size + 8)
        slide.body.append(table.replace("<table class='dl-frame'>",
                                        f"<table class='dl-frame' style='font-size:{size}px'>", 1))
        slide.sizes.append((n, height, 0))
        slide.n_points += 1
        slide.n_words += n
        slide.height += height

    def add_code(self, code: str, starts: bool, output: str = "") -> None:
        lines = code_lines(code)
        if len(lines) > CODE_LINES:
            more = len(lines) - (CODE_LINES - 1)
            lines = lines[:CODE_LINES - 1] + [f"# ... {more} more lines in the chapter"]
        height = 40 + CODE_LINE * len(lines)
        printed = (24 + OUTPUT_LINE * len(output.split("\n"))) if output else 0
        heading = heading_height(re.sub(r"<[^>]+>", "", self.heading))
        dropped = ""
        widest = max((len(line) for line in output.split("\n")), default=0)
        if output and (heading + height + printed > BODY_HEIGHT - 16
                       or CODE_WIDTH / (0.61 * max(widest, 1)) < MIN_OUTPUT_PX):
            # code and what it prints do not fit one slide: the printout is for the speaker
            dropped, output, printed = output, "", 0
        if starts or self.current.busy or self.current.height + height + printed > BODY_HEIGHT:
            self.more()
        if dropped:
            self.add_notes(f"<pre>{html.escape(dropped)}</pre>")
        self.current.height += height + printed
        self.current.code = (f"<pre class='dl-code'{mono_style(lines, 20)}><code>"
                             + highlight("\n".join(lines)) + "</code></pre>")
        if output:
            style = mono_style(output.split("\n"), 18)
            self.current.code += f"<pre class='dl-output'{style}>{html.escape(output)}</pre>"


def highlight(code: str) -> str:
    """Python, coloured by Pygments (its classes styled in dlbook-slides.css)."""
    from pygments import highlight as pygmentize
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return pygmentize(code, PythonLexer(), HtmlFormatter(nowrap=True)).rstrip("\n")


LISTING_SLIDES = 2  # a library listing longer than one slide continues on one more, at most


def without_docstrings(code: str) -> str:
    """A listing as a slide shows it: docstrings out (the page and the notes keep them), no runs
    of blank lines."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    drop = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None),
                                                          ast.Constant) \
                    and isinstance(first.value.value, str) and len(node.body) > 1:
                drop.update(range(first.lineno - 1, first.end_lineno))
    lines = [line for k, line in enumerate(code.split("\n")) if k not in drop]
    text = re.sub(r"\n\s*\n(\s*\n)+", "\n\n", "\n".join(lines))
    return text.strip("\n")


def listing_chunks(code: str) -> list[str]:
    """A library listing on at most LISTING_SLIDES slides of at most CODE_LINES lines, each
    broken where a definition starts (a method, a function), so that a slide holds whole ones."""
    lines = without_docstrings(code).split("\n")
    if len(lines) < CODE_LINES + CODE_LINES // 2:  # one slide, cut: not a second for a scrap
        return ["\n".join(lines)]
    starts = [k for k, line in enumerate(lines)
              if k and re.match(r"\s{0,4}(@|def |async def |class )", line)
              and not re.match(r"\s{0,4}@", lines[k - 1])]
    chunks, begin = [], 0
    while begin < len(lines) and len(chunks) < LISTING_SLIDES:
        ends = [k for k in starts if begin + CODE_LINES // 2 <= k <= begin + CODE_LINES]
        if len(lines) - begin <= CODE_LINES:
            end = len(lines)
        else:  # at a definition, if one starts in the slide's second half; else a full slide
            end = ends[-1] if ends else begin + CODE_LINES
        chunk = lines[begin:end]
        while chunk and not chunk[-1].strip():
            chunk.pop()
        chunks.append("\n".join(chunk))
        begin = end
    if begin < len(lines):  # what is left: the last slide says so
        chunks[-1] = "\n".join(chunks[-1].split("\n")[:CODE_LINES]) + "\n" + \
            "\n".join(lines[begin:])
    return chunks


def listing_code(output: dict) -> str | None:
    text = output_markdown(output)
    if not text:
        return None
    match = re.search(r"```\w*\n(.*?)```", text, re.S)
    return match.group(1) if match else None


def build_deck(nb: dict, book_title: str) -> list[Slide]:
    cells = nb["cells"]
    arc = slide_arc(cells)
    codes = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    first_code = codes[0] if codes else -1
    title_cell = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown")
    title_blocks = markdown_blocks(source(cells[title_cell]))
    title_text = next(b.text for b in title_blocks if b.kind == "heading")
    match = re.match(r"(\d+)\s*[.:]?\s+(.*)", title_text)
    number, name = (match.group(1), match.group(2)) if match else ("", title_text)

    deck = Deck(name)
    title = deck.new()
    title.kind = "title"
    title.heading = render_inline(name)
    title.body.append(f"<p class='dl-book'>{html.escape(book_title)}</p>"
                      + (f"<p class='dl-chapter'>Chapter {number}</p>" if number else ""))
    for block in title_blocks:
        if block.kind == "prose":
            deck.add_notes(render(block.text))
    in_objectives = False
    for i, cell in enumerate(cells):
        if i == title_cell:
            continue
        kind, starts = cell_kind(cell, first_code, i), arc[i] in ("slide", "subslide")
        if kind == "skip" or arc[i] == "skip":
            continue
        if arc[i] == "notes" and manual_type(cell):  # the author sent it to the notes
            if cell["cell_type"] == "markdown":
                deck.add_notes(render(source(cell)))
            for output in cell.get("outputs", []):
                text = output_markdown(output) or output_text(output)
                if text:
                    deck.add_notes(render(text))
                elif output_table(output):
                    deck.add_notes(output_table(output))
            continue
        if kind in ("heading", "text"):
            blocks = markdown_blocks(source(cell))
            if kind == "heading" and blocks and blocks[0].kind == "heading" and \
                    OBJECTIVES.match(blocks[0].text):
                in_objectives = True
                for block in blocks[1:]:  # on the title slide, as its list, as many as fit
                    if block.kind == "points":
                        tag = "ol" if block.ordered else "ul"
                        shown, rest, n = [], [], 0
                        for item in block.items:
                            n += words(item)
                            (shown if n <= OBJECTIVE_WORDS and not rest else rest).append(item)
                        title.body.append("<p class='dl-objectives-label'>Learning objectives</p>")
                        title.body.append(f"<{tag} class='dl-objectives'>" + "".join(
                            f"<li>{render_inline(item)}</li>" for item in shown) + f"</{tag}>")
                        if rest:
                            deck.new(blocks[0].text)
                            deck.add_blocks([Block("points", items=rest, ordered=block.ordered,
                                                   level=block.level + len(shown))], True)
                    else:
                        title.notes.append(render(block.text))
                continue
            in_objectives = False
            if kind == "heading":
                deck.new(blocks[0].text if blocks[0].kind == "heading" else None)
                deck.add_blocks(blocks[1:] if blocks[0].kind == "heading" else blocks, True)
            else:
                if starts:
                    deck.more()
                deck.add_blocks(blocks, False)
            continue
        if in_objectives and kind == "hidden":
            continue
        outputs = cell.get("outputs", [])
        if kind == "say":
            if starts and manual_type(cell):  # its author opened a slide with it
                deck.more()
            for output in outputs:
                text = output_markdown(output)
                if text is None:
                    continue
                n = words(text)
                height = markdown_height(text)
                blocks = markdown_blocks(text)
                if any(b.kind == "points" for b in blocks):  # a computed list: as any list
                    deck.add_blocks(blocks, False)
                elif n <= SHORT_WORDS and deck.fits(n, height):
                    deck.add_text(f"<div class='dl-said'>{render(text)}</div>", n, height)
                else:
                    deck.add_notes(render(text))
                    if "|" not in text:
                        deck.current.left_out.append((len(deck.current.body), text))
            continue
        if kind == "listing":
            for output in outputs:
                code = listing_code(output)
                if code:
                    for chunk in listing_chunks(code):
                        deck.add_code(chunk, starts)
                        starts = True
            continue
        if kind == "code":
            printed = "".join(t for t in map(output_text, outputs) if t).rstrip()
            short = printed if len(printed.split("\n")) <= OUTPUT_LINES else ""
            deck.add_code(source(cell), starts, short)
            if printed and not short:
                deck.add_notes(f"<pre>{html.escape(printed)}</pre>")
            for output in outputs:
                if is_visual(output):
                    deck.add_visual(output_html(output), True)
                elif output_markdown(output):
                    deck.add_notes(render(output_markdown(output)))
                elif output_table(output):  # a table the code displays: after the code
                    deck.add_table(output_table(output), True)
            continue
        # visual or hidden: the outputs without the code. Code the page shows but a slide has
        # no room for (over CODE_LINES) goes to the notes, so the speaker knows what ran.
        if kind == "hidden" and not tags(cell) & HIDDEN_INPUT_TAGS and \
                not is_setup_code(source(cell)):
            deck.current.code_notes.append(
                "<p class='dl-code-note'><em>On the page, not on the slide:</em></p>"
                f"<pre>{html.escape(source(cell).rstrip())}</pre>")
        for output in outputs:
            if is_visual(output):
                deck.add_visual(output_html(output), starts)
                starts = True
            elif output_markdown(output):  # a table or listing the chapter prints: notes
                deck.add_notes(render(output_markdown(output)))
            elif output_table(output):  # a displayed table (a DataFrame): on the slide,
                if arc[i] == "notes":  # unless the arc sends the cell to the notes
                    deck.add_notes(output_table(output))
                else:
                    deck.add_table(output_table(output), starts)
                    starts = False
            elif output_text(output):
                deck.add_notes(f"<pre>{html.escape(output_text(output).rstrip())}</pre>")
    slides = rebalance(deck.slides)
    for slide in slides:
        fill_sparse(slide)
    return slides


def lead_in_end(slide: Slide) -> bool:
    """The slide ends with a sentence that introduces what follows (a colon)."""
    return bool(slide.body) and re.sub(r"<[^>]+>|\s", "", slide.body[-1]).endswith(":")


def rebalance(slides: list[Slide]) -> list[Slide]:
    """No orphans: a section's text that the deck continued on a slide of its own (not a break
    the arc makes) rejoins the slide before when both fit one; else a lone last point takes the
    point before it along, so the two slides share the section."""
    out: list[Slide] = []
    for slide in slides:
        prev = out[-1] if out else None
        if not (prev and slide.split and slide.heading == prev.heading
                and prev.kind == slide.kind == "content" and not slide.busy and not prev.busy
                and not prev.refs and len(slide.sizes) == len(slide.body) > 0
                and len(prev.sizes) == len(prev.body) > 0):
            out.append(slide)
            continue
        head = heading_height(re.sub(r"<[^>]+>", "", slide.heading))
        if lead_in_end(prev) and len(prev.body) > 1 and slide.height + prev.sizes[-1][1] <= BODY_HEIGHT:
            # a sentence that introduces what follows goes with it
            n, height, eq = prev.sizes.pop()
            slide.body.insert(0, prev.body.pop())
            slide.sizes.insert(0, (n, height, eq))
            prev.n_words, slide.n_words = prev.n_words - n, slide.n_words + n
            prev.height, slide.height = prev.height - height, slide.height + height
            prev.n_points, slide.n_points = prev.n_points - 1, slide.n_points + 1
            prev.n_eq, slide.n_eq = prev.n_eq - eq, slide.n_eq + eq
        if prev.height + slide.height - head <= BODY_HEIGHT - 10 and \
                prev.n_words + slide.n_words <= MERGE_WORDS and prev.n_eq + slide.n_eq <= EQUATIONS \
                and prev.n_points + slide.n_points <= POINTS + 1:
            prev.body += slide.body
            prev.sizes += slide.sizes
            prev.n_words += slide.n_words
            prev.n_points += slide.n_points
            prev.n_eq += slide.n_eq
            prev.height += slide.height - head
            prev.notes += slide.notes
            prev.code_notes += slide.code_notes
            prev.left_out += [(k + len(prev.body) - len(slide.body), t) for k, t in slide.left_out]
            continue
        if len(slide.body) == 1 and len(prev.body) >= 3:
            moved = 0
            while len(prev.body) > 1 and (moved == 0 or lead_in_end(prev)):
                # the point before, and a sentence that introduced it
                n, height, eq = prev.sizes[-1]
                if slide.height + height > BODY_HEIGHT or slide.n_words + n > TEXT_WORDS:
                    break
                slide.body.insert(0, prev.body.pop())
                slide.sizes.insert(0, prev.sizes.pop())
                prev.n_words, slide.n_words = prev.n_words - n, slide.n_words + n
                prev.height, slide.height = prev.height - height, slide.height + height
                prev.n_points, slide.n_points = prev.n_points - 1, slide.n_points + 1
                prev.n_eq, slide.n_eq = prev.n_eq - eq, slide.n_eq + eq
                moved += 1
        out.append(slide)
    return out


def fill_sparse(slide: Slide) -> None:
    """A slide left with little but its heading (its section is all long paragraphs) shows
    the opening sentences of those paragraphs, as many as fit; the notes keep them whole."""
    if slide.kind == "content" and slide.visual and not slide.body and slide.left_out:
        # a figure with no words: the first sentence said about it, as its takeaway
        lead = first_sentence(slide.left_out[0][1])
        if lead and words(lead) <= LEAD_WORDS and "<" not in lead and "|" not in lead:
            slide.body.append(f"<p class='dl-lead'>{render_inline(lead)}</p>")
            slide.sizes.append((words(lead), text_height(words(lead)), 0))
            slide.n_words += words(lead)
        return
    if slide.kind != "content" or slide.busy or slide.n_words >= SPARSE_WORDS:
        return
    shown = "".join(slide.body)
    added = 0
    for place, text in slide.left_out:
        kept = []
        for sentence in sentences(text):
            if render_inline(sentence) in shown and not kept:
                continue  # the paragraph's lead, already on the slide
            if DISPLAY_MATHS.search(sentence):
                break
            n, height = words(" ".join(kept + [sentence])), text_height(
                words(" ".join(kept + [sentence])))
            if slide.n_words + n > FILL_WORDS or slide.height + height > BODY_HEIGHT - 20 \
                    or slide.n_points >= POINTS:
                break
            kept.append(sentence)
        if not kept:
            break
        n = words(" ".join(kept))
        cut = len(kept) < len(sentences(text))
        slide.body.insert(place + added,
                          f"<p>{render_inline(' '.join(kept))}{' &hellip;' if cut else ''}</p>")
        slide.sizes.insert(place + added, (n, text_height(n), 0))
        added += 1
        slide.n_words += n
        slide.height += text_height(n)
        slide.n_points += 1
        if cut:
            break


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

def slide_html(slide: Slide, index: int) -> str:
    classes = ["dl-slide", f"dl-{slide.kind}"]
    if slide.visual:
        classes.append("dl-has-visual")
    heading_tag = "h1" if slide.kind == "title" else "h2"
    cont = " class='dl-cont'" if slide.continued else ""
    parts = [f"<{heading_tag}{cont}>{slide.heading}</{heading_tag}>"]
    if slide.body:
        parts.append("<div class='dl-text'>" + "\n".join(slide.body) + "</div>")
    if slide.code:
        parts.append(f"<div class='dl-codebox'>{slide.code}</div>")
    if slide.visual:
        parts.append(f"<div class='dl-visual'>{slide.visual}</div>")
    said = slide.notes + slide.code_notes  # what to say first, then the code that ran
    notes = f"<aside class='notes'>{''.join(said)}</aside>" if said else ""
    return (f"<section data-dl-slide='{index}'><div class='{' '.join(classes)}'>"
            + "\n".join(parts) + f"</div>{notes}</section>")


def deck_html(name: str, title: str, slides: list[Slide], static: str, page: str) -> str:
    template = (TEMPLATES / "deck.html").read_text()
    body = "\n".join(slide_html(s, i) for i, s in enumerate(slides))
    return (template.replace("{{title}}", html.escape(title)).replace("{{static}}", static)
            .replace("{{page}}", page).replace("{{slides}}", body))


def chapters_in_toc(site_root: Path = ROOT) -> list[str]:
    toc = (site_root / "_toc.yml").read_text()
    return [Path(m).name for m in re.findall(r"file:\s*(chapters/\S+)", toc)]


def book_title(site_root: Path = ROOT) -> str:
    match = re.search(r'^title:\s*"?([^"\n]+)"?', (site_root / "_config.yml").read_text(), re.M)
    return match.group(1).strip() if match else "Deep learning"


def reveal_dir() -> Path:
    """reveal.js from the npm registry, installed once into .venv/ (no CDN at reading time)."""
    package = NPM_PREFIX / "node_modules" / "reveal.js"
    if not (package / "dist" / "reveal.js").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is missing: install Node.js (Debian: apt-get install -y npm)")
        subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix",
                        str(NPM_PREFIX), f"reveal.js@{REVEAL_VERSION}"], check=True)
    return package


def measure(site: Path, names: list[str]) -> dict[str, list[dict]]:
    """Every slide of every deck as Chromium lays it out at 1280x720 (site_browser.measure_deck)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import site_browser

    found = {}
    with site_browser.serve(site) as base, site_browser.launch() as browser:
        for name in names:
            page = site_browser.offline_page(browser, base, width=1280, height=720)
            page.goto(f"{base}/slides/{name}.html")
            found[name] = site_browser.measure_deck(page)
            page.close()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site", type=Path, default=SITE, help="the built site (_build/html)")
    parser.add_argument("--executed", type=Path, default=EXECUTED,
                        help="the executed chapters (_build/executed/chapters)")
    parser.add_argument("--no-measure", action="store_true",
                        help="skip the browser check (the decks are still written)")
    args = parser.parse_args(argv)
    site, executed = args.site.resolve(), args.executed.resolve()
    if not site.is_dir():
        print(f"{site} is missing: build the site first (make book)", file=sys.stderr)
        return 1
    site_root = site.parents[1] if (site.parents[1] / "_toc.yml").exists() else ROOT
    reveal = reveal_dir()
    target = site / "_static" / "reveal.js"
    for part in ("dist", "plugin/notes"):
        shutil.copytree(reveal / part, target / part, dirs_exist_ok=True)
    shutil.copy2(TEMPLATES / "dlbook-slides.css", site / "_static" / "dlbook-slides.css")
    decks = site / "slides"
    decks.mkdir(exist_ok=True)
    book = book_title(site_root)
    counts = {}
    for name in chapters_in_toc(site_root):
        path = executed / f"{name}.ipynb"
        if not path.exists():
            print(f"{path} is missing: the book build executes the chapters first", file=sys.stderr)
            return 1
        nb = json.loads(path.read_text())
        slides = build_deck(nb, book)
        page = deck_html(name, re.sub(r"<[^>]+>", "", slides[0].heading), slides, "../_static",
                         f"../chapters/{name}.html")
        (decks / f"{name}.html").write_text(page, encoding="utf-8")
        counts[name] = len(slides)
    (decks / "decks.json").write_text(json.dumps(counts, indent=1) + "\n")
    print(f"{len(counts)} slide decks in {decks}: "
          + ", ".join(f"{k} ({v})" for k, v in counts.items()))
    if args.no_measure:
        return 0
    try:
        measured = measure(site, list(counts))
    except (RuntimeError, ImportError) as err:
        print(f"cannot measure the slides in a browser: {err} (--no-measure skips the check)",
              file=sys.stderr)
        return 1
    problems = []
    for name, slides in measured.items():
        for s in slides:
            for problem in s["problems"]:
                problems.append(f"{name}.html slide {s['index'] + 1} ({s['heading'][:50]!r}): "
                                f"{problem}")
    if problems:
        print("slides that do not fit 1280x720:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("every slide fits 1280x720")
    return 0


if __name__ == "__main__":
    sys.exit(main())
