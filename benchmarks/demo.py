"""Wall time and quality of `cknet demo` (full and ``--quick``), with the machine named.

    python benchmarks/demo.py [--runs quick full] [--seed 0] [--output runs/demo_bench]

Each run is `cknet.demo.run_demo` in a fresh folder; the table gives the stage times the
demo measures itself, and the CE micro F1 on the held-out studies and on blank images.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from machine import describe

from cknet.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", choices=["quick", "full"], default=["quick", "full"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("runs/demo_bench"))
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        start = time.perf_counter()
        result = run_demo(args.output / run, quick=run == "quick", seed=args.seed, device=args.device,
                          progress=False)
        wall = time.perf_counter() - start
        stages = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items() if k != "total")
        rows.append(f"| `cknet demo{' --quick' if run == 'quick' else ''}` | {wall:.0f} s | {stages} | "
                    f"{result.ce['scores']['f1']:.3f} | {result.ce_blank['scores']['f1']:.3f} |")
    print(f"cknet demo benchmark, seed {args.seed}: {describe(args.device or 'cpu')}\n")
    print("| run | wall time | stages | CE micro F1 | CE F1, blank images |")
    print("|---|---:|---|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
