"""What the `cknet` sub-commands share: argument types (`positive_int`, `dataset_name`,
`metric_set`, ...), the data options of the training commands, and the output check that
keeps a command from writing over or into its inputs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path


def _whole_number(text: str, minimum: int, expected: str) -> int:
    """``text`` as an int of at least ``minimum``, or an argparse error saying ``expected``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1, or a message saying what it got.

    Args:
        text: the command line's word.

    Returns:
        The number.
    """
    return _whole_number(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0, or a message saying what it got.

    Args:
        text: the command line's word.

    Returns:
        The number.
    """
    return _whole_number(text, 0, "a whole number of at least 0")


def check_output_file(path: str | os.PathLike[str], option: str, overwrite: bool,
                      suffixes: Sequence[str] = (), inputs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Refuse an output file before any work, naming the option at fault: a folder, an
    existing file without ``--overwrite``, a missing parent folder, a wrong suffix, or
    one of the command's own inputs or a file inside one of its input folders (a model
    folder, a study folder), whatever ``--overwrite`` says.

    Args:
        path: the output file.
        option: its option, for messages (e.g. ``"--output"``).
        overwrite: whether ``--overwrite`` was given.
        suffixes: the endings allowed (e.g. ``(".json", ".csv")``; empty: any).
        inputs: the files and folders the command reads, which it must never write over
            or into (see `input_paths`).

    Returns:
        The path.

    Raises:
        ValueError: for a folder, a wrong suffix or an input file.
        FileExistsError: for an existing file without ``overwrite``.
        FileNotFoundError: when the folder it would go in does not exist.
    """
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"{option} must end in {' or '.join(suffixes)}, got {path}")
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give the path of a file")
    target = path.resolve()
    for other in inputs:
        source = Path(other).resolve()
        if target == source:
            raise ValueError(f"{option} {path} is one of the command's inputs ({other}); write elsewhere")
        if source in target.parents:
            raise ValueError(f"{option} {path} lies inside the command's input {other}; write elsewhere")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder of {option} {path}, {path.parent}, does not exist")
    return path


def input_paths(*values: str | os.PathLike[str] | Sequence[str] | None) -> list[Path]:
    """The files and folders named by a command's input options, for `check_output_file`:
    paths, lists of paths, ``"chexbert:CKPT,BERT_DIR"`` and ``"NER,ENCODER"`` forms; what
    does not exist on disk (a labeler's name such as ``"rules"``, a hub id) is left out.

    Args:
        *values: option values (None for an option not given).
    """
    found = []
    for value in values:
        if value is None:
            continue
        items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
        for item in items:
            text = os.fspath(item)
            for part in [text, *text.removeprefix("chexbert:").split(",")]:
                if part and Path(part).expanduser().exists():
                    found.append(Path(part).expanduser())
    return found


def metric_set(text: str) -> list[str]:
    """``--metrics`` of `cknet evaluate` and `cknet compare` (one vocabulary): comma-separated
    names among nlg, ce and the model-based metrics, ``rexrank`` expanded.

    Args:
        text: the option's value.

    Raises:
        ValueError: for an unknown name, or none.
    """
    from cknet.metrics.model_based import MODEL_METRICS, REXRANK

    names: list[str] = []
    for name in (n.strip().lower() for n in text.split(",") if n.strip()):
        for item in REXRANK if name == "rexrank" else (name,):
            if item not in ("nlg", "ce", *MODEL_METRICS):
                raise ValueError(f"--metrics: unknown metric {item!r}; choose among nlg, ce, "
                                 f"{', '.join(MODEL_METRICS)} or rexrank")
            if item not in names:
                names.append(item)
    if not names:
        raise ValueError("--metrics names no metric")
    return names


def dataset_name(text: str) -> str:
    """``--dataset`` (and ``cknet config``'s dataset): a key of `cknet.config.DATASETS`,
    written with ``-`` or ``_`` (``iu-xray`` as ``cknet prepare`` names it, or ``iu_xray``).

    Args:
        text: the command line's word.

    Raises:
        argparse.ArgumentTypeError: for a name no preset has (they are listed).
    """
    from cknet.presets import DATASETS

    name = text.strip().lower().replace("-", "_")
    if name not in DATASETS:
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; choose among "
                                         f"{', '.join(sorted(DATASETS))} (- or _ alike)")
    return name


def comma_separated(text: str | None) -> list[str] | None:
    """The parts of an option such as ``--ratescore NER,ENCODER`` (None when not given).

    Args:
        text: the option's value.
    """
    return None if not text else [part.strip() for part in text.split(",") if part.strip()]


def add_data_arguments(command: argparse.ArgumentParser) -> None:
    """The data options shared by ``cknet pretrain-graph`` and ``cknet train``.

    Args:
        command: the sub-command's parser.
    """
    command.add_argument("--data-dir", type=Path, help="folder with annotation.json and images/")
    command.add_argument("--annotation", type=Path,
                         help="annotation.json (default: DATA_DIR/annotation.json)")
    command.add_argument("--image-dir", type=Path,
                         help="image root (default: images/ beside the annotation)")
    command.add_argument("--graph", default="openi40",
                         help="a registered graph (openi40, chexpert14, or one a cknet.plugins entry point "
                              "registers) or a graph JSON file")


def annotation_path(args: argparse.Namespace) -> Path:
    """The annotation file ``--annotation`` or ``--data-dir`` names.

    Args:
        args: the parsed options of a command that called `add_data_arguments`.

    Raises:
        SystemExit: when neither option was given.
    """
    if args.annotation is None and args.data_dir is None:
        raise SystemExit("error: give --data-dir or --annotation")
    return args.annotation or args.data_dir / "annotation.json"


def graph_argument(value: str):
    """``--graph``: a registered graph's name or a graph JSON file, as a `KnowledgeGraph`.

    Args:
        value: the option's value.
    """
    from cknet.graph import GRAPHS, KnowledgeGraph

    return KnowledgeGraph.by_name(value) if value in GRAPHS else KnowledgeGraph.from_json(value)


def weights_argument(text: str) -> str | None:
    """``--backbone-weights``: ``none`` (or ``null``) for random weights, else as given.

    Args:
        text: the option's value.
    """
    return None if text.strip().lower() in ("none", "null", "") else text
