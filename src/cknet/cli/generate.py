"""``cknet generate``: reports for image files, study folders or an annotation split,
printed or written as JSON or CSV (id, prediction, reference), batch by batch, so that
what is done is kept when a later study fails."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from cknet.cli.arguments import check_output_file, input_paths, positive_int
from cknet.persistence.files import write_text_atomic


def studies_from_annotation(args: argparse.Namespace, num_views: int) -> list[dict]:
    from cknet.data.annotation import read_annotation

    annotation = read_annotation(args.annotation)
    if args.split not in annotation:
        raise SystemExit(f"error: {args.annotation} has no {args.split!r} split "
                         f"(it has {sorted(annotation)})")
    image_dir = Path(args.image_dir) if args.image_dir else Path(args.annotation).parent / "images"
    studies = []
    for entry in annotation[args.split]:
        paths = [image_dir / p for p in entry["image_path"]][:num_views]
        studies.append({"id": entry["id"], "views": paths, "reference": entry.get("report")})
    return studies


def studies_from_rexrank(test_set: dict, args: argparse.Namespace, num_views: int) -> list[dict]:
    from cknet.data.rexrank import rexrank_reference, rexrank_views

    image_dir = Path(args.image_dir) if args.image_dir else Path(args.rexrank).parent / "images"
    return [{"id": key, "views": [image_dir / p for p in rexrank_views(study, key, num_views)],
             "reference": rexrank_reference(study)}
            for key, study in test_set.items()]


def write_records(output: Path, records: list[dict], rexrank: dict | None = None) -> None:
    """Write generated reports as JSON or CSV (atomically); with a ReXrank test set, JSON
    is its studies done so far with their ``model_prediction`` (ReXrank's prediction file)."""
    if rexrank is not None and output.suffix.lower() == ".json":
        from cknet.data.rexrank import PREDICTION

        done = {r["id"]: r["prediction"] for r in records}
        studies = {key: {**study, PREDICTION: done[key]}
                   for key, study in rexrank.items() if key in done}
        write_text_atomic(output, json.dumps(studies, indent=4) + "\n")
        return
    if output.suffix.lower() == ".json":
        write_text_atomic(output, json.dumps(records, indent=1) + "\n")
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["id", "prediction", "reference"])
    writer.writeheader()
    writer.writerows(records)
    write_text_atomic(output, buffer.getvalue())


def _studies(args: argparse.Namespace, num_views: int) -> tuple[list[dict], dict | None]:
    """The studies the command's inputs name (``id``, ``views``, ``reference``), and the
    ReXrank test set when ``--rexrank`` gave one."""
    if args.annotation:
        return studies_from_annotation(args, num_views), None
    if args.rexrank:
        from cknet.data.rexrank import read_rexrank

        rexrank = read_rexrank(args.rexrank)
        return studies_from_rexrank(rexrank, args, num_views), rexrank
    return [{"id": str(p), "views": p, "reference": None} for p in args.inputs], None


def _readable(studies: list[dict], config, args: argparse.Namespace, kept: str,
              skipped: list[tuple[str, str]]) -> tuple[list[dict], list]:
    """The studies of a batch whose images read, and their image tensors; an unreadable
    one stops the command (``kept`` says what is saved) or, with ``--skip-bad-images``, is
    added to ``skipped``."""
    from cknet.data.images import prepare_images

    chunk, images = [], []
    for study in studies:
        try:
            images.append(prepare_images([study["views"]], config, args.repeat_single_view,
                                         names=[study["id"]])[0])
            chunk.append(study)
        except (ValueError, OSError) as err:
            if not args.skip_bad_images:
                raise ValueError(f"{err}{kept} (--skip-bad-images skips such studies)") from None
            skipped.append((study["id"], str(err)))
    return chunk, images


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from cknet.devices import resolve_device
    from cknet.model import CKNet

    if sum(map(bool, (args.inputs, args.annotation, args.rexrank))) != 1:
        raise SystemExit("error: give images or study folders, --annotation FILE or --rexrank FILE "
                         "(one of them)")
    output = None
    if args.output:
        inputs = input_paths(args.inputs, args.annotation, args.rexrank, args.image_dir, args.model)
        output = check_output_file(args.output, "--output", args.overwrite, (".json", ".csv"), inputs)
    device = resolve_device(args.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    model = CKNet.from_pretrained(args.model, map_location=device).to(dtype).eval()
    studies, rexrank = _studies(args, model.config.num_views)
    records: list[dict] = []
    skipped: list[tuple[str, str]] = []
    # the options given; the others are the model's (generation_config.json)
    given = {"num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens,
             "length_penalty": args.length_penalty, "no_repeat_ngram_size": args.no_repeat_ngram_size,
             "readable": False if args.tokenized else None, "trim_incomplete": args.trim_incomplete or None}
    options = {name: value for name, value in given.items() if value is not None}
    with tqdm(total=len(studies), desc="generating", unit="study", disable=args.quiet) as bar:
        for start in range(0, len(studies), args.batch_size):
            kept = f"; the {len(records)} reports before it are in {output}" if output and records else ""
            batch = studies[start:start + args.batch_size]
            chunk, images = _readable(batch, model.config, args, kept, skipped)
            if chunk:
                texts = model.generate(torch.stack(images), **options)
                for study, text in zip(chunk, texts):
                    record = {"id": study["id"], "prediction": text}
                    if study["reference"] is not None:
                        record["reference"] = study["reference"]
                    records.append(record)
                    if output is None:
                        print(f"{record['id']}\t{record['prediction']}")
                if output is not None:  # what is done is kept, batch by batch
                    write_records(output, records, rexrank)
            bar.update(len(batch))  # the last batch may be short
    if skipped:
        print(f"skipped {len(skipped)} of {len(studies)} studies with unreadable images:", file=sys.stderr)
        for _, reason in skipped[:20]:
            print(f"  {reason}", file=sys.stderr)
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``cknet generate`` on the command line's sub-parsers.

    Args:
        commands: the ``add_subparsers()`` object of the ``cknet`` parser.
    """
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
    gen.add_argument("--rexrank", type=Path, metavar="TEST.json",
                     help="a ReXrank test set (e.g. ReXRank_IUXray_test.json); a .json --output is then "
                          "ReXrank's prediction file (each study with its model_prediction)")
    gen.add_argument("--image-dir", type=Path,
                     help="root of the image paths of --annotation or --rexrank (default: images/ beside it)")
    gen.add_argument("--num-beams", type=int, default=None,
                     help="default (for every decoding option): the model's generation_config.json")
    gen.add_argument("--max-new-tokens", type=int, default=None)
    gen.add_argument("--length-penalty", type=float, default=None)
    gen.add_argument("--no-repeat-ngram-size", type=int, default=None)
    gen.add_argument("--tokenized", action="store_true",
                     help="write the tokenised form the metrics compare (lower case, punctuation split "
                          "off) instead of readable sentences")
    gen.add_argument("--trim-incomplete", action="store_true",
                     help="cut a report that stops mid-sentence back to its last full sentence")
    gen.add_argument("--batch-size", type=positive_int, default=16, help="studies per batch (default 16)")
    gen.add_argument("--skip-bad-images", action="store_true",
                     help="skip studies whose images are missing or unreadable, and say how many")
    gen.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    gen.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    gen.add_argument("--repeat-single-view", action="store_true",
                     help="let one image fill every view of a multi-view model")
    gen.add_argument("--output", help="write JSON or CSV (id, prediction, reference) here")
    gen.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(handler=run)
