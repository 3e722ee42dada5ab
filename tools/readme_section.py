"""Rewrite a generated table in README.md: the text between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` (used by ``bench.py --readme`` and ``page_weight.py --readme``)."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def replace_section(name: str, text: str, readme: Path = README) -> None:
    content = readme.read_text()
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(content):
        raise SystemExit(f"{readme.name} has no <!-- {name}:start --> / <!-- {name}:end --> markers")
    readme.write_text(pattern.sub(lambda m: m.group(1) + text.rstrip("\n") + "\n" + m.group(2), content))
