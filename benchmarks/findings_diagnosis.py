"""Where are the findings lost? Controlled runs on the IU X-Ray reports benchmark.

The setting of `benchmarks/iu_reports.py`: the real IU X-Ray reports of the standard
split, each with a frontal view rendered from its MeSH indexing; a ResNet-18 graph stage
on the 17-node synthetic graph; small report models trained with cknet's `Trainer` on
the graph stage's frozen, cached features. Each run changes one thing:

- the knowledge source: none (Base), random (+MEN), image (+CKNet), and two *oracles*,
  diagnostics only, never results: ``oracle-truth`` (row n of G is +e_n when the
  rendered image shows finding n and -e_n when not, e_n fixed random vectors of the
  graph stage's scale) and ``oracle-probs`` (the same scaled by 2p - 1, p the graph
  stage's probability);
- the recipe: epochs, learning rate, label smoothing, dropout, model size,
  finding-balanced sampling, the self-critical stage with the clinical reward.

Every epoch logs the validation loss, BLEU-4 and CE (the built-in CheXpert labeler;
F1 over the 13 findings without "No Finding"). The kept model (by ``--select-by``) is
then scored on the validation split under several decodings. Only the validation split
is scored here: choices are made on it; the test split is for the final models of
`benchmarks/iu_reports.py`.

    python benchmarks/findings_diagnosis.py --runs image oracle-truth --seeds 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from iu_reports import DATA, load_splits
from machine import describe
from torch.utils.data import Dataset

from cknet import (
    CKNet,
    CKNetConfig,
    GenerationConfig,
    KnowledgeSource,
    ReportTokenizer,
    register_knowledge_source,
)
from cknet.data.synthetic import FINDINGS, synthetic_graph
from cknet.evaluation import evaluate
from cknet.knowledge import GraphModelKnowledge, RandomKnowledge
from cknet.labeler import CheXpertLabeler
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.training import GraphPretrainer, Trainer, TrainingConfig, seed_everything

# name: what differs from DEFAULTS
RUNS = {
    "base": {"source": "none"},
    "random": {"source": "random"},
    "image": {"source": "image"},
    "oracle-truth": {"source": "oracle-truth"},
    "oracle-probs": {"source": "oracle-probs"},
    "image-30ep": {"source": "image", "epochs": 30},
    "image-constant-lr": {"source": "image", "final_lr_factor": 1.0},
    "image-lr3e-3": {"source": "image", "lr": 3e-3, "final_lr_factor": 1.0},
    "image-lr3e-4": {"source": "image", "lr": 3e-4, "epochs": 30},
    "image-smooth": {"source": "image", "label_smoothing": 0.1},
    "image-dropout3": {"source": "image", "dropout": 0.3},
    "image-d256": {"source": "image", "d_model": 256},
    "image-balanced": {"source": "image", "finding_balance": 0.5},
    "image-lr3e-3-30ep": {"source": "image", "lr": 3e-3, "final_lr_factor": 1.0, "epochs": 30},
    "image-lr3e-3-balanced": {"source": "image", "lr": 3e-3, "final_lr_factor": 1.0, "finding_balance": 0.5},
    "image-lr3e-3-balanced8": {"source": "image", "lr": 3e-3, "final_lr_factor": 1.0, "finding_balance": 0.8},
    "image-lr5e-3": {"source": "image", "lr": 5e-3, "final_lr_factor": 1.0},
    "base-lr3e-3": {"source": "none", "lr": 3e-3, "final_lr_factor": 1.0},
    "oracle-truth-lr3e-3": {"source": "oracle-truth", "lr": 3e-3, "final_lr_factor": 1.0},
    "base-balanced": {"source": "none", "finding_balance": 0.5},
    "oracle-truth-balanced": {"source": "oracle-truth", "finding_balance": 0.5},
    "oracle-truth-lr3e-3-balanced8": {"source": "oracle-truth", "lr": 3e-3, "final_lr_factor": 1.0,
                                      "finding_balance": 0.8},
    "image-scst": {"source": "image", "scst_from": "image"},
    "image-balanced-scst": {"source": "image", "scst_from": "image-balanced"},
}
DEFAULTS = {"epochs": 15, "lr": 1e-3, "final_lr_factor": 0.1, "label_smoothing": 0.0, "dropout": 0.1,
            "d_model": 128, "layers": 2, "finding_balance": 0.0, "batch_size": 32, "scst_from": None,
            "scst_epochs": 8, "scst_lr": 5e-5, "scst_samples": 4, "scst_nlg_weight": 0.5}
DECODINGS = {"beam 3": GenerationConfig(num_beams=3), "greedy": GenerationConfig(num_beams=1),
             "beam 3, length penalty 1": GenerationConfig(num_beams=3, length_penalty=1.0),
             "sampling, T 0.7": GenerationConfig(do_sample=True, temperature=0.7)}


class Features(Dataset):
    """A split as cached features: the frozen graph stage's backbone maps, node
    embeddings (or an oracle's G) and the reports; served like `FeatureCache`'s items."""

    def __init__(self, ids, reports, maps, knowledge, truth, probs) -> None:
        self.ids, self.texts, self.maps, self.knowledge = ids, reports, maps, knowledge
        self.truth, self.probs = truth, probs

    @classmethod
    def compute(cls, graph_model: KnowledgeGraphModel, data, batch_size: int = 64) -> Features:
        maps, nodes, probs = [], [], []
        graph_model.eval()
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                rows = range(start, min(start + batch_size, len(data)))
                images = torch.stack([data[i]["images"] for i in rows])
                batch_maps = graph_model.backbone(images)
                out = graph_model.encoder(batch_maps)
                maps.append(batch_maps.half())
                nodes.append(out.node_embeddings)
                probs.append(out.logits.sigmoid())
        return cls(data.study_ids(), data.reports(), torch.cat(maps), torch.cat(nodes),
                   torch.as_tensor(data.label_matrix(), dtype=torch.float32), torch.cat(probs))

    def with_knowledge(self, knowledge: torch.Tensor | None) -> Features:
        return Features(self.ids, self.texts, self.maps, knowledge, self.truth, self.probs)

    def reports(self) -> list[str]:
        return list(self.texts)

    def study_ids(self) -> list[str]:
        return list(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        knowledge = None if self.knowledge is None else self.knowledge[index]
        return {"id": self.ids[index], "report": self.texts[index], "maps": self.maps[index],
                "knowledge": knowledge}


@register_knowledge_source
class GivenKnowledge(KnowledgeSource):
    """A per-study G computed outside the model (the oracles): always passed in."""

    name = "given"
    per_study = True

    def forward(self, images=None):
        raise ValueError("this source's G is computed outside the model and passed with the features")


def oracle(features: Features, kind: str, directions: torch.Tensor) -> torch.Tensor:
    """G whose row n is (2y_n - 1) e_n: y the rendered truth or the graph stage's probability."""
    signs = 2 * (features.truth if kind == "oracle-truth" else features.probs) - 1  # (B, N)
    rows = signs[:, :, None] * directions[1:]
    return torch.cat([rows.mean(dim=1, keepdim=True), rows], dim=1)


def build_model(settings: dict, tokenizer, graph_model, feats: dict[str, Features], seed: int):
    """The model and the train / val feature sets for a run's knowledge source."""
    d = settings["d_model"]
    config = CKNetConfig.iu_xray(
        backbone="resnet18", image_size=96, num_views=1, d_model=d, d_ff=2 * d, num_heads=4,
        num_encoder_layers=settings["layers"], num_decoder_layers=settings["layers"], d_knowledge=64,
        gamma=8, dropout=settings["dropout"], knowledge_source="none",
    )
    source, graph = settings["source"], synthetic_graph()
    train, val = feats["train"], feats["val"]
    if source == "none":
        return CKNet(config, tokenizer, graph), train.with_knowledge(None), val.with_knowledge(None)
    if source == "random":
        knowledge = RandomKnowledge(graph.num_nodes + 1, 64)
        return CKNet(config, tokenizer, graph, knowledge_source=knowledge), train.with_knowledge(None), \
            val.with_knowledge(None)
    if source == "image":
        knowledge = GraphModelKnowledge(graph_model)
        return CKNet(config, tokenizer, graph, knowledge_source=knowledge), train, val
    scale = float(train.knowledge.norm(dim=-1).mean())  # oracle rows as long as the graph stage's
    directions = torch.nn.functional.normalize(
        torch.randn(graph.num_nodes + 1, 64, generator=torch.Generator().manual_seed(seed)), dim=-1) * scale
    model = CKNet(config, tokenizer, graph, knowledge_source=GivenKnowledge(graph.num_nodes + 1, 64))
    return model, train.with_knowledge(oracle(train, source, directions)), \
        val.with_knowledge(oracle(val, source, directions))


def attention_by_finding(model: CKNet, val: Features, tokenizer) -> dict:
    """For the finding words of the validation references, the mean equation-(6) weight
    their tokens put on the finding's own graph node(s), in studies whose image shows
    the finding vs studies whose image does not."""
    words = {"effusion": ["left pleural effusion", "right pleural effusion"],
             "cardiomegaly": ["cardiomegaly"],
             "atelectasis": ["left atelectasis", "right atelectasis"],
             "opacity": ["left lung opacity", "right lung opacity"], "pacemaker": ["support devices"],
             "granuloma": ["calcified granuloma"], "scoliosis": ["scoliosis"]}
    ids, _ = tokenizer.encode_batch(val.reports())
    with torch.no_grad():
        projection = model.cross_modal.project_knowledge(val.knowledge.float())
        weights = model.cross_modal.attention(model.text_features(ids), projection).mean(dim=1)  # (B, T, M)
    out = {}
    for word, nodes in words.items():
        if word not in tokenizer.token_to_id:
            continue
        columns = [1 + FINDINGS.index(n) for n in nodes]
        at_word = ids == tokenizer.token_to_id[word]
        shows = val.truth[:, [c - 1 for c in columns]].any(dim=1)
        on_node = weights[..., columns].sum(-1)
        pos, neg = on_node[at_word & shows[:, None]], on_node[at_word & ~shows[:, None]]
        uniform = len(columns) / weights.shape[-1]
        out[word] = {"image shows it": [round(float(pos.mean()), 4) if len(pos) else None, int(len(pos))],
                     "image does not": [round(float(neg.mean()), 4) if len(neg) else None, int(len(neg))],
                     "uniform": round(uniform, 4)}
    return out


def run(name: str, settings: dict, seed: int, feats, tokenizer, graph_model, output: Path, select_by: str,
        log) -> dict:
    seed_everything(seed)
    model, train, val = build_model(settings, tokenizer, graph_model, feats, seed)
    epochs = settings["epochs"]
    recipe = TrainingConfig(
        epochs=epochs, batch_size=settings["batch_size"], lr_visual=settings["lr"], lr_rest=settings["lr"],
        lr_decay=settings["final_lr_factor"] ** (1 / epochs), seed=seed, num_workers=0, eval_batch_size=128,
        patience=epochs, select_by=select_by, label_smoothing=settings["label_smoothing"],
        finding_balance=settings["finding_balance"],
    )
    run_dir = output / f"seed{seed}" / name
    if settings["scst_from"]:  # start from the XE run's kept model, then the self-critical stage
        start = CKNet.from_pretrained(output / f"seed{seed}" / settings["scst_from"] / "best")
        model.load_state_dict(start.state_dict())
        epochs = settings["scst_epochs"]
        recipe = TrainingConfig(**{**recipe.to_dict(), "epochs": epochs, "patience": epochs, "stage": "scst",
                                   "lr_visual": settings["scst_lr"], "lr_rest": settings["scst_lr"],
                                   "lr_decay": 1.0, "finding_balance": 0.0,
                                   "scst_samples": settings["scst_samples"],
                                   "scst_nlg_weight": settings["scst_nlg_weight"]})
    start_time = time.perf_counter()
    result = Trainer(model, recipe, train, val, run_dir, device="cpu", progress=False).fit()
    seconds = time.perf_counter() - start_time
    for record in result.history:
        log(f"  {name} seed {seed} epoch {record['epoch']}: "
            f"loss {record['train_loss']:.3f}/{record['val_loss']:.3f} "
            f"BLEU-4 {record['val_bleu4']:.3f} CE-findings F1 {record['val_ce_findings_f1']:.3f}"
            + (f" reward {record['train_reward']:.3f} (greedy {record['train_greedy_reward']:.3f})"
               if "train_reward" in record else ""))
    history = result.history
    kept = {"bleu4": max(history, key=lambda r: r["val_bleu4"])["epoch"],
            "ce_findings": max(history, key=lambda r: (r["val_ce_findings_f1"], r["val_bleu4"]))["epoch"],
            "loss": min(history, key=lambda r: r["val_loss"])["epoch"]}
    best = CKNet.from_pretrained(run_dir / "best")
    labeler = CheXpertLabeler()
    decodings = {}
    for label, options in DECODINGS.items():
        torch.manual_seed(seed)
        scores = evaluate(best, val, options, batch_size=128, labeler=labeler).scores
        decodings[label] = {k: scores[k] for k in ("bleu4", "ce_f1", "ce_findings_f1")}
    summary = {"name": name, "seed": seed, "settings": settings, "select_by": select_by, "history": history,
               "kept_epoch": result.best_epoch, "epoch_kept_by": kept, "decodings": decodings,
               "seconds": seconds, "machine": describe()}
    if best.cross_modal is not None:
        summary["attention"] = attention_by_finding(best, val, tokenizer)
    log(f"{name} seed {seed}: kept epoch {result.best_epoch} ({select_by}); epochs kept by each rule {kept}; "
        + "; ".join(f"{k}: BLEU-4 {v['bleu4']:.3f} CE-findings {v['ce_findings_f1']:.3f}"
                    for k, v in decodings.items()) + f"; {seconds:.0f} s")
    return summary


def table(results: list[dict]) -> str:
    """Mean (and spread over seeds) of the kept model's validation scores per run."""
    lines = ["| run | seeds | kept epoch | BLEU-4 (beam 3) | CE F1 findings: beam 3 | greedy | "
             "length penalty 1 | sampling T 0.7 | best epoch CE-findings | epoch BLEU-4 keeps |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    names = list(dict.fromkeys(r["name"] for r in results))
    for name in names:
        runs = [r for r in results if r["name"] == name]

        def cell(values):
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            return f"{statistics.fmean(values):.3f}{spread}"

        ce = {k: [r["decodings"][k]["ce_findings_f1"] for r in runs] for k in DECODINGS}
        best_ce = [max(h["val_ce_findings_f1"] for h in r["history"]) for r in runs]
        lines.append(f"| {name} | {len(runs)} | {', '.join(str(r['kept_epoch']) for r in runs)} | "
                     f"{cell([r['decodings']['beam 3']['bleu4'] for r in runs])} | "
                     + " | ".join(cell(ce[k]) for k in DECODINGS) + f" | {cell(best_ce)} | "
                     f"{', '.join(str(r['epoch_kept_by']['bleu4']) for r in runs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["base", "image", "oracle-truth"], choices=list(RUNS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--select-by", default="ce_findings",
                        choices=["bleu4", "loss", "ce_findings", "bleu4+ce_findings"])
    parser.add_argument("--output", type=Path, default=Path("runs/findings_diagnosis"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override a setting of every run, e.g. epochs=2 (for a smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    log_file = open(args.output / "log.txt", "a", encoding="utf-8")

    def log(line: str) -> None:
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    config = CKNetConfig.iu_xray(backbone="resnet18", image_size=96, num_views=1)
    splits = load_splits(DATA, config)
    tokenizer = ReportTokenizer.from_reports(splits["train"].reports())
    log(f"findings diagnosis on {describe()}; runs {args.runs}, seeds {args.seeds}, "
        f"select by {args.select_by}")
    results = []
    for seed in args.seeds:
        graph_dir = args.output / f"seed{seed}" / "graph"
        if (graph_dir / "graph_model.safetensors").is_file():
            graph_model = KnowledgeGraphModel.from_pretrained(graph_dir)
        else:
            seed_everything(seed)
            graph_model = KnowledgeGraphModel(synthetic_graph(), "resnet18", 64)
            fitted = GraphPretrainer(graph_model, epochs=4, batch_size=32, lr=1e-3, seed=seed).fit(
                splits["train"], splits["val"])
            graph_model.save_pretrained(graph_dir)
            log(f"seed {seed}: graph stage mean validation AUC {fitted.best.mean_auc:.3f}")
        feats = {s: Features.compute(graph_model, splits[s]) for s in ("train", "val")}
        for name in args.runs:
            out = args.output / f"seed{seed}" / f"{name}.json"
            if not out.is_file():
                settings = {**DEFAULTS, **RUNS[name], **overrides}
                summary = run(name, settings, seed, feats, tokenizer, graph_model, args.output,
                              args.select_by, log)
                out.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
            results.append(json.loads(out.read_text(encoding="utf-8")))
    log(f"\nIU X-Ray validation split, kept by {args.select_by}; {describe()}\n{table(results)}")
    log(json.dumps({r["name"]: r.get("attention") for r in results if r["seed"] == args.seeds[0]}, indent=1))


if __name__ == "__main__":
    main()
