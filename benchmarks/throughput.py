"""Throughput of the CPU-side helpers that run inside loops: the synthetic renderer and
the built-in CheXpert labeler (the reward of the clinically rewarded fine-tuning stage).

    python benchmarks/throughput.py [--repeats 3]

Prints studies rendered per second (224 px, two views) and reports labelled per second,
each the best of ``--repeats`` runs on one thread, with the machine named.
"""

from __future__ import annotations

import argparse
import time

import torch
from machine import describe

from cknet.data.synthetic import SyntheticReports, render_study
from cknet.labeler import CheXpertLabeler


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--studies", type=int, default=50)
    parser.add_argument("--reports", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    findings = ["cardiomegaly", "left pleural effusion", "support devices"]
    render = best_of(args.repeats, lambda: [render_study(findings, s, size=224) for s in range(args.studies)])

    import numpy as np

    rng = np.random.default_rng(0)
    writer = SyntheticReports()
    reports = [writer.write(writer.sample(rng), rng) for _ in range(args.reports)]
    labeler = CheXpertLabeler()
    label = best_of(args.repeats, lambda: labeler.label(reports))

    print(f"cknet throughput benchmark: {describe()}; best of {args.repeats}\n")
    print("| what | items | seconds | items per second |")
    print("|---|---:|---:|---:|")
    print(f"| render_study, 224 px, 2 views | {args.studies} | {render:.3f} | {args.studies / render:.0f} |")
    print(f"| CheXpertLabeler.label | {args.reports} | {label:.3f} | {args.reports / label:.0f} |")


if __name__ == "__main__":
    main()
