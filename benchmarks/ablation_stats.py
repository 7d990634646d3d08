"""Paired statistics of the ablation that `benchmarks/iu_reports.py` ran: each comparison
the docs draw, per metric, as B - A with a paired-bootstrap 95% interval over the test
studies and p-values (paired bootstrap, approximate randomisation), over the seeds
together (`cknet.metrics.resampling.paired_comparison`: one run per seed of each
system, the same test studies resampled in every seed) and per seed.

    python benchmarks/ablation_stats.py runs/iu_reports --recipe best-30 [--seeds 0 1 2]
        [--labeler rules] [--resamples 2000] [--trials 2000]

Comparisons (those whose prediction files exist in every seed given): +CKNet and +MEN
against Base, with each CNN and decoding; +CKNet against itself decoded with G shuffled
across the test studies; each model with the label-free CNN against the same model
with the graph stage's CNN.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cknet.evaluation import report_statistics
from cknet.labeler import make_labeler
from cknet.metrics.resampling import paired_comparison

METRICS = ("ce_findings_f1", "ce_f1", "BLEU_4", "CIDEr")
DECODING_FILES = {"beam 3": None, "length penalty 1": "beam-3-length-penalty-1",
                  "G shuffled": "beam-3-G-shuffled"}


def prediction_file(folder: Path, seed: int, recipe: str, run: str, decoding: str) -> Path:
    """Where iu_reports.py writes a run's test reports for a decoding."""
    suffix = DECODING_FILES[decoding]
    if suffix is None:
        return folder / f"seed{seed}" / recipe / run / "test_predictions.json"
    return folder / f"seed{seed}" / recipe / f"{run}-{suffix}.json"


def comparisons() -> list[tuple[str, tuple[str, str], tuple[str, str]]]:
    """(label, (run A, decoding A), (run B, decoding B)) for every comparison drawn."""
    out = []
    for cnn, prefix in (("graph-stage CNN", ""), ("label-free CNN", "label-free-")):
        for decoding in ("beam 3", "length penalty 1"):
            out.append((f"+CKNet - Base, {cnn}, {decoding}", (f"{prefix}none", decoding),
                        (f"{prefix}image", decoding)))
            out.append((f"+MEN - Base, {cnn}, {decoding}", (f"{prefix}none", decoding),
                        (f"{prefix}random", decoding)))
        out.append((f"+CKNet - +CKNet with G shuffled, {cnn}, beam 3", (f"{prefix}image", "G shuffled"),
                    (f"{prefix}image", "beam 3")))
    for run, name in (("none", "Base"), ("image", "+CKNet"), ("random", "+MEN")):
        out.append((f"{name}: label-free CNN - graph-stage CNN, beam 3", (run, "beam 3"),
                    (f"label-free-{run}", "beam 3")))
    return out


class Labels:
    """The labeler's labels of report texts, each distinct text labelled once."""

    def __init__(self, labeler) -> None:
        self.labeler, self.known = labeler, {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        new = sorted({t for t in texts if t not in self.known})
        if new:
            self.known.update(zip(new, np.asarray(self.labeler(new), dtype=float)))
        return np.stack([self.known[t] for t in texts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="iu_reports.py's --output")
    parser.add_argument("--recipe", default="best-30")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--labeler", default="rules")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=2000)
    args = parser.parse_args()

    labels = Labels(make_labeler(args.labeler))
    statistics = {}

    def of(seed: int, run: str, decoding: str):
        key = (seed, run, decoding)
        if key not in statistics:
            records = json.loads(prediction_file(args.folder, seed, args.recipe, run, decoding).read_text())
            references = [r["reference"] for r in records]
            predictions = [r["prediction"] for r in records]
            statistics[key] = report_statistics(references, predictions, labels(references),
                                                labels(predictions))
        return statistics[key]

    print(f"Paired comparisons, {args.recipe}, seeds {args.seeds}, labeler {args.labeler}; "
          f"{args.resamples} bootstrap resamples and {args.trials} randomisation trials over the test "
          f"studies")
    print()
    print("| comparison (B - A) | metric | per seed | seeds together [95% interval] | p, bootstrap | "
          "p, randomisation |")
    print("| --- | --- | --- | --- | ---: | ---: |")
    for label, (run_a, decoding_a), (run_b, decoding_b) in comparisons():
        files = [prediction_file(args.folder, seed, args.recipe, run, decoding) for seed in args.seeds
                 for run, decoding in ((run_a, decoding_a), (run_b, decoding_b))]
        if not all(f.is_file() for f in files):
            continue
        runs_a = [of(seed, run_a, decoding_a) for seed in args.seeds]
        runs_b = [of(seed, run_b, decoding_b) for seed in args.seeds]
        together = paired_comparison(runs_a, runs_b, args.resamples, args.trials)
        per_seed = [paired_comparison(a, b, 1, 1) for a, b in zip(runs_a, runs_b)]
        for metric in METRICS:
            c = together[metric]
            seeds = " / ".join(f"{p[metric].difference:+.3f}" for p in per_seed)
            print(f"| {label} | {metric} | {seeds} | {c.difference:+.3f} [{c.low:+.3f}, {c.high:+.3f}] | "
                  f"{c.p_bootstrap:.3f} | {c.p_randomisation:.3f} |")


if __name__ == "__main__":
    main()
