"""Evaluate generated reports: NLG metrics and clinical efficacy, offline.

With ``--predictions FILE`` (JSON or CSV with id, prediction, reference, as `cknet
generate` writes it) it scores that file. Without, it scores two simple baselines on
the real IU X-Ray test split from ``tests/fixtures/data``, to show what the numbers mean:
the most frequent training report written for every study, and each study given
another test study's report.

    python examples/evaluate_reports.py [--data-dir tests/fixtures/data] [--predictions FILE]
        [--average micro|macro|example] [--uncertain 0|1]
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
from pathlib import Path

import numpy as np

from cknet.metrics import ce_scores, nlg_scores
from cknet.tokenizers import clean_report


def read_predictions(path: Path) -> tuple[list[str], list[str]]:
    """(references, predictions) from a JSON list or a CSV file of id, prediction, reference."""
    if path.suffix == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
    else:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    missing = [k for k in ("prediction", "reference") if rows and k not in rows[0]]
    if not rows or missing:
        raise SystemExit(f"{path}: expected rows with 'prediction' and 'reference' (missing {missing})")
    return [r["reference"] for r in rows], [r["prediction"] for r in rows]


def baselines(data_dir: Path) -> dict[str, tuple[list[str], list[str]]]:
    annotation_path = data_dir / "iu_xray" / "annotation.json"
    if not annotation_path.is_file():
        raise SystemExit(f"{annotation_path} not found: give --data-dir, or --predictions FILE")
    annotation = json.loads(annotation_path.read_text(encoding="utf-8"))
    references = [e["report"] for e in annotation["test"]]
    counts = collections.Counter(clean_report(e["report"]) for e in annotation["train"])
    commonest = counts.most_common(1)[0][0]
    shuffled = list(np.random.default_rng(0).permutation(references))
    print(f"IU X-Ray test split: {len(references)} reference reports\n"
          f"most frequent training report ({counts[commonest]} of {len(annotation['train'])}): "
          f"{commonest!r}\n")
    return {"most frequent training report": (references, [commonest] * len(references)),
            "another study's report": (references, shuffled)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "data"
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--predictions", type=Path)
    parser.add_argument("--average", choices=["micro", "macro", "example"], default="micro")
    parser.add_argument("--uncertain", type=int, choices=[0, 1], default=0)
    args = parser.parse_args()

    if args.predictions is not None:
        runs = {args.predictions.name: read_predictions(args.predictions)}
    else:
        runs = baselines(args.data_dir)
    for name, (references, predictions) in runs.items():
        nlg = nlg_scores(references, predictions, dataset="iu_xray")
        ce = ce_scores(references, predictions, average=args.average, uncertain=args.uncertain)
        print(f"== {name}")
        print("NLG: " + "  ".join(f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in nlg.scores.items()))
        print(f"    ({', '.join(f'{k}: {v}' for k, v in nlg.settings.items())}"
              f"{'; ' + '; '.join(nlg.notes) if nlg.notes else ''})")
        print("CE:  " + "  ".join(f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in ce.scores.items()))
        print(f"    ({', '.join(f'{k}: {v}' for k, v in ce.settings.items())})")
        print(f"    {'observation':28s} support predicted     F1")
        for row in ce.table:
            print(f"    {row['observation']:28s} {row['support']:7d} {row['predicted']:9d} {row['f1']:6.3f}")
        print()


if __name__ == "__main__":
    main()
