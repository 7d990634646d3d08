"""Where do the patches and the report tokens of a trained +CKNet put their equation-(6)
weight over G? The global node, the finding nodes, a finding word's own node?

Reads the +CKNet models of the 2 x 2 ablation (`benchmarks/iu_reports.py --visual
graph-stage label-free`), renders the validation split as that benchmark does (choices
are made on validation; the test split is not read here), and feeds each study's
reference report (teacher forcing) through `cknet.explain.knowledge_attention`. Prints,
per model: the mass on the global node (column 0) of the patch rows and of the token
rows, how often the global node is among a row's top-γ, the mass on the finding nodes;
and, for the finding words, the mass of their tokens on the word's own node(s) in
studies whose image shows the finding and in studies whose image does not, beside the
share uniform weights over all M columns would give.

    python benchmarks/knowledge_attention.py runs/ablation2x2 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from iu_reports import DATA, load_splits
from machine import describe

from cknet import CKNet
from cknet.data.synthetic import FINDINGS
from cknet.explain import knowledge_attention

WORDS = {"effusion": ["left pleural effusion", "right pleural effusion"], "cardiomegaly": ["cardiomegaly"],
         "atelectasis": ["left atelectasis", "right atelectasis"],
         "opacity": ["left lung opacity", "right lung opacity"], "pacemaker": ["support devices"],
         "granuloma": ["calcified granuloma"], "scoliosis": ["scoliosis"]}
MODELS = {"+CKNet, graph-stage CNN (a)": "image", "+CKNet, label-free CNN (b)": "label-free-image"}


def measure(model: CKNet, data, batch_size: int = 64) -> dict:
    """The attention statistics of one model on one split (see the module docstring)."""
    tokenizer = model.tokenizer
    ids, _ = tokenizer.encode_batch(data.reports())
    truth = torch.as_tensor(data.label_matrix(), dtype=torch.bool)
    patches, tokens = [], []
    for start in range(0, len(data), batch_size):
        rows = range(start, min(start + batch_size, len(data)))
        images = torch.stack([data[i]["images"] for i in rows])
        patch_weights, token_weights = knowledge_attention(model, images, ids[start: start + len(rows)])
        patches.append(patch_weights)
        tokens.append(token_weights)
    patch_weights, token_weights = torch.cat(patches), torch.cat(tokens)  # (B, P, M), (B, T, M)
    real = ids != tokenizer.pad_id
    token_rows = token_weights[real]
    columns = token_weights.shape[-1]
    out = {"columns M": columns, "gamma": model.config.gamma,
           "patch mass on global": float(patch_weights[..., 0].mean()),
           "patch rows with global in top-gamma": float((patch_weights[..., 0] > 0).float().mean()),
           "token mass on global": float(token_rows[:, 0].mean()),
           "token rows with global in top-gamma": float((token_rows[:, 0] > 0).float().mean()),
           "words": {}}
    for word, nodes in WORDS.items():
        if word not in tokenizer.token_to_id:
            continue
        node_columns = [1 + FINDINGS.index(n) for n in nodes]
        at_word = ids == tokenizer.token_to_id[word]
        shows = truth[:, [c - 1 for c in node_columns]].any(dim=1)
        on_node = token_weights[..., node_columns].sum(-1)
        positive, negative = on_node[at_word & shows[:, None]], on_node[at_word & ~shows[:, None]]
        out["words"][word] = {
            "shows": (float(positive.mean()) if len(positive) else None, int(len(positive))),
            "does not": (float(negative.mean()) if len(negative) else None, int(len(negative))),
            "uniform": len(node_columns) / columns}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="the output folder of the 2 x 2 (iu_reports.py --output)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--recipe", default="best-30")
    parser.add_argument("--output", type=Path, help="write the numbers as JSON here")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    results, splits = {}, None
    for seed in args.seeds:
        for label, folder in MODELS.items():
            path = args.runs / f"seed{seed}" / args.recipe / folder / "best"
            if not path.is_dir():
                print(f"skipped: {path} does not exist")
                continue
            model = CKNet.from_pretrained(path).eval()
            if splits is None:
                splits = load_splits(DATA, model.config)
            results[f"seed {seed}, {label}"] = measure(model, splits["val"])
            print(f"seed {seed}, {label}: {json.dumps(results[f'seed {seed}, {label}'])}", flush=True)
    print(f"\nValidation split ({len(splits['val'])} studies), reference reports; {describe()}\n")
    print("| model | M, γ | patch mass on global | patches with global in top-γ | token mass on global "
          "| tokens with global in top-γ |\n|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['columns M']}, {r['gamma']} | {r['patch mass on global']:.3f} | "
              f"{r['patch rows with global in top-gamma']:.3f} | {r['token mass on global']:.3f} | "
              f"{r['token rows with global in top-gamma']:.3f} |")
    print("\n| model | word | own node, image shows it (n) | own node, image does not (n) | uniform |"
          "\n|---|---|---|---|---|")
    for name, r in results.items():
        for word, w in r["words"].items():
            shows = "-" if w["shows"][0] is None else f"{w['shows'][0]:.3f} ({w['shows'][1]})"
            does_not = "-" if w["does not"][0] is None else f"{w['does not'][0]:.3f} ({w['does not'][1]})"
            print(f"| {name} | {word} | {shows} | {does_not} | {w['uniform']:.3f} |")
    if args.output:
        args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
