"""``cknet train``: train CKNet with a recipe, any setting given as ``--field value``
(`cknet.training.train`), or continue a run (``--resume``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cknet.cli.arguments import add_data_arguments, annotation_path, graph_argument


def fit_graph_model(model_config, overrides: dict, graph_model: Path) -> None:
    """What the graph model decides, taken from it unless the command line set it: the
    knowledge vectors' size (d_knowledge), and gamma at most its N + 1 knowledge vectors
    (lowered with a note when the recipe's is larger).

    Args:
        model_config: the recipe's `CKNetConfig`, changed in place.
        overrides: the ``--field value`` settings given.
        graph_model: the ``--graph-model`` folder.
    """
    from cknet.graph import KnowledgeGraph
    from cknet.modules.graph_model import CONFIG_FILE, GRAPH_FILE
    from cknet.persistence.module_folder import read_json

    architecture = read_json(graph_model / CONFIG_FILE, "a graph model's architecture")
    if "d_knowledge" not in overrides and isinstance(architecture, dict) and "d_knowledge" in architecture:
        model_config.d_knowledge = architecture["d_knowledge"]
    vectors = KnowledgeGraph.from_json(graph_model / GRAPH_FILE).num_nodes + 1
    if model_config.gamma > vectors and "gamma" not in overrides:
        print(f"note: gamma {model_config.gamma} lowered to {vectors}, the knowledge vectors of "
              f"{graph_model} (its {vectors - 1} nodes and the global node)", file=sys.stderr)
        model_config.gamma = vectors


def overrides(extra: Sequence[str]) -> dict:
    """``["--d-model", "256", "--flip", "true"]`` -> ``{"d_model": 256, "flip": True}``.

    Args:
        extra: the words the parser did not know, in ``--key value`` pairs.

    Raises:
        SystemExit: when they are not pairs.
    """
    if len(extra) % 2 or not all(k.startswith("--") for k in extra[::2]):
        raise SystemExit(f"error: settings must be given as --key value pairs, got {' '.join(extra)}")
    values = {}
    for key, text in zip(extra[::2], extra[1::2]):
        try:
            values[key[2:].replace("-", "_")] = json.loads(text)
        except json.JSONDecodeError:
            values[key[2:].replace("-", "_")] = text
    return values


def _start(args: argparse.Namespace, settings: dict, device):
    """A new run: the recipe with ``settings``, from ``--init`` or from the graph."""
    from cknet.training import apply_overrides, load_recipe, train

    model_config, training = apply_overrides(*load_recipe(args.config), settings)
    annotation = annotation_path(args)
    if args.init:
        model_fields = sorted(set(settings) & set(model_config.to_dict()))
        if model_fields or args.graph_model:
            raise SystemExit(f"error: with --init the model comes from {args.init}; only training "
                             f"settings can be set (got {model_fields or ['--graph-model']})")
        return train(None, training, annotation, args.output, image_dir=args.image_dir,
                     device=device, progress=not args.quiet, init=args.init)
    if args.graph_model:
        fit_graph_model(model_config, settings, args.graph_model)
    graph = None if args.graph_model else graph_argument(args.graph)
    return train(model_config, training, annotation, args.output, image_dir=args.image_dir,
                 graph=graph, graph_model=args.graph_model, device=device, progress=not args.quiet)


def run(args: argparse.Namespace, extra: Sequence[str]) -> int:
    from cknet.training import resume
    from cknet.training.distributed import process_group

    settings = overrides(extra)
    if not args.resume and args.output is None:
        raise SystemExit("error: give --output RUN_DIR")
    with process_group(args.device) as device:
        if args.resume:
            result = resume(args.resume, settings, device=device, progress=not args.quiet)
        else:
            result = _start(args, settings, device)
    if result.best_epoch:
        print(f"kept epoch {result.best_epoch}: {result.criterion}")
    if result.test is not None:
        print(f"test: BLEU-4 {result.test['bleu4']:.4f}, loss {result.test['loss']:.4f}")
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``cknet train`` on the command line's sub-parsers.

    Args:
        commands: the ``add_subparsers()`` object of the ``cknet`` parser.
    """
    tr = commands.add_parser(
        "train", help="train CKNet on an R2Gen-format dataset (resumable; torchrun for several GPUs)",
        description="Train with a recipe (iu_xray, mimic_cxr or a JSON file); any CKNetConfig or "
                    "TrainingConfig field can be set as --field value (e.g. --d-model 256 --epochs 5). "
                    "`cknet train --resume RUN_DIR` continues a run from its last checkpoint.",
    )
    tr.add_argument("--config", default="iu_xray", help="recipe: iu_xray, mimic_cxr or a JSON file")
    add_data_arguments(tr)
    tr.add_argument("--graph-model", type=Path, help="pretrained graph stage (cknet pretrain-graph)")
    tr.add_argument("--init", type=Path, metavar="MODEL_DIR",
                    help="start from a saved model, e.g. --stage scst --init RUN/best (its config, "
                         "tokenizer, graph and weights)")
    tr.add_argument("--output", type=Path, help="the run folder")
    tr.add_argument("--resume", type=Path, metavar="RUN_DIR")
    tr.add_argument("--device", default=None)
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(handler=run, takes_extra=True)
