"""Benchmark generation against its floor: one backbone pass per image, peak memory.

The setting of the maintainers' comparison with R2GenCMN: the paper's IU X-Ray
configuration with ResNet-101 and random weights, 16 two-view studies at 224 px (32
images), reports forced to 59 new tokens (R2GenCMN always decodes to its maximum), beam
3 and greedy. The floor is one plain torchvision ResNet-101 forward over the same 32
images: every image must pass a backbone once. Each row runs in a fresh process, so
that its peak resident memory is its own; its time is the median of ``--repeats``
calls after one warm-up call, under ``torch.inference_mode``.

    python benchmarks/encode_once.py [--backbone resnet101] [--threads 2] [--repeats 3]
                                     [--rows floor image-shared-beam3 ...]

Rows: the floor, and the floor with each CPU speed-up tried (channels-last memory
format, batch norm folded into the convolutions, ``torch.compile``); CKNet with the
``"image"`` knowledge source computing its maps twice (its own CNN and the graph
model's) or once (``share_backbone=True``), beam 3 and greedy; and the ``"static"``
source (no graph model at inference).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from machine import PeakMemory, describe
from shared_data import IU_XRAY

BATCH, VIEWS, SIZE, NEW_TOKENS = 16, 2, 224, 59
ROWS = ("floor", "floor-channels-last", "floor-folded-bn", "floor-compiled", "image-two-pass-beam3",
        "image-shared-beam3", "image-two-pass-greedy", "image-shared-greedy", "static-beam3")
LABELS = {
    "floor": "floor: torchvision CNN over the 32 images",
    "floor-channels-last": "floor, channels-last",
    "floor-folded-bn": "floor, batch norm folded into convolutions",
    "floor-compiled": "floor, torch.compile (first call not timed)",
    "image-two-pass-beam3": "CKNet 'image', two backbone passes, beam 3",
    "image-shared-beam3": "CKNet 'image', share_backbone, beam 3",
    "image-two-pass-greedy": "CKNet 'image', two backbone passes, greedy",
    "image-shared-greedy": "CKNet 'image', share_backbone, greedy",
    "static-beam3": "CKNet 'static', beam 3",
}


def floor_model(backbone: str, variant: str) -> torch.nn.Module:
    import torchvision

    model = torchvision.models.get_model(backbone, weights=None).eval()
    if variant == "channels-last":
        model = model.to(memory_format=torch.channels_last)
    elif variant == "folded-bn":
        from torch.fx.experimental.optimization import fuse

        model = fuse(model)
    elif variant == "compiled":
        model = torch.compile(model)
    return model


IU_ANNOTATION = IU_XRAY / "annotation.json"
# CKNet rows: knowledge source, share_backbone, beams
CKNET_ROWS = {
    "image-two-pass-beam3": ("image", False, 3), "image-shared-beam3": ("image", True, 3),
    "image-two-pass-greedy": ("image", False, 1), "image-shared-greedy": ("image", True, 1),
    "static-beam3": ("static", False, 3),
}


def cknet_call(backbone: str, source: str, shared: bool, beams: int):
    """A call generating the batch's reports with a random CKNet of the paper's IU shape."""
    import cknet

    if IU_ANNOTATION.is_file():
        tokenizer = cknet.ReportTokenizer.from_annotation(IU_ANNOTATION)
    else:
        tokenizer = cknet.ReportTokenizer([f"word{i}" for i in range(759)])  # the IU vocabulary's size
    config = cknet.CKNetConfig.iu_xray(backbone=backbone, knowledge_source=source, share_backbone=shared)
    model = cknet.CKNet(config, tokenizer).eval()
    images = torch.randn(BATCH, VIEWS, 3, SIZE, SIZE)
    return lambda: model.generate(images, num_beams=beams, max_new_tokens=NEW_TOKENS,
                                  min_new_tokens=NEW_TOKENS)


def run_row(row: str, backbone: str, repeats: int) -> dict:
    """Time one row in this process; returns its seconds and peak memory."""
    with PeakMemory() as peak:
        if row in CKNET_ROWS:
            call = cknet_call(backbone, *CKNET_ROWS[row])
        else:
            model = floor_model(backbone, row.removeprefix("floor").lstrip("-"))
            images = torch.randn(BATCH * VIEWS, 3, SIZE, SIZE)
            if row == "floor-channels-last":
                images = images.contiguous(memory_format=torch.channels_last)
            call = lambda: model(images)  # noqa: E731
        with torch.inference_mode():
            call()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
    return {"row": row, "seconds": statistics.median(times), "peak_gb": peak.gigabytes, "memory": peak.what}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet101")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.child:
        print(json.dumps(run_row(args.child, args.backbone, args.repeats)))
        return
    results = []
    for row in args.rows:
        command = [sys.executable, __file__, "--child", row, "--backbone", args.backbone,
                   "--threads", str(args.threads), "--repeats", str(args.repeats)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{row}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    floor = next((r["seconds"] for r in results if r["row"] == "floor"), None)
    print(f"encode-once benchmark: {args.backbone}, {BATCH} studies x {VIEWS} views at {SIZE} px, "
          f"{NEW_TOKENS} new tokens forced, median of {args.repeats}; {describe('cpu')}")
    print(f"| {'row':<48} | {'s per batch':>11} | {'x floor':>7} | {'peak RSS, GB':>12} |")
    print(f"|{'-' * 50}|{'-' * 13}|{'-' * 9}|{'-' * 14}|")
    for r in results:
        ratio = f"{r['seconds'] / floor:7.2f}" if floor else f"{'':7}"
        print(f"| {LABELS[r['row']]:<48} | {r['seconds']:11.2f} | {ratio} | {r['peak_gb']:12.2f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
