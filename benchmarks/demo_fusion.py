"""The quick demo's three models on the same rendered studies: Base (no knowledge
matrix), CKNet with the paper's fusion (equation 9) and CKNet with knowledge dropout 0.3,
per seed; CE F1 over the 17 synthetic findings (and on blank images), BLEU-4, and where
the word "effusion" looks (`explain_sides.py`'s measure).

    python benchmarks/demo_fusion.py --seeds 0 1 2 [--csv docs/results/demo_fusion.csv]

Each seed renders its own studies (`run_demo(seed=...)`); the three models of a seed
share them, the graph stage's recipe and the report models' recipe.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tempfile
import warnings
from pathlib import Path

import torch
from explain_sides import side_shares

from cknet import CKNet
from cknet.demo import QUICK, run_demo
from cknet.persistence.model_files import SyntheticModelWarning


def effusion_sides(model_dir: Path, studies: int = 48) -> dict[str, float]:
    """The share of the word "effusion"'s attention on the effusion's third of the
    frontal view and on the other side's, mean over both sides' rendered studies
    (`explain_sides.side_shares`; the patient's right is the image's left third)."""
    model = CKNet.from_pretrained(model_dir).eval()
    own, other = [], []
    for side in ("right", "left"):
        for left_third, right_third in side_shares(model, side, studies):
            own.append(left_third if side == "right" else right_third)
            other.append(right_third if side == "right" else left_third)
    return {"own side": sum(own) / len(own) if own else float("nan"),
            "other side": sum(other) / len(other) if other else float("nan")}


def run_seed(seed: int, folder: Path) -> list[dict]:
    """The three models of one seed, as rows."""
    paired = run_demo(folder / "paper", seed=seed, progress=False, base=True)
    dropout = run_demo(folder / "dropout", seed=seed, progress=False,
                       settings=dataclasses.replace(QUICK, knowledge_dropout=0.3))
    rows = []
    for name, scores, model_dir in (
        ("Base", paired.base, folder / "paper" / "base-run" / "best"),
        ("CKNet, equation (9)", {"ce": paired.ce, "ce_blank": paired.ce_blank, "nlg": paired.nlg},
         folder / "paper" / "model"),
        ("CKNet, knowledge dropout 0.3", {"ce": dropout.ce, "ce_blank": dropout.ce_blank, "nlg": dropout.nlg},
         folder / "dropout" / "model"),
    ):
        sides = effusion_sides(model_dir)
        rows.append({"seed": seed, "model": name, "ce_f1": scores["ce"]["scores"]["f1"],
                     "ce_f1_blank": scores["ce_blank"]["scores"]["f1"],
                     "bleu4": scores["nlg"]["scores"]["BLEU_4"],
                     "effusion_own_side": sides["own side"], "effusion_other_side": sides["other side"]})
        cells = (f"{v:.3f}" if isinstance(v, float) else str(v) for v in rows[-1].values())
        print(" | ".join(cells), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: its default)")
    parser.add_argument("--csv", type=Path, help="write the rows here (e.g. docs/results/demo_fusion.csv)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=SyntheticModelWarning)  # the demo's models are synthetic
    print("seed | model | CE F1 | CE F1, blank images | BLEU-4 | effusion: own side | other side")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            rows += run_seed(seed, Path(scratch) / f"seed{seed}")
    models = list(dict.fromkeys(row["model"] for row in rows))
    print("\nmodel | CE F1 per seed | mean | minus Base per seed")
    base = {row["seed"]: row["ce_f1"] for row in rows if row["model"] == "Base"}
    for model in models:
        values = [(row["seed"], row["ce_f1"]) for row in rows if row["model"] == model]
        print(f"{model} | {' / '.join(f'{v:.3f}' for _, v in values)} | "
              f"{sum(v for _, v in values) / len(values):.3f} | "
              f"{' / '.join(f'{v - base[s]:+.3f}' for s, v in values)}")
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                             for row in rows)


if __name__ == "__main__":
    main()
