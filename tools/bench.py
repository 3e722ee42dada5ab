"""Execute every chapter once and print a table of chapter, seconds and headline metric (make bench).

The headline is the number a chapter records with ``say(..., name=value)`` under the name given
in its notebook metadata (``dlbook.headline.name``). ``--readme`` also rewrites the table between the bench markers in
README.md. Exit status 1 if any chapter takes more than the 90 s ceiling.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from readme_section import replace_section

ROOT = Path(__file__).resolve().parents[1]
TARGET_S, CEILING_S = 60, 90
CPU_PROBE = "import time as _t\nprint(_t.process_time())"  # the kernel's CPU seconds so far


def chapters_in_toc() -> list[Path]:
    toc = (ROOT / "_toc.yml").read_text()
    return [ROOT / f"{m}.ipynb" for m in re.findall(r"file:\s*(chapters/\S+)", toc)]


def recorded(nb, name: str):
    """The value ``say(..., name=value)`` recorded in the executed notebook, or None."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            record = out.get("metadata", {}).get("dlbook", {}).get("record", {})
            if name in record:
                return record[name]
    return None


def run(path: Path) -> tuple[float, float, str, str]:
    """Wall-clock seconds, the kernel's CPU seconds, the headline's label and value."""
    nb = nbformat.read(path, as_version=4)
    headline = nb.metadata.get("dlbook", {}).get("headline", {})
    nb.cells.append(nbformat.v4.new_code_cell(CPU_PROBE))
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    probe = nb.cells.pop()
    cpu = float("".join(o.get("text", "") for o in probe.get("outputs", [])).strip())
    value = recorded(nb, headline.get("name", "")) if headline else None
    if isinstance(value, (int, float)):
        value = f"{value:.4g}"
    return seconds, cpu, headline.get("label", "-"), value if value is not None else "-"


def table(rows) -> str:
    lines = ["| chapter | seconds | kernel CPU s | headline metric | value |",
             "|---|---:|---:|---|---:|"]
    lines += [f"| {name} | {sec:.1f} | {cpu:.1f} | {label} | {value} |"
              for name, sec, cpu, label, value in rows]
    machine = f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
    return "\n".join(lines) + (
        f"\n\nMeasured by `make bench` on {machine}, CPU only, one chapter at a time, one torch "
        "thread. *Seconds* is the wall clock; *kernel CPU s* is the CPU time of the chapter's "
        "kernel, which another process on the machine hardly changes (the wall clock it slows).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readme", action="store_true", help="update the table in README.md")
    parser.add_argument("chapters", nargs="*", help="only these notebooks")
    args = parser.parse_args()
    if args.readme and args.chapters:
        parser.error("--readme rewrites the whole table: run it on every chapter (no chapter arguments)")
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("DLBOOK_PROGRESS", "0")
    os.environ.setdefault("DLBOOK_CPU_THREADS", "1")  # the same setting as the build and tests
    paths = [Path(c).resolve() for c in args.chapters] or chapters_in_toc()
    rows = []
    for path in paths:
        seconds, cpu, label, value = run(path)
        flag = "" if seconds <= TARGET_S else (" (over target)" if seconds <= CEILING_S else " (OVER CEILING)")
        print(f"{path.stem}: {seconds:.1f} s{flag} ({cpu:.1f} s kernel CPU), {label} = {value}",
              flush=True)
        rows.append((path.stem, seconds, cpu, label, value))
    text = table(rows)
    print("\n" + text)
    if args.readme:
        replace_section("bench", text)
    return 1 if any(sec > CEILING_S for _, sec, _, _, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
