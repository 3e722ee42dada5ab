"""Chapter 12's depth study over 10 seeds, too long for the chapter: writes data/ch12_depth_sweep.json.

    DLBOOK_CPU_THREADS=1 python tools/gnn_depth_sweep.py [--seeds 10] [--out ...] [--only NAME]

Every variant of dlbook.gnn_depth.VARIANTS (plain GCNs of depth 2, 8 and 16 under Adam with L2
weight decay; the 16-layer one under AdamW (decay 5e-4 and 0.5), without decay, with L2 on
every parameter but the first layer's weights and with L2 on those weights only; a residual and
a PairNorm 16-layer one), seeds 0..9, 200 epochs each; per run, dlbook.gnn_depth.run's record
(accuracy on the 32, training loss, every layer's weight norm and loss gradient before training
and every 10 epochs, the first layer's every 5 epochs, layer 1's bias beside the rest of its
output, energy / spread / probe per layer before and after training).
Seeded: a rerun on the same versions gives the same file; the chapter re-runs seeds 0-1 of two
variants and checks they agree.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import sklearn
import torch

from dlbook import gnn_depth

ROOT = Path(__file__).resolve().parents[1]


def rounded(value):
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", default=str(ROOT / "data" / gnn_depth.SWEEP_FILE))
    parser.add_argument("--only", action="append", choices=list(gnn_depth.VARIANTS),
                        help="re-run only this variant (repeatable) and replace its runs in "
                             "the existing --out file, keeping the others")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.process_time()
    runs = {}
    if args.only:
        old = json.loads(Path(args.out).read_text(encoding="utf-8"))
        runs = {k: old["runs"][k] for k in gnn_depth.VARIANTS if k in old["runs"]}
    for name in args.only or gnn_depth.VARIANTS:
        runs[name] = [rounded(gnn_depth.run(name, seed)) for seed in range(args.seeds)]
        print(name, [r["accuracy"] for r in runs[name]], flush=True)
    out = {
        "command": "DLBOOK_CPU_THREADS=1 python tools/gnn_depth_sweep.py",
        "variants": {k: list(v) for k, v in gnn_depth.VARIANTS.items()},
        "epochs": 200, "seeds": args.seeds,
        "runs": {k: runs[k] for k in gnn_depth.VARIANTS},  # in VARIANTS order
        "cpu_seconds": round(time.process_time() - start),
        "only": args.only or "all variants",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "sklearn": sklearn.__version__},
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} in {out['cpu_seconds']} CPU s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
