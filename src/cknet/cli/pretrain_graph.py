"""``cknet pretrain-graph``: train the knowledge-graph stage on an R2Gen-format dataset
(`cknet.training.graph_stage.pretrain_graph`); every default is `GraphRun`'s."""

from __future__ import annotations

import argparse
from pathlib import Path

from cknet.cli.arguments import (
    add_data_arguments,
    annotation_path,
    dataset_name,
    graph_argument,
    weights_argument,
)

# the options that are `GraphRun` fields, by field name
SETTINGS = ("dataset", "backbone", "backbone_weights", "image_size", "d_knowledge", "num_gcn_layers",
            "epochs", "batch_size", "lr", "uncertain", "seed", "num_workers", "skip_invalid")
# the whole-number settings, each an option of the same name
WHOLE_NUMBERS = ("image_size", "d_knowledge", "num_gcn_layers", "epochs", "batch_size", "seed", "num_workers")


def run(args: argparse.Namespace) -> int:
    from cknet.training.graph_stage import GraphRun, pretrain_graph

    settings = GraphRun(**{name: getattr(args, name) for name in SETTINGS})
    pretrain_graph(annotation_path(args), args.output, graph_argument(args.graph), args.labels,
                   settings, image_dir=args.image_dir, device=args.device, overwrite=args.overwrite,
                   progress=not args.quiet)
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``cknet pretrain-graph`` on the command line's sub-parsers.

    Args:
        commands: the ``add_subparsers()`` object of the ``cknet`` parser.
    """
    from cknet.training.graph_stage import GraphRun

    defaults = GraphRun()
    pre = commands.add_parser(
        "pretrain-graph", help="train the knowledge-graph stage (GCN + CNN) on an annotation's images",
        description="Pretrain a KnowledgeGraphModel on the train split of an R2Gen-format dataset "
                    "with node labels, keep the epoch with the best mean validation AUC, and save "
                    "it (with the static knowledge matrix) for CKNet(graph_model=OUTPUT).",
    )
    add_data_arguments(pre)
    pre.add_argument("--dataset", type=dataset_name, default=defaults.dataset)
    pre.add_argument("--labels", default="keyword",
                     help="keyword (label the reports), mesh:FILE (IU X-Ray mesh_tags.csv) or "
                          "csv:FILE[@ID_COLUMN] (columns named like the graph's nodes)")
    pre.add_argument("--uncertain", type=int, choices=[0, 1], default=defaults.uncertain,
                     help=f"what an uncertain label (-1) counts as: 0 negative or 1 positive "
                          f"(default {defaults.uncertain}, as in evaluate and compare)")
    pre.add_argument("--backbone", default=defaults.backbone)
    pre.add_argument("--backbone-weights", type=weights_argument, default=defaults.backbone_weights,
                     help="imagenet, a local state dict, or none (random; the default)")
    for name in WHOLE_NUMBERS:
        pre.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    pre.add_argument("--lr", type=float, default=defaults.lr)
    pre.add_argument("--device", default=None)
    pre.add_argument("--skip-invalid", action="store_true", help="skip studies with unreadable images")
    pre.add_argument("--output", required=True, type=Path)
    pre.add_argument("--overwrite", action="store_true")
    pre.add_argument("--quiet", action="store_true")
    pre.set_defaults(handler=run)
