"""Time of a backbone's eval-mode pass by images per trunk call (`Backbone.eval_chunk`).

    python benchmarks/eval_chunk.py [--backbone resnet101] [--images 32] [--size 224]
                                    [--chunks 2 4 8 16] [--repeats 3] [--threads 2]

Random weights and images; each chunk size is timed ``--repeats`` times, the sizes
interleaved, under ``torch.inference_mode``, after one warm-up pass; the median is
printed. The default chunk (None) takes as many images per call as hold
``EVAL_CHUNK_PIXELS``; its row says how many that is.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import describe

from cknet.modules.visual import Backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet101")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--chunks", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backbone = Backbone(args.backbone).eval()
    images = torch.randn(args.images, 1, 3, args.size, args.size)
    chunks: list[int | None] = [None, *args.chunks]
    times: dict[int | None, list[float]] = {chunk: [] for chunk in chunks}
    with torch.inference_mode():
        backbone(images)
        for _ in range(args.repeats):
            for chunk in chunks:
                backbone.eval_chunk = chunk
                start = time.perf_counter()
                backbone(images)
                times[chunk].append(time.perf_counter() - start)
    backbone.eval_chunk = None
    default = backbone.chunk_size(args.size, args.size)
    print(f"{args.backbone}, {args.images} images at {args.size} px, eval mode, median of {args.repeats}: "
          f"{describe('cpu')}\n")
    print("| images per call | seconds |")
    print("|---|---:|")
    for chunk, seconds in times.items():
        label = f"default (None: {default})" if chunk is None else str(chunk)
        print(f"| {label} | {statistics.median(seconds):.2f} |")


if __name__ == "__main__":
    main()
