"""The paper's ablation (Table IV) on real IU X-Ray reports with rendered images.

No IU X-Ray radiographs can be downloaded here, so each study of the standard split
(``../shared/data/iu_xray/annotation.json``: 2069 / 296 / 590) keeps its real report and
gets a frontal radiograph rendered from its human MeSH indexing (``mesh_tags.csv`` mapped by
`cknet.data.synthetic.findings_from_mesh`). Per seed:

1. the knowledge-graph stage (ResNet-18 + GCN on the 17-node `synthetic_graph`) is
   trained on the training split's MeSH findings, best epoch by validation AUC;
2. report models with identical budgets and the same frozen CNN (the graph stage's,
   features cached): Base (``knowledge_source="none"``), +MEN (``"random"``), +CKNet
   (``"image"``), and +CKNet with a pretrained-text-encoder path: a *tiny local BERT*
   (random weights, 2 layers, hidden d_model, frozen; a WordPiece vocabulary of at most
   4,000 pieces trained on the training reports with `cknet.testing.make_tiny_bert`).
   That row checks the BioClinicalBERT code path end to end; it says nothing about
   BioClinicalBERT itself, which cannot be downloaded here. Each model keeps its epoch
   with the best validation BLEU-4 (beam 3)
   and is scored once on the test split (beam 3): BLEU-1..4, METEOR, ROUGE-L, CIDEr
   (pycocoevalcap on R2Gen-cleaned references) and CE (the built-in CheXpert labeler
   on reference and generated reports, micro average over the 14 observations).

The "most frequent training report" baseline writes the training split's commonest
report for every test study. The table gives mean and standard deviation over seeds.

    python benchmarks/iu_reports.py [--seeds 0 1 2] [--epochs 15] [--output runs/iu_reports]
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import statistics
import time
from pathlib import Path

import torch
from machine import describe

from cknet import CKNet, CKNetConfig, PretrainedReportTokenizer, ReportTokenizer
from cknet.data.synthetic import SyntheticDataset, findings_from_mesh, synthetic_graph
from cknet.metrics import ce_scores, nlg_scores
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.testing import make_tiny_bert
from cknet.tokenizers import clean_report
from cknet.training import GraphPretrainer, Trainer, TrainingConfig
from cknet.training.seeding import seed_everything

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "iu_xray"
# name: (knowledge source, text encoder)
VARIANTS = {"Base": ("none", "embedding"), "+MEN": ("random", "embedding"), "+CKNet": ("image", "embedding"),
            "+CKNet, tiny local BERT": ("image", "tiny-bert")}
METRICS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr", "CE_F1", "CE_F1_findings")
NLG = METRICS[:7]


def load_splits(data_dir: Path, config: CKNetConfig, limit: int = 0) -> dict[str, SyntheticDataset]:
    """The standard split's real reports, each with a radiograph rendered from its MeSH tags
    (the first ``limit`` studies of each split when > 0)."""
    annotation = json.loads((data_dir / "annotation.json").read_text(encoding="utf-8"))
    with open(data_dir / "mesh_tags.csv", newline="", encoding="utf-8") as fh:
        mesh = {row["id"]: row["mesh"] for row in csv.DictReader(fh)}
    splits = {}
    for split in ("train", "val", "test"):
        entries = annotation[split][:limit] if limit else annotation[split]
        missing = [e["id"] for e in entries if e["id"] not in mesh]
        if missing:
            raise ValueError(
                f"{data_dir / 'mesh_tags.csv'} lacks {len(missing)} {split} studies, e.g. {missing[0]}"
            )
        splits[split] = SyntheticDataset.from_studies(
            [findings_from_mesh(mesh[e["id"]]) for e in entries], [e["report"] for e in entries],
            config, seed={"train": 0, "val": 1, "test": 2}[split], ids=[e["id"] for e in entries],
            keep_rendered=True,
        )
    return splits


def ce_columns(ce: dict) -> dict[str, float]:
    """CE micro F1 over the 14 CheXpert observations, and over the 13 findings without
    "No Finding" (which dominates the first on IU X-Ray, where most reports are normal)."""
    tp = fp = fn = 0.0
    for row in ce["table"]:
        if row["observation"] != "No Finding":
            hits = row["recall"] * row["support"]
            tp, fp, fn = tp + hits, fp + row["predicted"] - hits, fn + row["support"] - hits
    findings_f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"CE_F1": ce["scores"]["f1"], "CE_F1_findings": findings_f1}


def scores_of(references: list[str], predictions: list[str], config: CKNetConfig) -> dict[str, float]:
    nlg = nlg_scores(references, predictions, dataset=config.dataset, max_length=config.max_length)
    return {**{k: nlg[k] for k in NLG}, **ce_columns(ce_scores(references, predictions).to_dict())}


def most_frequent_report(splits: dict[str, SyntheticDataset], config: CKNetConfig) -> dict[str, float]:
    train, test = splits["train"], splits["test"]
    counts = collections.Counter(clean_report(train.report(i), config.dataset) for i in range(len(train)))
    commonest = counts.most_common(1)[0][0]
    return scores_of([test.report(i) for i in range(len(test))], [commonest] * len(test), config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--graph-epochs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--limit", type=int, default=0, help="use the first N studies of each split (0: all)")
    parser.add_argument("--output", type=Path, default=Path("runs/iu_reports"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    config = CKNetConfig.iu_xray(
        backbone="resnet18", graph_backbone="resnet18", image_size=args.image_size, num_views=1,
        d_model=args.d_model, d_ff=2 * args.d_model, num_heads=4, num_encoder_layers=args.layers,
        num_decoder_layers=args.layers, d_knowledge=64, gamma=8, dropout=0.1,
    )
    splits = load_splits(args.data_dir, config, args.limit)
    train = splits["train"]
    train_reports = [train.report(i) for i in range(len(train))]
    tokenizer = ReportTokenizer.from_reports(train_reports)
    args.output.mkdir(parents=True, exist_ok=True)
    tiny_bert = make_tiny_bert(train_reports, args.output / "tiny_bert", vocab_size=4000,
                               hidden_size=args.d_model, num_layers=2, num_heads=4)
    results: dict[str, list[dict]] = {name: [] for name in args.variants}
    results["most frequent training report"] = [most_frequent_report(splits, config)]
    times: dict[str, list[float]] = collections.defaultdict(list)
    for seed in args.seeds:
        seed_everything(seed)
        start = time.perf_counter()
        graph_model = KnowledgeGraphModel(synthetic_graph(), "resnet18", config.d_knowledge)
        pretrained = GraphPretrainer(graph_model, epochs=args.graph_epochs, batch_size=32, lr=1e-3,
                                     device=args.device, seed=seed).fit(train, splits["val"])
        times["graph stage"].append(time.perf_counter() - start)
        print(f"seed {seed}: graph stage mean validation AUC {pretrained.best.mean_auc:.3f} "
              f"({times['graph stage'][-1]:.0f} s)", flush=True)
        for name in args.variants:
            seed_everything(seed)
            source, text = VARIANTS[name]
            text_encoder = str(tiny_bert) if text == "tiny-bert" else "embedding"
            variant = CKNetConfig.from_dict({**config.to_dict(), "knowledge_source": source,
                                             "text_encoder": text_encoder})
            report_tokenizer = (PretrainedReportTokenizer.from_pretrained(tiny_bert)
                                if variant.pretrained_text_encoder else tokenizer)
            model = CKNet(variant, report_tokenizer, graph_model=graph_model if source == "image" else None)
            model.visual_extractor.backbone.load_state_dict(graph_model.backbone.state_dict())
            recipe = TrainingConfig(
                epochs=args.epochs, batch_size=32, lr_visual=args.lr, lr_rest=args.lr,
                lr_decay=0.1 ** (1 / args.epochs), seed=seed, num_workers=0, eval_batch_size=64,
                cache_features=True, patience=args.epochs,
            )
            start = time.perf_counter()
            run_dir = args.output / f"seed{seed}" / (source if text == "embedding" else f"{source}-{text}")
            trainer = Trainer(model, recipe, train, splits["val"], run_dir, test_data=splits["test"],
                              device=args.device, progress=False)
            result = trainer.fit()
            test = result.test
            scores = {**{k: test["nlg"]["scores"][k] for k in NLG}, **ce_columns(test["ce"])}
            scores.update(seed=seed, best_epoch=result.best_epoch, seconds=time.perf_counter() - start)
            results[name].append(scores)
            times[name].append(scores["seconds"])
            print(f"  {name:7s} ({source}, {text}): " + " ".join(f"{k} {scores[k]:.4f}" for k in METRICS)
                  + f"  best epoch {result.best_epoch}, {scores['seconds']:.0f} s", flush=True)

    machine = describe(args.device)
    table = format_table(results, args.seeds)
    print(f"\nIU X-Ray test split ({len(splits['test'])} studies), rendered frontal views; "
          f"{machine}\n{table}")
    summary = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine,
               "results": results, "seconds": {k: sum(v) for k, v in times.items()}, "table": table}
    (args.output / "results.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")


def format_table(results: dict[str, list[dict]], seeds: list[int]) -> str:
    """A Markdown table: mean ± standard deviation over seeds of every metric."""
    lines = ["| model | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, runs in results.items():
        cells = []
        for metric in METRICS:
            values = [run[metric] for run in runs]
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            cells.append(f"{statistics.fmean(values):.3f}{spread}")
        label = name if len(runs) == 1 else f"{name} ({len(runs)} seeds)"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
