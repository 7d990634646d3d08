"""The ``cknet`` command line."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

from cknet.commands import app as app_command
from cknet.commands import compare as compare_command
from cknet.commands import dataset_name
from cknet.commands import evaluate as evaluate_command
from cknet.commands import explain as explain_command
from cknet.commands import generate as generate_command
from cknet.commands import label as label_command
from cknet.commands import prepare as prepare_command
from cknet.registry import load_plugins
from cknet.version import __version__


def _config(args: argparse.Namespace) -> int:
    from cknet.config import CKNetConfig

    sys.stdout.write(CKNetConfig.preset(args.dataset).to_json())
    return 0


def _add_data_arguments(command: argparse.ArgumentParser) -> None:
    """The data options shared by `cknet pretrain-graph` and `cknet train`."""
    command.add_argument("--data-dir", type=Path, help="folder with annotation.json and images/")
    command.add_argument("--annotation", type=Path,
                         help="annotation.json (default: DATA_DIR/annotation.json)")
    command.add_argument("--image-dir", type=Path,
                         help="image root (default: images/ beside the annotation)")
    command.add_argument("--graph", default="openi40",
                         help="a registered graph (openi40, chexpert14, or one a cknet.plugins entry point "
                              "registers) or a graph JSON file")


def _annotation_path(args: argparse.Namespace) -> Path:
    if args.annotation is None and args.data_dir is None:
        raise SystemExit("error: give --data-dir or --annotation")
    return args.annotation or args.data_dir / "annotation.json"


def _graph_from_argument(value: str):
    from cknet.graph import GRAPHS, KnowledgeGraph

    return KnowledgeGraph.by_name(value) if value in GRAPHS else KnowledgeGraph.from_json(value)


def _pretrain_graph(args: argparse.Namespace) -> int:
    from cknet.training.graph_stage import GraphRun, pretrain_graph

    settings = GraphRun(
        dataset=args.dataset, backbone=args.backbone, backbone_weights=args.backbone_weights,
        image_size=args.image_size, d_knowledge=args.d_knowledge, num_gcn_layers=args.num_gcn_layers,
        epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, uncertain=args.uncertain, seed=args.seed,
        num_workers=args.num_workers, skip_invalid=args.skip_invalid,
    )
    pretrain_graph(_annotation_path(args), args.output, _graph_from_argument(args.graph), args.labels,
                   settings, image_dir=args.image_dir, device=args.device, overwrite=args.overwrite,
                   progress=not args.quiet)
    return 0


def _weights_argument(text: str) -> str | None:
    """``--backbone-weights``: ``none`` (or ``null``) for random weights, else as given."""
    return None if text.strip().lower() in ("none", "null", "") else text


def _fit_graph_model(model_config, overrides: dict, graph_model: Path) -> None:
    """What the graph model decides, taken from it unless the command line set it: the
    knowledge vectors' size (d_knowledge), and gamma at most its N + 1 knowledge vectors
    (lowered with a note when the recipe's is larger)."""
    from cknet.graph import KnowledgeGraph
    from cknet.modules.graph_model import CONFIG_FILE, GRAPH_FILE
    from cknet.saving import read_json

    architecture = read_json(graph_model / CONFIG_FILE, "a graph model's architecture")
    if "d_knowledge" not in overrides and isinstance(architecture, dict) and "d_knowledge" in architecture:
        model_config.d_knowledge = architecture["d_knowledge"]
    vectors = KnowledgeGraph.from_json(graph_model / GRAPH_FILE).num_nodes + 1
    if model_config.gamma > vectors and "gamma" not in overrides:
        print(f"note: gamma {model_config.gamma} lowered to {vectors}, the knowledge vectors of "
              f"{graph_model} (its {vectors - 1} nodes and the global node)", file=sys.stderr)
        model_config.gamma = vectors


def _overrides(extra: Sequence[str]) -> dict:
    """``["--d-model", "256", "--flip", "true"]`` -> ``{"d_model": 256, "flip": True}``."""
    if len(extra) % 2 or not all(k.startswith("--") for k in extra[::2]):
        raise SystemExit(f"error: settings must be given as --key value pairs, got {' '.join(extra)}")
    values = {}
    for key, text in zip(extra[::2], extra[1::2]):
        try:
            values[key[2:].replace("-", "_")] = json.loads(text)
        except json.JSONDecodeError:
            values[key[2:].replace("-", "_")] = text
    return values


def _train(args: argparse.Namespace, extra: Sequence[str]) -> int:
    from cknet.training import apply_overrides, load_recipe, resume, train
    from cknet.training.distributed import process_group

    overrides = _overrides(extra)
    if not args.resume and args.output is None:
        raise SystemExit("error: give --output RUN_DIR")
    with process_group(args.device) as device:
        if args.resume:
            result = resume(args.resume, overrides, device=device, progress=not args.quiet)
        else:
            model_config, training = apply_overrides(*load_recipe(args.config), overrides)
            annotation = _annotation_path(args)
            if args.init:
                model_fields = sorted(set(overrides) & set(model_config.to_dict()))
                if model_fields or args.graph_model:
                    raise SystemExit(f"error: with --init the model comes from {args.init}; only training "
                                     f"settings can be set (got {model_fields or ['--graph-model']})")
                result = train(None, training, annotation, args.output, image_dir=args.image_dir,
                               device=device, progress=not args.quiet, init=args.init)
            else:
                if args.graph_model:
                    _fit_graph_model(model_config, overrides, args.graph_model)
                graph = None if args.graph_model else _graph_from_argument(args.graph)
                result = train(model_config, training, annotation, args.output, image_dir=args.image_dir,
                               graph=graph, graph_model=args.graph_model, device=device,
                               progress=not args.quiet)
    if result.best_epoch:
        print(f"kept epoch {result.best_epoch}: {result.criterion}")
    if result.test is not None:
        print(f"test: BLEU-4 {result.test['bleu4']:.4f}, loss {result.test['loss']:.4f}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from cknet.demo import run_demo

    result = run_demo(args.output, full=args.full, seed=args.seed, device=args.device,
                      progress=not args.quiet, base=args.base)
    if args.min_ce_margin is not None and result.ce_margin < args.min_ce_margin:
        print(f"error: CE F1 margin over blank images is {result.ce_margin:.3f}, below the "
              f"required {args.min_ce_margin}", file=sys.stderr)
        return 3
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``cknet`` argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="cknet", description="CKNet radiology report generation (Kang et al., BIBM 2023)."
    )
    parser.add_argument("--version", action="version", version=f"cknet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    demo.set_defaults(handler=_demo)

    config = commands.add_parser(
        "config", help="print CKNetConfig.<dataset>() as JSON: the paper's model with a random CNN "
                       "(the training recipe --config <dataset> adds ImageNet weights)")
    config.add_argument("dataset", type=dataset_name)
    config.set_defaults(handler=_config)

    pre = commands.add_parser(
        "pretrain-graph", help="train the knowledge-graph stage (GCN + CNN) on an annotation's images",
        description="Pretrain a KnowledgeGraphModel on the train split of an R2Gen-format dataset "
                    "with node labels, keep the epoch with the best mean validation AUC, and save "
                    "it (with the static knowledge matrix) for CKNet(graph_model=OUTPUT).",
    )
    _add_data_arguments(pre)
    pre.add_argument("--dataset", type=dataset_name, default="iu_xray")
    pre.add_argument("--labels", default="keyword",
                     help="keyword (label the reports), mesh:FILE (IU X-Ray mesh_tags.csv) or "
                          "csv:FILE[@ID_COLUMN] (columns named like the graph's nodes)")
    pre.add_argument("--uncertain", type=int, choices=[0, 1], default=1,
                     help="uncertain labels count as 0 or 1 (default 1)")
    pre.add_argument("--backbone", default="densenet121")
    pre.add_argument("--backbone-weights", type=_weights_argument, default=None,
                     help="imagenet, a local state dict, or none (random; the default)")
    pre.add_argument("--image-size", type=int, default=224)
    pre.add_argument("--d-knowledge", type=int, default=512)
    pre.add_argument("--num-gcn-layers", type=int, default=2)
    pre.add_argument("--epochs", type=int, default=10)
    pre.add_argument("--batch-size", type=int, default=16)
    pre.add_argument("--lr", type=float, default=1e-4)
    pre.add_argument("--device", default=None)
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--num-workers", type=int, default=0)
    pre.add_argument("--skip-invalid", action="store_true", help="skip studies with unreadable images")
    pre.add_argument("--output", required=True, type=Path)
    pre.add_argument("--overwrite", action="store_true")
    pre.add_argument("--quiet", action="store_true")
    pre.set_defaults(handler=_pretrain_graph)

    tr = commands.add_parser(
        "train", help="train CKNet on an R2Gen-format dataset (resumable; torchrun for several GPUs)",
        description="Train with a recipe (iu_xray, mimic_cxr or a JSON file); any CKNetConfig or "
                    "TrainingConfig field can be set as --field value (e.g. --d-model 256 --epochs 5). "
                    "`cknet train --resume RUN_DIR` continues a run from its last checkpoint.",
    )
    tr.add_argument("--config", default="iu_xray", help="recipe: iu_xray, mimic_cxr or a JSON file")
    _add_data_arguments(tr)
    tr.add_argument("--graph-model", type=Path, help="pretrained graph stage (cknet pretrain-graph)")
    tr.add_argument("--init", type=Path, metavar="MODEL_DIR",
                    help="start from a saved model, e.g. --stage scst --init RUN/best (its config, "
                         "tokenizer, graph and weights)")
    tr.add_argument("--output", type=Path, help="the run folder")
    tr.add_argument("--resume", type=Path, metavar="RUN_DIR")
    tr.add_argument("--device", default=None)
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(handler=_train, takes_extra=True)

    for command in (prepare_command, generate_command, evaluate_command, compare_command, explain_command,
                    label_command, app_command):
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


if __name__ == "__main__":
    raise SystemExit(main())
