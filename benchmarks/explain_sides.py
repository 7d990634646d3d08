"""Does a word's attention (`cknet.explain.explain`) go to the side of the finding?

Renders studies with a pleural effusion on the left, then on the right
(`cknet.data.synthetic`), has a model write and explain their reports, and prints where
the word "effusion" put its attention on the frontal view: the share of the image's left
third (the patient's right) and right third (the patient's left). A model whose
attention follows the finding shows the larger share on the effusion's side.

    python benchmarks/explain_sides.py runs/demo/model [--studies 16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cknet import CKNet
from cknet.data.synthetic import SyntheticDataset
from cknet.explain import explain


def side_shares(model: CKNet, side: str, studies: int) -> list[tuple[float, float]]:
    """For rendered studies with a pleural effusion on ``side``: the share of the word
    "effusion"'s attention on the frontal view's left third and on its right third, one
    pair per study whose report has the word.

    Args:
        model: a model trained on synthetic studies.
        side: ``"right"`` or ``"left"`` (the patient's).
        studies: how many studies to render.
    """
    data = SyntheticDataset.from_studies([[f"{side} pleural effusion"]] * studies, ["unused"] * studies,
                                         model.config, seed=5)
    images = torch.stack([data[i]["images"] for i in range(len(data))])
    shares = []
    for explanation in explain(model, images):
        if "effusion" in explanation.words:
            frontal = explanation.patch_attention[explanation.words.index("effusion"), 0]  # (h, w)
            third = max(1, frontal.shape[1] // 3)
            shares.append((float(frontal[:, :third].sum() / frontal.sum()),
                           float(frontal[:, -third:].sum() / frontal.sum())))
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a saved model trained on synthetic studies (cknet demo)")
    parser.add_argument("--studies", type=int, default=16)
    args = parser.parse_args()

    model = CKNet.from_pretrained(args.model).eval()
    print(f"{args.model}: {model.config.image_size} px; share of the attention of the word 'effusion' "
          f"on the frontal view, mean over the studies whose report has it\n")
    print("| rendered effusion | studies | image's left third (patient's right) | image's right third "
          "(patient's left) |")
    print("| --- | ---: | ---: | ---: |")
    for side in ("right", "left"):
        shares = side_shares(model, side, args.studies)
        if shares:
            left, right = (sum(values) / len(shares) for values in zip(*shares))
            print(f"| {side} | {len(shares)} | {left:.3f} | {right:.3f} |")
        else:
            print(f"| {side} | 0 | no report has 'effusion' | |")


if __name__ == "__main__":
    main()
