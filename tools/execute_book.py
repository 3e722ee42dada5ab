"""Execute every chapter of the table of contents, two at a time, into the book's execution
cache: the chapters' test (make test) and the first step of make book.

    python tools/execute_book.py            # execute every chapter (make nbtest)
    python tools/execute_book.py --reuse    # skip it if nothing changed since the last run (make book)

Jupyter Book 1 executes notebooks one after another; on the book's 2-core machine, two chapters
side by side (one torch thread each, DLBOOK_CPU_THREADS=1) take about half the time. The cache
is emptied first, so the site always shows what the current code computes. A chapter that fails
stops here, with the failing cell and its traceback. `make nbtest` runs it with
DLBOOK_CHECK_LIVE=1, so every interactive plot also moves its live controls.

A chapter is executed once for both the test and the site: a successful run records a
fingerprint of everything the outputs depend on (the chapters, the `dlbook` package, `data/`,
the requirements and the table of contents), and `--reuse` executes again only when that
fingerprint has changed. `jupyter-book build` then takes the outputs from the cache.

The executed chapters are also written to `_build/executed/chapters/`, for the slide decks and the
checks of what a reader sees (`tests/test_executed.py`). The build's own `_build/jupyter_execute/`
copies hold no outputs when they come from the cache, so nothing should read those.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"  # execute.cache in _config.yml
EXECUTED = ROOT / "_build" / "executed" / "chapters"
FINGERPRINT = EXECUTED.parent / "fingerprint.txt"
TIMEOUT_S = 300
# Settings that change what a chapter computes; part of the fingerprint. DLBOOK_CHECK_LIVE is
# not: it only adds checks, so a run with them serves a build without them.
ENVIRONMENT = ("DLBOOK_STATIC_ONLY", "DLBOOK_CPU_THREADS")


def chapters_in_toc() -> list[Path]:
    toc = (ROOT / "_toc.yml").read_text()
    return [ROOT / f"{m}.ipynb" for m in re.findall(r"file:\s*(chapters/\S+)", toc)]


def fingerprint() -> str:
    """A hash of every input the executed chapters depend on."""
    inputs = [ROOT / "_toc.yml", ROOT / "requirements.txt", *chapters_in_toc()]
    inputs += sorted((ROOT / "src").rglob("*.py"))
    inputs += sorted(p for p in (ROOT / "data").rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for path in inputs:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    for name in ENVIRONMENT:
        digest.update(f"{name}={os.environ.get(name, '')}".encode())
    return digest.hexdigest()


def up_to_date() -> bool:
    return (FINGERPRINT.exists() and (CACHE / "global.db").exists()
            and FINGERPRINT.read_text().strip() == fingerprint()
            and all((EXECUTED / p.name).exists() for p in chapters_in_toc()))


def main(argv: list[str]) -> int:
    if "--reuse" in argv and up_to_date():
        print(f"chapters unchanged since their last execution: outputs reused from {CACHE.name}")
        return 0
    from jupyter_cache import get_cache
    from jupyter_cache.executors import load_executor

    inputs = fingerprint()  # of what this run executes, taken before it starts
    shutil.rmtree(CACHE, ignore_errors=True)
    shutil.rmtree(EXECUTED.parent, ignore_errors=True)
    cache = get_cache(str(CACHE))
    for path in chapters_in_toc():
        cache.add_nb_to_project(str(path))
    start = time.perf_counter()
    result = load_executor("local-parallel", cache).run_and_cache(timeout=TIMEOUT_S)
    print(f"executed {len(result.succeeded)} chapters in {time.perf_counter() - start:.0f} s "
          "(two at a time)")
    failed = result.excepted + result.errored
    for uri in failed:
        record = cache.get_project_record(uri)
        print(f"\n{uri} failed:\n{record.traceback or '(no traceback recorded)'}", file=sys.stderr)
    if failed:
        print(f"\n{len(failed)} chapter(s) failed: {', '.join(Path(u).stem for u in failed)}",
              file=sys.stderr)
        return 1
    import nbformat

    EXECUTED.mkdir(parents=True)
    for path in chapters_in_toc():
        _, executed = cache.merge_match_into_file(str(path))
        nbformat.write(executed, EXECUTED / path.name)
    FINGERPRINT.write_text(inputs + "\n")
    print(f"executed chapters: {EXECUTED.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
