"""The ``cknet`` sub-commands that hold more than a few lines: each module registers its
arguments (``add_command``) and runs the command (``run``); `cknet.cli` parses and
dispatches."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1, or a message saying what it got.

    Args:
        text: the command line's word.

    Returns:
        The number.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
