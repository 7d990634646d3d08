"""``cknet demo``: the whole method on synthetic radiographs (`cknet.demo.run_demo`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from cknet.demo import run_demo

    result = run_demo(args.output, full=args.full, seed=args.seed, device=args.device,
                      progress=not args.quiet, base=args.base)
    if args.min_ce_margin is not None and result.ce_margin < args.min_ce_margin:
        print(f"error: CE F1 margin over blank images is {result.ce_margin:.3f}, below the "
              f"required {args.min_ce_margin}", file=sys.stderr)
        return 3
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``cknet demo`` on the command line's sub-parsers.

    Args:
        commands: the ``add_subparsers()`` object of the ``cknet`` parser.
    """
    demo = commands.add_parser(
        "demo", help="the whole method on synthetic radiographs, no data or download needed",
        description="Render synthetic radiographs with known findings, pretrain the knowledge graph, "
                    "train a small CKNet, write and score reports for held-out studies (and for "
                    "blank images, as a control), save the model and a picture of one study. "
                    "It takes about 1.5 minutes on 2 cores of an Intel Xeon and up to 5 on slower "
                    "CPUs; --full about four times that.",
    )
    demo.add_argument("--full", action="store_true",
                      help="larger images, four times the studies: a stronger model, four times the time")
    demo.add_argument("--output", type=Path, default=Path("cknet-demo"),
                      help="folder for the model, the picture and cknet-demo.json (default: cknet-demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--base", action="store_true",
                      help="also train Base (no knowledge matrix) on the same studies and print it beside "
                           "CKNet, with its blank-image control: what the knowledge path adds")
    demo.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    demo.add_argument("--min-ce-margin", type=float, default=None,
                      help="exit with status 3 if CE F1 on images minus CE F1 on blank images is lower")
    demo.add_argument("--quiet", action="store_true", help="print nothing")
    demo.set_defaults(handler=run)
