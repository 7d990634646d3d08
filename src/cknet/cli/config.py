"""``cknet config``: print a dataset's `CKNetConfig` preset as JSON."""

from __future__ import annotations

import argparse
import sys

from cknet.cli.arguments import dataset_name


def run(args: argparse.Namespace) -> int:
    from cknet.config import CKNetConfig

    sys.stdout.write(CKNetConfig.preset(args.dataset).to_json())
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``cknet config`` on the command line's sub-parsers.

    Args:
        commands: the ``add_subparsers()`` object of the ``cknet`` parser.
    """
    config = commands.add_parser(
        "config", help="print CKNetConfig.<dataset>() as JSON: the paper's model with a random CNN "
                       "(the training recipe --config <dataset> adds ImageNet weights)")
    config.add_argument("dataset", type=dataset_name)
    config.set_defaults(handler=run)
