"""The ``cknet`` command line: one module per sub-command (``add_command`` registers its
options, ``run`` does the job); `main` parses, dispatches and turns failures into one
line for people."""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
import zlib
from collections.abc import Sequence

from cknet.cli import (
    app,
    compare,
    config,
    demo,
    evaluate,
    explain,
    generate,
    label,
    prepare,
    pretrain_graph,
    train,
)
from cknet.registry import load_plugins
from cknet.version import __version__

# the sub-commands in the order ``cknet --help`` lists them
COMMANDS = (demo, config, pretrain_graph, train, prepare, generate, evaluate, compare, explain, label, app)


def build_parser() -> argparse.ArgumentParser:
    """The ``cknet`` argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="cknet", description="CKNet radiology report generation (Kang et al., BIBM 2023)."
    )
    parser.add_argument("--version", action="version", version=f"cknet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cknet`` console script; returns the exit status."""
    with warnings.catch_warnings():
        warnings.showwarning = _print_warning  # "warning: ..." lines, as the errors; restored after
        load_plugins()  # what installed packages register, before the choices are listed
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if extra and not getattr(args, "takes_extra", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        try:
            if getattr(args, "takes_extra", False):
                return args.handler(args, extra)
            return args.handler(args)
        except (ValueError, FileNotFoundError, FileExistsError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except (MemoryError, RecursionError, csv.Error, zlib.error, EOFError) as err:
            print(f"error: cknet {args.command}: {_describe_failure(err)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"interrupted: cknet {args.command} stopped{_resume_hint(args)}", file=sys.stderr)
            return 130


def _describe_failure(err: BaseException) -> str:
    """A failure of the machine or of a file's shape, said in words (never a bare name)."""
    if isinstance(err, MemoryError):
        return (f"out of memory ({err or 'no detail'}): an input or setting asks for more memory than "
                f"this machine has; use smaller inputs or settings")
    if isinstance(err, RecursionError):
        return ("an input file nests its data deeper than any real file (JSON or lists thousands of "
                "levels deep)")
    if isinstance(err, csv.Error):
        return f"an input CSV file cannot be read: {err}"
    return f"an input file is compressed data that is corrupt or cut short ({type(err).__name__}: {err})"


def _resume_hint(args: argparse.Namespace) -> str:
    """What a Ctrl-C means for a command, when it can be continued."""
    run = getattr(args, "resume", None) or getattr(args, "output", None)
    if args.command == "train" and run:
        return (f"; the run resumes exactly where its last checkpoint left it (an interrupted run and a "
                f"resumed one end with the same weights): cknet train --resume {run}")
    if args.command == "prepare":
        return "; run the same command again to finish (copies made are kept)"
    return ""


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning raised inside a command, as one line on standard error."""
    print(f"warning: {message}", file=sys.stderr)
