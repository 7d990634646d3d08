"""Agreement of `CheXpertLabeler` with the human MeSH indexing of IU X-Ray reports.

The observations that map onto MeSH terms are compared (`MESH_TERMS`); Consolidation
and Pneumonia are merged into one column (a study is positive if either is), and
Cardiomegaly counts Enlarged Cardiomediastinum too, against the MeSH Cardiomegaly and
"Cardiac Shadow/enlarged" (the indexers tag an enlarged cardiomediastinal silhouette
either way). The labeler's phrases were tuned on
the train split only.

    python benchmarks/chexpert_vs_mesh.py --split test [--uncertain 0] [--convention chexpert]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from shared_data import IU_XRAY

from cknet.labeler import CheXpertLabeler, binarize

DATA = IU_XRAY

# Compared column -> (the labeler's observations, the MeSH main terms that mean it).
MESH_TERMS = {
    "Cardiomegaly": (["Cardiomegaly", "Enlarged Cardiomediastinum"],
                     ["Cardiomegaly", "Cardiac Shadow/enlarged"]),
    "Lung Lesion": (["Lung Lesion"], ["Nodule", "Mass"]),
    "Lung Opacity": (["Lung Opacity"], ["Opacity", "Airspace Disease", "Density", "Infiltrate",
                                        "Consolidation"]),
    "Edema": (["Edema"], ["Pulmonary Edema", "Pulmonary Congestion", "Heart Failure"]),
    "Consolidation / Pneumonia": (["Consolidation", "Pneumonia"],
                                  ["Consolidation", "Pneumonia"]),
    "Atelectasis": (["Atelectasis"], ["Pulmonary Atelectasis"]),
    "Pneumothorax": (["Pneumothorax"], ["Pneumothorax"]),
    "Pleural Effusion": (["Pleural Effusion"], ["Pleural Effusion"]),
    "Fracture": (["Fracture"], ["Fractures, Bone"]),
    "Support Devices": (["Support Devices"],
                        ["Catheters, Indwelling", "Surgical Instruments", "Medical Device",
                         "Implanted Medical Device", "Tube, Inserted", "Stents", "Pacemaker, Artificial"]),
}


def _matches(tag: str, terms: list[str]) -> bool:
    """Whether a MeSH tag "Term/qualifier/..." is one of ``terms`` ("Term" or "Term/qualifier")."""
    parts = [p.strip() for p in tag.split("/")]
    for term in terms:
        name, _, qualifier = term.partition("/")
        if parts[0] == name and (not qualifier or qualifier in parts[1:]):
            return True
    return False


def compare(data_dir: Path, split: str, uncertain: int,
            convention: str = "chexbert") -> tuple[list[dict], dict, float]:
    """Per-column counts and P/R/F1, micro P/R/F1, and reports per second."""
    rows = [r for r in csv.DictReader(open(data_dir / "mesh_tags.csv", newline="")) if r["split"] == split]
    annotation = json.loads((data_dir / "annotation.json").read_text())
    reports = {e["id"]: e["report"] for s in annotation.values() for e in s}
    labeler = CheXpertLabeler(convention)
    start = time.perf_counter()
    labels = binarize(labeler.label([reports[r["id"]] for r in rows]), uncertain)
    rate = len(rows) / (time.perf_counter() - start)
    table, totals = [], np.zeros(3)
    for name, (observations, terms) in MESH_TERMS.items():
        columns = [labeler.observations.index(o) for o in observations]
        predicted = labels[:, columns].max(axis=1) == 1
        tagged = np.array([any(_matches(t, terms) for t in r["mesh"].split(";")) for r in rows])
        tp, fp = int((tagged & predicted).sum()), int((~tagged & predicted).sum())
        fn = int((tagged & ~predicted).sum())
        totals += (tp, fp, fn)
        table.append(dict(name=name, tagged=int(tagged.sum()), labelled=int(predicted.sum()),
                          precision=tp / (tp + fp) if tp + fp else float("nan"),
                          recall=tp / (tp + fn) if tp + fn else float("nan"),
                          f1=2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")))
    tp, fp, fn = totals
    micro = dict(precision=tp / (tp + fp), recall=tp / (tp + fn), f1=2 * tp / (2 * tp + fp + fn))
    return table, micro, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--split", default="test")
    parser.add_argument("--uncertain", type=int, choices=[0, 1], default=0)
    parser.add_argument("--convention", choices=CheXpertLabeler.conventions, default="chexbert",
                        help="the labeler's reading: CheXbert's (default) or the CheXpert labeler's")
    args = parser.parse_args()
    table, micro, rate = compare(args.data_dir, args.split, args.uncertain, args.convention)
    print(f"CheXpertLabeler vs MeSH tags, IU X-Ray {args.split} split, uncertain -> {args.uncertain}; "
          f"{rate:.0f} reports/s on one core")
    print()
    print("| observation | MeSH | labeler | precision | recall | F1 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in table:
        cells = [f"{row[k]:.2f}" if not np.isnan(row[k]) else "-" for k in ("precision", "recall", "f1")]
        print(f"| {row['name']} | {row['tagged']} | {row['labelled']} | {' | '.join(cells)} |")
    print(f"| **micro** | | | {micro['precision']:.3f} | {micro['recall']:.3f} | {micro['f1']:.3f} |")


if __name__ == "__main__":
    main()
