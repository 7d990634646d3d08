"""Wall time and quality of `cknet demo` (the quick default and ``--full``), with the machine named.

    python benchmarks/demo.py [--runs quick full] [--seeds 0] [--set NAME=VALUE ...]
        [--output runs/demo_bench]

Each run is `cknet.demo.run_demo` in a fresh folder, with the settings of `cknet.demo.QUICK`
or `FULL`, changed by ``--set`` (any `DemoSettings` field, e.g. ``--set
backbone=mobilenet_v3_small lr=3e-3``): the way to measure a candidate setting over seeds
before making it the demo's. One row per run and seed (the stage times the demo measures
itself, CE micro F1 on the held-out studies and on blank images, BLEU-4, the graph stage's
validation AUC), then the mean and standard deviation over the seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from machine import describe

from cknet.demo import FULL, QUICK, DemoSettings, run_demo


def parse_settings(base: DemoSettings, assignments: list[str]) -> DemoSettings:
    """``base`` with each ``NAME=VALUE`` of ``assignments`` applied, VALUE converted to
    the field's type."""
    types = {f.name: type(getattr(base, f.name)) for f in dataclasses.fields(DemoSettings)}
    changes = {}
    for assignment in assignments:
        name, _, value = assignment.partition("=")
        if name not in types or not value:
            raise SystemExit(f"--set {assignment!r}: expected NAME=VALUE with NAME one of {sorted(types)}")
        try:
            changes[name] = types[name](value)
        except ValueError:
            raise SystemExit(f"--set {assignment!r}: {name} takes a {types[name].__name__}") from None
    return dataclasses.replace(base, **changes)


def mean_sd(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", choices=["quick", "full"], default=["quick", "full"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="change a DemoSettings field for every run")
    parser.add_argument("--output", type=Path, default=Path("runs/demo_bench"))
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    rows, summary = [], []
    for run in args.runs:
        settings = parse_settings(QUICK if run == "quick" else FULL, args.set)
        command = f"`cknet demo{' --full' if run == 'full' else ''}`"
        scores: dict[str, list[float]] = {"wall": [], "ce": [], "blank": [], "bleu4": [], "auc": []}
        for seed in args.seeds:
            start = time.perf_counter()
            result = run_demo(args.output / f"{run}-seed{seed}", settings=settings, seed=seed,
                              device=args.device, progress=False)
            wall = time.perf_counter() - start
            stages = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items() if k != "total")
            row = {"wall": wall, "ce": result.ce["scores"]["f1"], "blank": result.ce_blank["scores"]["f1"],
                   "bleu4": result.nlg["scores"]["BLEU_4"], "auc": result.graph_auc}
            for key, value in row.items():
                scores[key].append(value)
            rows.append(f"| {command} | {seed} | {wall:.0f} s | {stages} | {row['ce']:.3f} | "
                        f"{row['blank']:.3f} | {row['bleu4']:.3f} | {row['auc']:.3f} |")
            print(rows[-1], flush=True)
        summary.append(f"| {command} | {len(args.seeds)} | {mean_sd(scores['wall'], 0)} s | "
                       f"{mean_sd(scores['ce'])} | {mean_sd(scores['blank'])} | {mean_sd(scores['bleu4'])} | "
                       f"{mean_sd(scores['auc'])} |")
    changed = ", ".join(args.set) or "none"
    print(f"\ncknet demo benchmark, seeds {args.seeds}, settings changed: {changed}; "
          f"{describe(args.device or 'cpu')}\n")
    print("| run | seed | wall time | stages | CE micro F1 | CE F1, blank images | BLEU-4 | graph AUC |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print("\n| run | seeds | wall time | CE micro F1 | CE F1, blank images | BLEU-4 | graph AUC |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
