"""Time of one Adam step: torch's per-tensor, foreach and fused implementations.

    python benchmarks/optimizer.py [--threads 2] [--steps 12]

For the parameters the trainers update: the demo's report model (`cknet.demo.QUICK`:
d_model 128, 2 + 2 layers, the CNN shared with the graph stage and frozen) and the
graph stage's ResNet-18 + GCN. Gradients are random; the median step time of ``--steps``
steps is printed, with the largest difference of the parameters from the per-tensor
implementation's after those steps (float rounding only). `cknet.training.optimizer.adam`
takes the fused one wherever torch has its kernel.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import describe

from cknet import CKNet, ReportTokenizer
from cknet.data.synthetic import synthetic_graph
from cknet.demo import QUICK
from cknet.modules.graph_model import KnowledgeGraphModel

IMPLEMENTATIONS = {"per tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def parameter_sets() -> dict[str, list[torch.Tensor]]:
    torch.manual_seed(0)
    graph_model = KnowledgeGraphModel(synthetic_graph(), QUICK.backbone, QUICK.d_knowledge)
    config = QUICK.model_config()
    tokenizer = ReportTokenizer([f"word{i}" for i in range(69)])  # 73 tokens, the quick demo's count
    model = CKNet(config, tokenizer, graph_model=graph_model)
    return {"demo report model": [p for p in model.parameters() if p.requires_grad],
            "graph stage (ResNet-18 + GCN)": list(graph_model.parameters())}


def time_steps(parameters: list[torch.Tensor], options: dict, steps: int) -> tuple[float, torch.Tensor]:
    weights = [torch.nn.Parameter(p.detach().clone()) for p in parameters]
    optimizer = torch.optim.Adam(weights, lr=1e-3, **options)
    generator = torch.Generator().manual_seed(1)
    gradients = [[torch.randn(p.shape, generator=generator) for p in weights] for _ in range(3)]
    times = []
    for step in range(steps):
        for weight, gradient in zip(weights, gradients[step % 3]):
            weight.grad = gradient
        start = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), torch.cat([w.detach().flatten() for w in weights])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, parameters in parameter_sets().items():
        count = sum(p.numel() for p in parameters)
        reference = None
        for implementation, options in IMPLEMENTATIONS.items():
            seconds, result = time_steps(parameters, options, args.steps)
            reference = result if reference is None else reference
            difference = float((result - reference).abs().max())
            rows.append(f"| {name}, {count / 1e6:.2f} M | {implementation} | {seconds * 1e3:.1f} | "
                        f"{difference:.1e} |")
    print(f"Adam step, median of {args.steps}: {describe('cpu')}\n")
    print("| parameters | implementation | ms per step | max difference from per tensor |")
    print("|---|---|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
