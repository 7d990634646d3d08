"""The ``cknet`` command line."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cknet


def _config(args: argparse.Namespace) -> int:
    from cknet.config import CKNetConfig

    preset = CKNetConfig.iu_xray() if args.dataset == "iu_xray" else CKNetConfig.mimic_cxr()
    sys.stdout.write(preset.to_json())
    return 0


def _studies_from_annotation(args: argparse.Namespace, num_views: int) -> list[dict]:
    with open(args.annotation, encoding="utf-8") as fh:
        annotation = json.load(fh)
    if not isinstance(annotation, dict) or not isinstance(annotation.get(args.split), list):
        raise SystemExit(f"error: {args.annotation} has no {args.split!r} split "
                         f"(expected an R2Gen annotation.json)")
    image_dir = Path(args.image_dir) if args.image_dir else Path(args.annotation).parent / "images"
    studies = []
    for entry in annotation[args.split]:
        paths = [image_dir / p for p in entry["image_path"]][:num_views]
        studies.append({"id": entry["id"], "views": paths, "reference": entry.get("report")})
    return studies


def _write_atomic(path: Path, text: str) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _generate(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from cknet.data.images import prepare_images
    from cknet.model import CKNet

    if not args.inputs and not args.annotation:
        raise SystemExit("error: give images or study folders, or --annotation FILE")
    output = Path(args.output) if args.output else None
    if output is not None:
        if output.suffix.lower() not in (".json", ".csv"):
            raise SystemExit(f"error: --output must end in .json or .csv, got {output}")
        if output.exists() and not args.overwrite:
            raise SystemExit(f"error: {output} exists; pass --overwrite to replace it")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    model = CKNet.from_pretrained(args.model, map_location=device).to(dtype).eval()
    if args.annotation:
        studies = _studies_from_annotation(args, model.config.num_views)
    else:
        studies = [{"id": str(p), "views": p, "reference": None} for p in args.inputs]
    records = []
    with tqdm(total=len(studies), desc="generating", unit="study", disable=args.quiet) as bar:
        for start in range(0, len(studies), args.batch_size):
            chunk = studies[start:start + args.batch_size]
            images = prepare_images([s["views"] for s in chunk], model.config,
                                    args.repeat_single_view, names=[s["id"] for s in chunk])
            texts = model.generate(
                images, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
                length_penalty=args.length_penalty, no_repeat_ngram_size=args.no_repeat_ngram_size,
            )
            for study, text in zip(chunk, texts):
                record = {"id": study["id"], "prediction": text}
                if study["reference"] is not None:
                    record["reference"] = study["reference"]
                records.append(record)
            bar.update(len(chunk))
    if output is None:
        for record in records:
            print(f"{record['id']}\t{record['prediction']}")
    elif output.suffix.lower() == ".json":
        _write_atomic(output, json.dumps(records, indent=1) + "\n")
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["id", "prediction", "reference"])
        writer.writeheader()
        writer.writerows(records)
        _write_atomic(output, buffer.getvalue())
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

    gen = commands.add_parser(
        "generate", help="write reports for images, study folders or an annotation split",
        description="Write a report for each study. A study is an image file, or a folder whose "
                    "images (sorted by name) are its views; or every study of --split in an "
                    "R2Gen annotation.json.",
    )
    gen.add_argument("inputs", nargs="*", type=Path, metavar="IMAGE_OR_STUDY_DIR")
    gen.add_argument("--model", required=True, help="directory written by save_pretrained, or a Hub id")
    gen.add_argument("--annotation", type=Path, help="R2Gen annotation.json")
    gen.add_argument("--split", default="test", help="split of --annotation (default: test)")
    gen.add_argument("--image-dir", type=Path,
                     help="root of the annotation's image paths (default: images/ beside it)")
    gen.add_argument("--num-beams", type=int, default=None, help="default: the model's (3)")
    gen.add_argument("--max-new-tokens", type=int, default=None)
    gen.add_argument("--length-penalty", type=float, default=0.0)
    gen.add_argument("--no-repeat-ngram-size", type=int, default=0)
    gen.add_argument("--batch-size", type=int, default=16)
    gen.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    gen.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    gen.add_argument("--repeat-single-view", action="store_true",
                     help="let one image fill every view of a multi-view model")
    gen.add_argument("--output", help="write JSON or CSV (id, prediction, reference) here")
    gen.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(handler=_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cknet`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, FileExistsError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
