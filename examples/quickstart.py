"""Quickstart: build a small CKNet, run a forward pass, fit two studies, generate reports.

Runs offline on a CPU and prints how long fitting took. It uses the two IU X-Ray
sample studies and their reports from the repository's ``tests/fixtures/data`` when it is
there, and generated arrays with built-in reports otherwise:

    python examples/quickstart.py [--data-dir tests/fixtures/data] [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import cknet
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.report_text import readable_report

BUILT_IN_REPORTS = {
    "synthetic-normal": "The heart is normal in size. The lungs are clear. No pleural effusion "
                        "or pneumothorax.",
    "synthetic-effusion": "The heart is enlarged. There is a small right pleural effusion. No "
                          "pneumothorax.",
}


def load_studies(data_dir: Path) -> tuple[list, list[str], list[str]]:
    """Return (studies, reports, training reports for the vocabulary)."""
    samples = data_dir / "samples" / "iu_xray"
    annotation = data_dir / "iu_xray" / "annotation.json"
    if samples.is_dir() and annotation.is_file():
        entries = json.loads(annotation.read_text())["train"]
        by_id = {e["id"]: e["report"] for e in entries}
        folders = sorted(p for p in samples.iterdir() if p.name in by_id)
        print(f"Using {len(folders)} real IU X-Ray studies from {samples}")
        return folders, [by_id[p.name] for p in folders], [e["report"] for e in entries]
    print(f"{data_dir} not found: using generated images and built-in reports")
    rng = np.random.default_rng(0)
    studies = [[rng.integers(0, 256, (256, 256), dtype=np.uint8) for _ in range(2)]
               for _ in BUILT_IN_REPORTS]
    reports = list(BUILT_IN_REPORTS.values())
    return studies, reports, reports * 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "data"
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.manual_seed(0)

    studies, reports, vocabulary_reports = load_studies(args.data_dir)
    tokenizer = cknet.ReportTokenizer.from_reports(vocabulary_reports, dataset="iu_xray")
    # The paper's model is CKNetConfig.iu_xray() (DenseNet-121, d_model 512, 224 px);
    # a smaller one keeps this example fast on a CPU.
    config = cknet.CKNetConfig.iu_xray(
        backbone="resnet18", image_size=128, d_model=128, d_ff=256, num_heads=4,
        num_encoder_layers=2, num_decoder_layers=2, d_knowledge=64, dropout=0.0,
    )
    graph = cknet.KnowledgeGraph.openi40()
    # The knowledge-graph stage is left untrained here; on real data, pretrain it first
    # (`cknet pretrain-graph`, docs/knowledge_graph.md) and pass its folder instead.
    graph_model = KnowledgeGraphModel(graph, backbone="resnet18", d_knowledge=config.d_knowledge)
    model = cknet.CKNet(config, tokenizer=tokenizer, graph_model=graph_model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"CKNet with {trainable / 1e6:.1f}M trainable parameters, knowledge graph {graph}")

    images = cknet.prepare_images(studies, config)  # (B, 2, 3, 128, 128)
    input_ids, _ = tokenizer.encode_batch(reports)
    out = model(images, input_ids, labels=input_ids)
    print(f"Forward pass: images {tuple(images.shape)}, input_ids {tuple(input_ids.shape)} -> "
          f"logits {tuple(out.logits.shape)}, loss {out.loss.item():.3f}")

    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        optimizer.zero_grad()
        loss = model(images, input_ids, labels=input_ids).loss
        loss.backward()
        optimizer.step()
        if step % 20 == 0 or step == args.steps:
            print(f"  step {step:3d}  loss {loss.item():.4f}")
    print(f"Fitted {len(reports)} studies in {time.perf_counter() - start:.1f} s")

    # Beam search with 3 beams, as in the paper; paths, PIL images or arrays are preprocessed.
    generated = model.generate(studies)
    for reference, prediction in zip(reports, generated):
        print(f"\nreference: {readable_report(tokenizer.clean(reference))}\ngenerated: {prediction}")


if __name__ == "__main__":
    main()
