"""Chapter 12's GIN on spatial-or-rewired graphs at a settled budget: writes
data/ch12_gin_budget.json.

    DLBOOK_CPU_THREADS=1 python tools/gin_budget_sweep.py [--out ...]

The chapter's own code builds the 200 pairs and trains the GIN: this script executes the
chapter's cells that define ``graphs``, ``split``, ``graph_batch`` and ``fit_gin`` (found by what
they define), so the two cannot drift apart. It trains GIN (seeds 0 to 9) for 200 and for 800
epochs on the 120 training pairs, and for 800 epochs on the first 60 of them and on the other
60, the epoch chosen on validation each time, and records the test accuracy and the epoch.
About three minutes of CPU; the chapter re-runs seed 0 at 800 epochs on the first 60 pairs and
checks that it agrees.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters" / "12_gnn.ipynb"
DEFINES = ("graphs, graph_y, points_of = []", "def graph_batch(", "def fit_gin(")
SEEDS = tuple(range(10))


def chapter_code() -> dict:
    """Execute the chapter's cells that build the task and train GIN; return their names."""
    cells = json.loads(CHAPTER.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    names = {}
    exec("import numpy as np, networkx as nx, torch\n"
         "from dlbook.gnn import GIN, GINConfig, batch_graphs, edge_index_from_networkx",
         names)
    for marker in DEFINES:
        found = [s for s in sources if marker in s]
        if len(found) != 1:
            raise SystemExit(f"expected one chapter cell with {marker!r}, found {len(found)}")
        exec(found[0], names)
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / "ch12_gin_budget.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.process_time()
    ch = chapter_code()
    graphs, graph_y, split = ch["graphs"], ch["graph_y"], ch["split"]
    data = {s: ch["graph_batch"](ix, graphs, graph_y) for s, ix in split.items()}
    train = split["train"]  # spatial graphs of the 120 pairs, then their twins
    half = dict(data, train=ch["graph_batch"](np.r_[train[:60], train[120:180]],
                                              graphs, graph_y))
    other = dict(data, train=ch["graph_batch"](np.r_[train[60:120], train[180:]],
                                               graphs, graph_y))
    runs = {}
    for name, d, epochs in (("120 pairs, 200 epochs", data, 200),
                            ("120 pairs, 800 epochs", data, 800),
                            ("60 pairs, 800 epochs", half, 800),
                            ("other 60 pairs, 800 epochs", other, 800)):
        res = [ch["fit_gin"](d, seed, epochs=epochs) for seed in SEEDS]
        runs[name] = {"test": [float(a) for a, _ in res], "epoch": [int(e) for _, e in res]}
        print(name, runs[name], flush=True)
    out = {"command": "DLBOOK_CPU_THREADS=1 python tools/gin_budget_sweep.py",
           "seeds": list(SEEDS), "runs": runs,
           "cpu_seconds": round(time.process_time() - start),
           "versions": {"python": platform.python_version(), "torch": torch.__version__}}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} in {out['cpu_seconds']} CPU s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
