"""How much of the findings each feature set of the 2 x 2 ablation carries, and how
study-specific the knowledge matrix G is.

For one seed of `benchmarks/iu_reports.py` (its kept graph stage), on the rendered IU
X-Ray studies:

- a linear probe (logistic regression per finding, L2 strength chosen on the validation
  split by mean AUC) on each feature set: the graph stage's CNN maps and the label-free
  CNN's maps (each average-pooled over positions) and G (the study's node vectors,
  concatenated); test ROC AUC per finding with at least 10 positive test studies;
- G inspected: the mean cosine similarity between the rows (nodes) of one study's G,
  and between the same node's vectors of two different studies (1 would mean G is the
  same for every study).

    python benchmarks/linear_probe.py runs/ablation2x2 [--seed 0] [--image-size 128]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from iu_reports import DATA, benchmark_config, build_variant, label_free_cnn, load_splits
from machine import describe

from cknet import ReportTokenizer
from cknet.data.synthetic import FINDINGS
from cknet.metrics import roc_auc
from cknet.modules.graph_model import KnowledgeGraphModel

MIN_POSITIVES = 10
STRENGTHS = (1e-4, 1e-3, 1e-2, 1e-1)


@torch.no_grad()
def features(model, data, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Pooled CNN maps ``(N, C)``, G ``(N, M, d)`` (None without one) and labels ``(N, F)``."""
    model.eval()
    pooled, knowledge, labels = [], [], []
    for start in range(0, len(data), batch_size):
        items = [data[i] for i in range(start, min(start + batch_size, len(data)))]
        study = model.study_features(torch.stack([item["images"] for item in items]))
        pooled.append(study.maps.mean(dim=(1, 3, 4)))
        if study.knowledge_matrix is not None:
            knowledge.append(study.knowledge_matrix)
        labels.append(torch.stack([item["labels"] for item in items]))
    return (torch.cat(pooled).numpy(), torch.cat(knowledge).numpy() if knowledge else None,
            torch.cat(labels).numpy())


def fit_logistic(x: torch.Tensor, y: torch.Tensor, strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``(D, F)`` and biases ``(F,)`` of one logistic regression per column of
    ``y``, minimising the mean binary cross-entropy plus ``strength`` times the squared
    weights (L-BFGS)."""
    weight = torch.zeros(x.shape[1], y.shape[1], dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(y.shape[1], dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y)
        value = value + strength * weight.pow(2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    return weight.detach(), bias.detach()


def probe_auc(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
              test: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, float]:
    """Test AUC per finding of logistic regressions fitted on standardized features, the
    L2 strength chosen by the validation split's mean AUC; and that strength."""
    mean, std = train[0].mean(0), train[0].std(0) + 1e-6
    x = {name: torch.tensor((part[0] - mean) / std, dtype=torch.float64)
         for name, part in (("train", train), ("val", val), ("test", test))}
    y = torch.tensor(train[1], dtype=torch.float64)
    best = None
    for strength in STRENGTHS:
        weight, bias = fit_logistic(x["train"], y, strength)
        scores = {name: (x[name] @ weight + bias).numpy() for name in ("val", "test")}
        val_auc = np.nanmean(roc_auc(val[1], scores["val"]))
        if best is None or val_auc > best[0]:
            best = (val_auc, roc_auc(test[1], scores["test"]), strength)
    return best[1], best[2]


def cosine_summary(knowledge: np.ndarray, seed: int) -> tuple[float, float]:
    """Mean cosine between the nodes of one study's G, and between one node's vectors in
    two studies (random pairs)."""
    unit = knowledge / (np.linalg.norm(knowledge, axis=-1, keepdims=True) + 1e-12)
    within = np.einsum("nmd,nkd->nmk", unit, unit)
    nodes = unit.shape[1]
    within_mean = float((within.sum((1, 2)) - nodes).mean() / (nodes * (nodes - 1)))
    rng = np.random.default_rng(seed)
    first, second = rng.integers(0, len(unit), size=(2, 2000))
    keep = first != second
    across = float(np.einsum("pmd,pmd->pm", unit[first[keep]], unit[second[keep]]).mean())
    return within_mean, across


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="iu_reports.py's --output (its seed's graph stage)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=0, help="first N studies per split (smoke test)")
    args = parser.parse_args()

    config = benchmark_config(args.image_size)
    splits = load_splits(DATA, config, args.limit)
    tokenizer = ReportTokenizer.from_reports(splits["train"].reports())
    graph_model = KnowledgeGraphModel.from_pretrained(args.folder / f"seed{args.seed}" / "graph")
    label_free = label_free_cnn(config, tokenizer, splits["train"], args.seed)
    sets = {}
    for cnn, weights in (("graph-stage CNN", None), ("label-free CNN", label_free)):
        model = build_variant(config, "image", tokenizer, graph_model, visual=weights)
        parts = {split: features(model, splits[split]) for split in ("train", "val", "test")}
        sets[f"{cnn} maps, pooled"] = {split: (p[0], p[2]) for split, p in parts.items()}
        if weights is None:
            sets["G, nodes concatenated"] = {split: (p[1].reshape(len(p[1]), -1), p[2])
                                            for split, p in parts.items()}
            knowledge = parts["test"][1]
    test_labels = sets["G, nodes concatenated"]["test"][1]
    columns = [j for j in range(test_labels.shape[1]) if test_labels[:, j].sum() >= MIN_POSITIVES]
    if not columns:
        raise SystemExit(f"no finding has {MIN_POSITIVES} positive test studies: use more studies")
    print(f"Linear probes, seed {args.seed}, {args.image_size} px; {describe('cpu')}")
    print()
    print("| features | dimensions | L2 | mean test AUC | " + " | ".join(
        f"{FINDINGS[j]} ({int(test_labels[:, j].sum())})" for j in columns) + " |")
    print("|---" * (4 + len(columns)) + "|")
    for name, parts in sets.items():
        auc, strength = probe_auc(parts["train"], parts["val"], parts["test"])
        print(f"| {name} | {parts['train'][0].shape[1]} | {strength:g} | {np.mean(auc[columns]):.3f} | "
              + " | ".join(f"{auc[j]:.3f}" for j in columns) + " |")
    within, across = cosine_summary(knowledge, args.seed)
    print(f"\nG of the test studies: mean cosine between the nodes of one study {within:.3f}; "
          f"between the same node in two studies {across:.3f}")


if __name__ == "__main__":
    main()
