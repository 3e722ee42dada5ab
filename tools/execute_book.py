"""Execute every chapter of the table of contents, two at a time, into the book's execution
cache (make book runs it, then `jupyter-book build` takes the outputs from the cache).

Jupyter Book 1 executes notebooks one after another; on the book's 2-core machine, two chapters
side by side (one torch thread each, DLBOOK_CPU_THREADS=1) take about half the time. The cache
is emptied first, so the site always shows what the current code computes. A chapter that fails
stops the build here, with its traceback.

The executed chapters are also written to `_build/executed/chapters/`, for the slide decks and the
checks of what a reader sees (`tests/test_executed.py`). The build's own `_build/jupyter_execute/`
copies hold no outputs when they come from the cache, so nothing should read those.
"""
from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"  # execute.cache in _config.yml
EXECUTED = ROOT / "_build" / "executed" / "chapters"
TIMEOUT_S = 300


def chapters_in_toc() -> list[Path]:
    toc = (ROOT / "_toc.yml").read_text()
    return [ROOT / f"{m}.ipynb" for m in re.findall(r"file:\s*(chapters/\S+)", toc)]


def main() -> int:
    from jupyter_cache import get_cache
    from jupyter_cache.executors import load_executor

    shutil.rmtree(CACHE, ignore_errors=True)
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
        return 1
    import nbformat

    shutil.rmtree(EXECUTED, ignore_errors=True)
    EXECUTED.mkdir(parents=True)
    for path in chapters_in_toc():
        _, executed = cache.merge_match_into_file(str(path))
        nbformat.write(executed, EXECUTED / path.name)
    print(f"executed chapters: {EXECUTED.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
