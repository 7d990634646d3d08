"""``cknet prepare mimic-cxr | iu-xray | chexpert-plus``: a release as its owners publish
it -> a folder ``cknet train --data-dir`` reads (see `cknet.data.prepare`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cknet.cli.arguments import non_negative_int, positive_int


def run(args: argparse.Namespace) -> int:
    from cknet.data import prepare

    common = {
        "section": args.section,
        "image_size": args.image_size,
        "workers": args.workers,
        "progress": not args.quiet,
    }
    if args.dataset == "mimic-cxr":
        prepare.prepare_mimic_cxr(args.images, args.reports, args.output, **common)
    elif args.dataset == "iu-xray":
        prepare.prepare_iu_xray(args.reports, args.images, args.output, **common)
    else:
        prepare.prepare_chexpert_plus(
            args.csv, args.images, args.output, val_percent=args.val_percent, **common
        )
    return 0


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--output",
        type=Path,
        required=True,
        help="the folder to write: new, empty, or this same preparation to finish",
    )
    command.add_argument(
        "--section",
        choices=["findings", "impression", "both"],
        default="findings",
        help="the report text kept: FINDINGS (default; studies without one are left "
        "out), IMPRESSION, or both (findings then impression, whichever there is)",
    )
    command.add_argument(
        "--image-size",
        type=positive_int,
        help="write copies whose shorter side is this many pixels (e.g. 512: a few GB "
        "for MIMIC-CXR); default: read the images in place through a link",
    )
    command.add_argument(
        "--workers", type=non_negative_int, default=0, help="threads for the copies (default: one per CPU)"
    )
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(handler=run)


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``cknet prepare`` on the command line's sub-parsers.

    Args:
        commands: the ``add_subparsers()`` object of the ``cknet`` parser.
    """
    prepare = commands.add_parser(
        "prepare",
        help="turn a MIMIC-CXR, IU X-Ray or CheXpert Plus download into a dataset cknet trains on",
        description="Write annotation.json (R2Gen's layout and splits), the images, a label table, "
        "dropped.csv and PREPARED.md (sources, checksums, counts, rules) from the files "
        "as the dataset's owners publish them. Resumable: run it again to finish.",
    )
    datasets = prepare.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    mimic = datasets.add_parser("mimic-cxr", help="PhysioNet MIMIC-CXR-JPG with the MIMIC-CXR reports")
    mimic.add_argument(
        "--images",
        type=Path,
        required=True,
        help="the MIMIC-CXR-JPG folder: files/pNN/... and mimic-cxr-2.0.0-*.csv[.gz]",
    )
    mimic.add_argument(
        "--reports",
        type=Path,
        required=True,
        help="mimic-cxr-reports.zip or the folder it unpacks to (files/pNN/pSUBJECT/sSTUDY.txt)",
    )
    _common(mimic)
    iu = datasets.add_parser("iu-xray", help="the Open-i IU X-Ray release, R2Gen's split")
    iu.add_argument("--reports", type=Path, required=True, help="the ecgen-radiology folder of XML reports")
    iu.add_argument("--images", type=Path, required=True, help="the NLMCXR_png folder")
    _common(iu)
    plus = datasets.add_parser("chexpert-plus", help="Stanford AIMI CheXpert Plus, one image per report")
    plus.add_argument("--csv", type=Path, required=True, help="df_chexpert_plus_*.csv")
    plus.add_argument("--images", type=Path, required=True, help="the folder holding train/ and valid/")
    plus.add_argument(
        "--val-percent",
        type=non_negative_int,
        default=2,
        help="patients of the official train part given to validation, percent (default 2)",
    )
    _common(plus)
