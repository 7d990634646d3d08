"""How long the model-based metrics take on the CPU, with random models of the published
sizes (the real weights cannot be downloaded here; the speed depends on the sizes, not
on the values).

Scores N IU X-Ray test reports against the N following ones with each metric and prints
a table: BERTScore (distilroberta-base: 6 layers of 768), RadGraph F1 (a
PubMedBERT-base BERT: 12 layers of 768, and DyGIE++ heads of 150), RaTEScore (a
DeBERTa-v3-base tagger, an MPNet-base encoder; sentences split after periods, as medspaCy
is not installed here). ``--size tiny`` uses the tests' tiny models instead (a check that
the script runs).

    python benchmarks/model_metrics.py [--reports 100] [--size published|tiny] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from machine import describe

from cknet.metrics.bertscore import BERTScorer
from cknet.metrics.radgraph import RadGraph
from cknet.metrics.ratescore import RaTEScorer, period_sentences
from cknet.testing import make_tiny_radgraph, make_tiny_ratescore, make_tiny_roberta

ANNOTATION = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "data" / "iu_xray" / "annotation.json"
)
BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}


def published_bertscore(folder: Path) -> None:
    """distilroberta-base's size in the tiny model's folder (its tokenizer kept)."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        **BASE | {"num_hidden_layers": 6},
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    RobertaModel(config).save_pretrained(folder)


def published_ratescore(ner: Path, encoder: Path) -> None:
    """DeBERTa-v3-base's and MPNet-base's sizes in the tiny models' folders."""
    from transformers import (
        AutoConfig,
        DebertaV2Config,
        DebertaV2ForTokenClassification,
        MPNetConfig,
        MPNetModel,
    )

    labels = AutoConfig.from_pretrained(ner).id2label
    deberta = DebertaV2Config(
        vocab_size=128100,
        **BASE,
        relative_attention=True,
        position_buckets=256,
        pos_att_type=["p2c", "c2p"],
        max_relative_positions=-1,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        position_biased_input=False,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    DebertaV2ForTokenClassification(deberta).save_pretrained(ner)
    MPNetModel(MPNetConfig(vocab_size=30527, **BASE)).save_pretrained(encoder)


def parameters(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=100)
    parser.add_argument("--size", choices=["published", "tiny"], default="published")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = [s["report"] for s in json.loads(ANNOTATION.read_text())["test"]]
    references, predictions = test[: args.reports], test[args.reports : 2 * args.reports]
    train = [s["report"] for s in json.loads(ANNOTATION.read_text())["train"][:300]]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        roberta = make_tiny_roberta(train, root / "distilroberta-base")
        radgraph = make_tiny_radgraph(
            train,
            root / "radgraph",
            hidden=150 if args.size == "published" else 16,
            bert_size=BASE if args.size == "published" else None,
        )
        ner, encoder = make_tiny_ratescore(train, root / "ratescore")
        if args.size == "published":
            published_bertscore(roberta)
            published_ratescore(ner, encoder)
        scorers = {
            "BERTScore": lambda: BERTScorer(roberta, device="cpu"),
            "RadGraph F1": lambda: RadGraph(radgraph, device="cpu"),
            "RaTEScore": lambda: RaTEScorer(ner, encoder, split_sentences=period_sentences, device="cpu"),
        }
        print(describe())
        print(f"{args.reports} report pairs, {args.size} sizes, {args.threads} threads\n")
        print("| metric | parameters (M) | load, s | score, s | reports per s |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, make in scorers.items():
            start = time.perf_counter()
            scorer = make()
            loaded = time.perf_counter()
            scorer.score(references, predictions)
            done = time.perf_counter()
            models = [m for m in vars(scorer).values() if isinstance(m, torch.nn.Module)]
            size = sum(parameters(m) for m in models)
            print(
                f"| {name} | {size:.1f} | {loaded - start:.1f} | {done - loaded:.1f} | "
                f"{args.reports / (done - loaded):.1f} |"
            )


if __name__ == "__main__":
    main()
