"""The ``cknet`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import cknet


def _config(args: argparse.Namespace) -> int:
    from cknet.config import CKNetConfig

    preset = CKNetConfig.iu_xray() if args.dataset == "iu_xray" else CKNetConfig.mimic_cxr()
    sys.stdout.write(preset.to_json())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cknet", description="CKNet radiology report generation (Kang et al., BIBM 2023)."
    )
    parser.add_argument("--version", action="version", version=f"cknet {cknet.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    config = commands.add_parser("config", help="print the paper's default config for a dataset as JSON")
    config.add_argument("dataset", choices=["iu_xray", "mimic_cxr"])
    config.set_defaults(handler=_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cknet`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
