"""Execute chapters as the book build does and keep the executed copies (make chapter CH=...).

    python tools/run_chapter.py chapters/06_cnn.ipynb [...]

Writes each executed notebook to `_build/executed/chapters/` (where `make book` puts
them, so `pytest -m built tests/test_executed.py` checks it), and prints its wall-clock seconds
and the kernel's CPU seconds. On a busy machine the wall clock says little; the CPU seconds of a
one-thread run are what a quiet machine's wall clock would be, roughly.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "executed" / "chapters"
CPU_PROBE = "import time as _t\nprint(_t.process_time())"


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__)
        return 2
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("DLBOOK_PROGRESS", "0")
    os.environ.setdefault("DLBOOK_CPU_THREADS", "1")
    os.environ.setdefault("DLBOOK_STATIC_ONLY", "1")
    OUT.mkdir(parents=True, exist_ok=True)
    status = 0
    for name in paths:
        path = Path(name).resolve()
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(CPU_PROBE))
        start = time.perf_counter()
        try:
            NotebookClient(nb, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        except Exception as err:  # keep the partial notebook for inspection
            status = 1
            print(f"{path.stem}: FAILED: {str(err)[-2000:]}", flush=True)
        wall = time.perf_counter() - start
        probe = nb.cells.pop()
        cpu = "".join(o.get("text", "") for o in probe.get("outputs", [])).strip() or "?"
        nbformat.write(nb, OUT / path.name)
        print(f"{path.stem}: {wall:.1f} s wall, {float(cpu) if cpu != '?' else cpu:.4} s kernel CPU"
              if cpu != "?" else f"{path.stem}: {wall:.1f} s wall", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
