"""Benchmark training throughput: full backbone vs cached features.

The paper's IU X-Ray configuration (two 224 px views, DenseNet-121, d_model 512, 3 + 3
layers, the 763-token vocabulary, ``knowledge_source="image"``), batches of 16 studies
with reports of 60 tokens, Adam with the recipe's two parameter groups. "full" trains
the backbone (and runs the frozen graph model) at every step; "cached" trains on
backbone maps and node embeddings computed once (the cache fill is timed separately).

    python benchmarks/train.py [--backbone densenet121] [--threads 2] [--steps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import PeakMemory, describe
from shared_data import IU_XRAY

import cknet
from cknet.training import TrainingConfig
from cknet.training.optimizer import adam

IU_ANNOTATION = IU_XRAY / "annotation.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="densenet121")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if IU_ANNOTATION.is_file():
        tokenizer = cknet.ReportTokenizer.from_annotation(IU_ANNOTATION)
    else:
        tokenizer = cknet.ReportTokenizer([f"word{i}" for i in range(759)])
    config = cknet.CKNetConfig.iu_xray(backbone=args.backbone)
    model = cknet.CKNet(config, tokenizer).to(args.device).train()
    recipe = TrainingConfig()
    images = torch.randn(args.batch, 2, 3, 224, 224, device=args.device)
    input_ids = torch.randint(4, tokenizer.vocab_size, (args.batch, 60), device=args.device)
    input_ids[:, 0] = tokenizer.bos_id
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def optimizer() -> torch.optim.Optimizer:
        visual = [p for p in model.visual_extractor.parameters() if p.requires_grad]
        ids = {id(p) for p in visual}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": visual, "lr": recipe.lr_visual}, {"params": rest, "lr": recipe.lr_rest}]
        return adam(groups)

    def time_steps(step) -> float:
        step()
        sync()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    full_optimizer = optimizer()

    def full_step() -> None:
        full_optimizer.zero_grad()
        model(images, input_ids, labels=input_ids).loss.backward()
        full_optimizer.step()

    with PeakMemory(args.device) as full_peak:
        full = time_steps(full_step)

    model.visual_extractor.backbone.requires_grad_(False)
    start = time.perf_counter()
    with torch.no_grad():
        features = model.study_features(images)
    sync()
    fill = (time.perf_counter() - start) / args.batch
    cached_optimizer = optimizer()

    def cached_step() -> None:
        cached_optimizer.zero_grad()
        model(None, input_ids, labels=input_ids, features=features).loss.backward()
        cached_optimizer.step()

    with PeakMemory(args.device) as cached_peak:
        cached = time_steps(cached_step)
    print(f"cknet {cknet.__version__} training benchmark: {args.backbone}, batch {args.batch} x 2 views at "
          f"224 px, reports of 60 tokens; {describe(args.device)}")
    print()
    print(f"| mode | seconds per step | studies/s | {full_peak.what}, GB |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| full backbone (+ frozen graph model) | {full:.2f} | {args.batch / full:.2f} | "
          f"{full_peak.gigabytes:.2f} |")
    print(f"| cached features | {cached:.3f} | {args.batch / cached:.1f} | {cached_peak.gigabytes:.2f} |")
    print(f"\ncache fill: {fill * 1000:.0f} ms per study (once per dataset)")


if __name__ == "__main__":
    main()
