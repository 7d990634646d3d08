"""``cknet app``: a page to try a model (`cknet.app`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from cknet.app import serve

    print(f"cknet app: {args.model} on http://{args.host}:{args.port} (Ctrl-C stops it)")
    from cknet.data.images import IMAGE_SUFFIXES

    example = args.example
    if example and len(example) == 1 and example[0].is_dir():  # a study folder: its images by name
        example = sorted(p for p in example[0].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    serve(args.model, args.host, args.port, args.device, example)
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``cknet app`` on the command line's sub-parsers.

    Args:
        commands: the ``add_subparsers()`` object of the ``cknet`` parser.
    """
    app = commands.add_parser(
        "app", help="a page to try a model: drop a study's views, read the report and where it looked",
        description="Serve a page (Gradio; pip install \"cknet[app]\") where one study's views (PNG, JPEG, "
                    "DICOM) are dropped and the model's report, the picture of where each word looked, the "
                    "model's warnings and a JSON download come back. Offline; this machine only unless "
                    "--host says otherwise.",
    )
    app.add_argument("model", type=Path, help="a saved CKNet folder (e.g. cknet-demo/model)")
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    app.add_argument("--port", type=int, default=7860)
    app.add_argument("--device", default=None)
    app.add_argument("--example", nargs="+", type=Path,
                     help="a study (folder or image files) shown analysed when the page opens")
    app.set_defaults(handler=run)
