"""Agreement of `KeywordLabeler.openi40()` with the human MeSH indexing of IU X-Ray reports.

For each openi40 node: how many studies of the split the MeSH tags mark (via
`cknet.data.labels.load_mesh_labels`), how many the labeler marks from the report
text, and precision / recall / F1 of the labeler against the tags. Micro averages are
over the nodes with at least 10 tagged studies in the split. The phrases were tuned on
the train split only.

    python benchmarks/labeler_vs_mesh.py --split val [--uncertain 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from shared_data import IU_XRAY

from cknet.data.labels import load_mesh_labels
from cknet.graph import KnowledgeGraph
from cknet.labeler import KeywordLabeler

DATA = IU_XRAY


def agreement(reference: np.ndarray, predicted: np.ndarray, min_count: int = 10) -> dict:
    """Per-column counts and P/R/F1, and micro P/R/F1 over columns with >= min_count positives."""
    rows, totals = [], np.zeros(3)
    for column in range(reference.shape[1]):
        ref, pred = reference[:, column] == 1, predicted[:, column] == 1
        tp, fp, fn = int((ref & pred).sum()), int((~ref & pred).sum()), int((ref & ~pred).sum())
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
        rows.append(dict(tagged=int(ref.sum()), labelled=int(pred.sum()),
                         precision=precision, recall=recall, f1=f1))
        if ref.sum() >= min_count:
            totals += (tp, fp, fn)
    tp, fp, fn = totals
    micro = dict(precision=tp / (tp + fp), recall=tp / (tp + fn), f1=2 * tp / (2 * tp + fp + fn))
    return dict(nodes=rows, micro=micro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--split", default="val")
    parser.add_argument("--uncertain", type=int, choices=[0, 1], default=0,
                        help="count uncertain mentions as 0 (default) or 1")
    args = parser.parse_args()
    graph = KnowledgeGraph.openi40()
    ids, splits, mesh = load_mesh_labels(args.data_dir / "mesh_tags.csv", graph)
    annotation = json.loads((args.data_dir / "annotation.json").read_text())
    reports = {e["id"]: e["report"] for split in annotation.values() for e in split}
    rows = [i for i, s in enumerate(splits) if s == args.split]
    labeler = KeywordLabeler.openi40(graph)
    start = time.perf_counter()
    predicted = labeler.label_binary([reports[ids[i]] for i in rows], uncertain=args.uncertain)
    seconds = time.perf_counter() - start
    result = agreement(mesh[rows], predicted)

    print(f"KeywordLabeler.openi40() vs MeSH tags, IU X-Ray {args.split} split ({len(rows)} studies), "
          f"uncertain -> {args.uncertain}; {len(rows) / seconds:.0f} reports/s on one core")
    print()
    print("| node | MeSH | labeler | precision | recall | F1 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, row in zip(graph.nodes, result["nodes"]):
        if row["tagged"] or row["labelled"]:
            cells = [f"{row[k]:.2f}" if not np.isnan(row[k]) else "-" for k in ("precision", "recall", "f1")]
            print(f"| {name} | {row['tagged']} | {row['labelled']} | {' | '.join(cells)} |")
    micro = result["micro"]
    print(f"| **micro, nodes with >= 10 tagged** | | | {micro['precision']:.3f} | "
          f"{micro['recall']:.3f} | {micro['f1']:.3f} |")


if __name__ == "__main__":
    main()
