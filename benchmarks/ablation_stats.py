"""Paired statistics of the ablation that `benchmarks/iu_reports.py` ran: each comparison
the docs draw, per metric, as B - A with a paired-bootstrap 95% interval over the test
studies and p-values (paired bootstrap, approximate randomisation), over the seeds
together (`cknet.metrics.resampling.paired_comparison`: one run per seed of each
system, the same test studies resampled in every seed) and per seed.

    python benchmarks/ablation_stats.py runs/iu_reports --recipe best-30 [--seeds 0 1 2]
        [--labeler rules] [--resamples 2000] [--trials 2000] [--split test|val] [--csv FILE]

Comparisons (those whose prediction files exist in every seed given): +CKNet and +MEN
against Base, with each CNN and decoding; +CKNet against itself decoded with G shuffled
across the test studies; each model with the label-free CNN against the same model
with the graph stage's CNN; each fusion candidate of docs/reproducing.md ("The knowledge
path must add": gated, residual, knowledge dropout) against Base, against +CKNet with
equation (9), and against itself with G or the patches shuffled.

``--split val`` reads the screen's validation files (iu_reports.py ``--split val``);
``--csv FILE`` also writes every row as data (comparison, cnn, metric, seeds,
difference, low, high, p), e.g. docs/results/knowledge_fusion.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from cknet.evaluation import report_statistics
from cknet.labeler import make_labeler
from cknet.metrics.resampling import paired_comparison

METRICS = ("ce_findings_f1", "ce_f1", "BLEU_4", "CIDEr")
CSV_NAMES = {"ce_findings_f1": "ce_findings_f1", "ce_f1": "ce_f1", "BLEU_4": "bleu4", "CIDEr": "cider"}
DECODING_FILES = {"beam 3": "beam-3", "length penalty 1": "beam-3-length-penalty-1",
                  "G shuffled": "beam-3-G-shuffled", "patches shuffled": "beam-3-patches-shuffled"}
# the fusion candidates: their run folders' suffix and their name in the tables
CANDIDATES = {"gated": "gated", "residual": "residual", "kdrop": "knowledge dropout"}


def prediction_file(folder: Path, seed: int, recipe: str, run: str, decoding: str,
                    split: str = "test") -> Path:
    """Where iu_reports.py writes a run's reports for a decoding on a split."""
    if (split, decoding) == ("test", "beam 3"):
        return folder / f"seed{seed}" / recipe / run / "test_predictions.json"
    tag = "" if split == "test" else "-val"
    return folder / f"seed{seed}" / recipe / f"{run}{tag}-{DECODING_FILES[decoding]}.json"


def comparisons() -> list[tuple[str, str, tuple[str, str], tuple[str, str]]]:
    """(label, cnn, (run A, decoding A), (run B, decoding B)) for every comparison drawn;
    cnn is "a" (the graph stage's) or "b" (label-free)."""
    out = []
    for cnn, name, prefix in (("a", "graph-stage CNN", ""), ("b", "label-free CNN", "label-free-")):
        for decoding in ("beam 3", "length penalty 1"):
            out.append((f"+CKNet - Base, {name}, {decoding}", cnn, (f"{prefix}none", decoding),
                        (f"{prefix}image", decoding)))
            out.append((f"+MEN - Base, {name}, {decoding}", cnn, (f"{prefix}none", decoding),
                        (f"{prefix}random", decoding)))
        out.append((f"+CKNet - +CKNet with G shuffled, {name}, beam 3", cnn, (f"{prefix}image", "G shuffled"),
                    (f"{prefix}image", "beam 3")))
        for suffix, candidate in CANDIDATES.items():
            run = f"{prefix}image-{suffix}"
            out += [(f"{candidate} - Base, {name}, beam 3", cnn, (f"{prefix}none", "beam 3"),
                     (run, "beam 3")),
                    (f"{candidate} - +CKNet, {name}, beam 3", cnn, (f"{prefix}image", "beam 3"),
                     (run, "beam 3")),
                    (f"{candidate} - {candidate} with G shuffled, {name}, beam 3", cnn, (run, "G shuffled"),
                     (run, "beam 3")),
                    (f"{candidate} - {candidate} with patches shuffled, {name}, beam 3", cnn,
                     (run, "patches shuffled"), (run, "beam 3"))]
        out.append((f"+CKNet - +CKNet with patches shuffled, {name}, beam 3", cnn,
                    (f"{prefix}image", "patches shuffled"), (f"{prefix}image", "beam 3")))
    for run, name in (("none", "Base"), ("image", "+CKNet"), ("random", "+MEN")):
        out.append((f"{name}: label-free CNN - graph-stage CNN, beam 3", "b - a", (run, "beam 3"),
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
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("--csv", type=Path, help="also write every row here as data")
    args = parser.parse_args()

    labels = Labels(make_labeler(args.labeler))
    statistics = {}

    def of(seed: int, run: str, decoding: str):
        key = (seed, run, decoding)
        if key not in statistics:
            path = prediction_file(args.folder, seed, args.recipe, run, decoding, args.split)
            records = sorted(json.loads(path.read_text()), key=lambda r: r["id"])
            references = [r["reference"] for r in records]
            predictions = [r["prediction"] for r in records]
            statistics[key] = report_statistics(references, predictions, labels(references),
                                                labels(predictions))
        return statistics[key]

    print(f"Paired comparisons, {args.recipe}, seeds {args.seeds}, labeler {args.labeler}; "
          f"{args.resamples} bootstrap resamples and {args.trials} randomisation trials over the "
          f"{args.split} studies")
    print()
    print("| comparison (B - A) | metric | per seed | seeds together [95% interval] | p, bootstrap | "
          "p, randomisation |")
    print("| --- | --- | --- | --- | ---: | ---: |")
    rows = []
    for label, cnn, (run_a, decoding_a), (run_b, decoding_b) in comparisons():
        files = [prediction_file(args.folder, seed, args.recipe, run, decoding, args.split)
                 for seed in args.seeds
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
            rows.append({"comparison": ", ".join(part for part in label.split(", ")
                                                  if part not in ("graph-stage CNN", "label-free CNN")),
                         "cnn": cnn, "metric": CSV_NAMES[metric],
                         "seeds": " ".join(map(str, args.seeds)), "split": args.split,
                         "difference": f"{c.difference:.4f}", "low": f"{c.low:.4f}", "high": f"{c.high:.4f}",
                         "p": f"{c.p_randomisation:.4f}",
                         "per_seed": " ".join(f"{p[metric].difference:.4f}" for p in per_seed)})
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["comparison"])
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
