"""The ``cknet`` command line."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cknet.io import write_text_atomic
from cknet.registry import load_plugins
from cknet.version import __version__


def _config(args: argparse.Namespace) -> int:
    from cknet.config import CKNetConfig

    sys.stdout.write(CKNetConfig.preset(args.dataset).to_json())
    return 0


def _studies_from_annotation(args: argparse.Namespace, num_views: int) -> list[dict]:
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


def _write_records(output: Path, records: list[dict]) -> None:
    """Write generated reports as JSON or CSV (atomically)."""
    if output.suffix.lower() == ".json":
        write_text_atomic(output, json.dumps(records, indent=1) + "\n")
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["id", "prediction", "reference"])
    writer.writeheader()
    writer.writerows(records)
    write_text_atomic(output, buffer.getvalue())


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
        if output.is_dir():
            raise SystemExit(f"error: --output {output} is a folder; give the path of a .json or .csv file")
        if output.exists() and not args.overwrite:
            raise SystemExit(f"error: {output} exists; pass --overwrite to replace it")
        if not output.parent.is_dir():
            raise SystemExit(f"error: the folder of --output, {output.parent}, does not exist")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    model = CKNet.from_pretrained(args.model, map_location=device).to(dtype).eval()
    if args.annotation:
        studies = _studies_from_annotation(args, model.config.num_views)
    else:
        studies = [{"id": str(p), "views": p, "reference": None} for p in args.inputs]
    records: list[dict] = []
    skipped: list[tuple[str, str]] = []
    with tqdm(total=len(studies), desc="generating", unit="study", disable=args.quiet) as bar:
        for start in range(0, len(studies), args.batch_size):
            chunk, images = [], []
            for study in studies[start:start + args.batch_size]:
                try:
                    images.append(prepare_images([study["views"]], model.config, args.repeat_single_view,
                                                 names=[study["id"]])[0])
                    chunk.append(study)
                except (ValueError, OSError) as err:
                    if not args.skip_bad_images:
                        kept = f"; the {len(records)} reports before it are in {output}" \
                            if output is not None and records else ""
                        raise ValueError(f"{err}{kept} (--skip-bad-images skips such studies)") from None
                    skipped.append((study["id"], str(err)))
            if chunk:
                texts = model.generate(
                    torch.stack(images), num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
                    length_penalty=args.length_penalty, no_repeat_ngram_size=args.no_repeat_ngram_size,
                )
                for study, text in zip(chunk, texts):
                    record = {"id": study["id"], "prediction": text}
                    if study["reference"] is not None:
                        record["reference"] = study["reference"]
                    records.append(record)
                    if output is None:
                        print(f"{record['id']}\t{record['prediction']}")
                if output is not None:  # what is done is kept, batch by batch
                    _write_records(output, records)
            bar.update(len(studies[start:start + args.batch_size]))  # the last batch may be short
    if skipped:
        print(f"skipped {len(skipped)} of {len(studies)} studies with unreadable images:", file=sys.stderr)
        for _, reason in skipped[:20]:
            print(f"  {reason}", file=sys.stderr)
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
    from cknet.training.graph_pretrain import GraphRun, pretrain_graph

    settings = GraphRun(
        dataset=args.dataset, backbone=args.backbone, backbone_weights=args.backbone_weights,
        image_size=args.image_size, d_knowledge=args.d_knowledge, gcn_layers=args.gcn_layers,
        epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, uncertain=args.uncertain, seed=args.seed,
        num_workers=args.num_workers, skip_invalid=args.skip_invalid,
    )
    pretrain_graph(_annotation_path(args), args.output, _graph_from_argument(args.graph), args.labels,
                   settings, image_dir=args.image_dir, device=args.device, overwrite=args.overwrite,
                   progress=not args.quiet)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cknet.evaluation import read_records, score_reports
    from cknet.labeler import OBSERVATIONS, make_labeler

    output = Path(args.output) if args.output else None
    for path in (output, args.per_report):
        if path is not None and Path(path).exists() and not args.overwrite:
            raise SystemExit(f"error: {path} exists; pass --overwrite to replace it")
        if path is not None and not Path(path).parent.is_dir():
            raise SystemExit(f"error: the folder of {path}, {Path(path).parent}, does not exist")
    if args.references:
        predictions = read_records(args.predictions, ("id", "prediction"))
        by_id = {r["id"]: r["reference"] for r in read_records(args.references, ("id", "reference"))}
        missing = [r["id"] for r in predictions if r["id"] not in by_id]
        if missing:
            raise SystemExit(f"error: no reference for {len(missing)} prediction(s), e.g. {missing[:3]}")
        pairs = [(r["id"], by_id[r["id"]], r["prediction"]) for r in predictions]
    else:
        records = read_records(args.predictions, ("id", "prediction", "reference"))
        pairs = [(r["id"], r["reference"], r["prediction"]) for r in records]
    ids, references, predictions_text = (list(x) for x in zip(*pairs))
    result = score_reports(references, predictions_text, args.dataset, labeler=make_labeler(args.labeler),
                           average=args.average, uncertain=args.uncertain, reference_form=args.reference_form)
    reference_labels, predicted_labels = result.reference_labels, result.predicted_labels
    print(f"NLG ({len(pairs)} reports, {args.reference_form} references) -- " +
          ", ".join(f"{k}: {'n/a' if v is None else f'{v:.4f}'}" for k, v in result.nlg["scores"].items()))
    for note in result.nlg["notes"]:
        print(f"  note: {note}")
    ce = result.ce
    print(f"CE, labeler {args.labeler} -- " + ", ".join(f"{k}: {v}" for k, v in ce["settings"].items()))
    print("  " + ", ".join(f"{k} {v:.4f}" for k, v in ce["scores"].items() if v is not None)
          + f", findings F1 {result.scores['ce_findings_f1']:.4f}")
    print("  variants: " + ", ".join(
        f"{name} P {v['scores']['precision']:.4f} R {v['scores']['recall']:.4f} F1 {v['scores']['f1']:.4f}"
        for name, v in result.ce_variants.items()))
    print(f"  {'observation':<27} {'support':>7} {'pred':>5} {'P':>6} {'R':>6} {'F1':>6}")
    for row in ce["table"]:
        print(f"  {row['observation']:<27} {row['support']:>7} {row['predicted']:>5} "
              f"{row['precision']:6.3f} {row['recall']:6.3f} {row['f1']:6.3f}")
    if output is not None:
        write_text_atomic(output, json.dumps({"nlg": result.nlg, "ce": ce, "ce_variants": result.ce_variants},
                                             indent=1) + "\n")
    if args.per_report is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        header = [f"reference {o}" for o in OBSERVATIONS] + [f"predicted {o}" for o in OBSERVATIONS]
        writer.writerow(["id", *header])
        for key, ref_row, pred_row in zip(ids, reference_labels, predicted_labels):
            cells = ["" if v != v else int(v) for v in list(ref_row) + list(pred_row)]
            writer.writerow([key] + cells)
        write_text_atomic(Path(args.per_report), buffer.getvalue())
    return 0


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
    import os

    import torch
    import torch.distributed as dist

    from cknet.training import apply_overrides, load_recipe, resume, train

    device = args.device
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device != "cpu"
        dist.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
    overrides = _overrides(extra)
    try:
        if args.resume:
            result = resume(args.resume, overrides, device=device, progress=not args.quiet)
        else:
            if args.output is None:
                raise SystemExit("error: give --output RUN_DIR")
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
                graph = None if args.graph_model else _graph_from_argument(args.graph)
                result = train(model_config, training, annotation, args.output, image_dir=args.image_dir,
                               graph=graph, graph_model=args.graph_model, device=device,
                               progress=not args.quiet)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if result.best_epoch:
        print(f"kept epoch {result.best_epoch}: {result.criterion}")
    if result.test is not None:
        print(f"test: BLEU-4 {result.test['bleu4']:.4f}, loss {result.test['loss']:.4f}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from cknet.demo import run_demo

    result = run_demo(args.output, quick=args.quick, seed=args.seed, device=args.device,
                      progress=not args.quiet)
    if args.min_ce_margin is not None and result.ce_margin < args.min_ce_margin:
        print(f"error: CE F1 margin over blank images is {result.ce_margin:.3f}, below the "
              f"required {args.min_ce_margin}", file=sys.stderr)
        return 3
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``cknet`` argument parser, with one sub-command per job."""
    from cknet.config import DATASETS

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
                    "It takes 6 to 16 minutes on 2 CPU cores, depending on the CPU; --quick a quarter "
                    "of that.",
    )
    demo.add_argument("--quick", action="store_true", help="smaller images, fewer studies and epochs")
    demo.add_argument("--output", type=Path, default=Path("cknet-demo"),
                      help="folder for the model, the picture and cknet-demo.json (default: cknet-demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    demo.add_argument("--min-ce-margin", type=float, default=None,
                      help="exit with status 3 if CE F1 on images minus CE F1 on blank images is lower")
    demo.add_argument("--quiet", action="store_true", help="print nothing")
    demo.set_defaults(handler=_demo)

    config = commands.add_parser(
        "config", help="print CKNetConfig.<dataset>() as JSON: the paper's model with a random CNN "
                       "(the training recipe --config <dataset> adds ImageNet weights)")
    config.add_argument("dataset", choices=sorted(DATASETS))
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
    gen.add_argument("--batch-size", type=_positive_int, default=16, help="studies per batch (default 16)")
    gen.add_argument("--skip-bad-images", action="store_true",
                     help="skip studies whose images are missing or unreadable, and say how many")
    gen.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    gen.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    gen.add_argument("--repeat-single-view", action="store_true",
                     help="let one image fill every view of a multi-view model")
    gen.add_argument("--output", help="write JSON or CSV (id, prediction, reference) here")
    gen.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(handler=_generate)

    pre = commands.add_parser(
        "pretrain-graph", help="train the knowledge-graph stage (GCN + CNN) on an annotation's images",
        description="Pretrain a KnowledgeGraphModel on the train split of an R2Gen-format dataset "
                    "with node labels, keep the epoch with the best mean validation AUC, and save "
                    "it (with the static knowledge matrix) for CKNet(graph_model=OUTPUT).",
    )
    _add_data_arguments(pre)
    pre.add_argument("--dataset", choices=sorted(DATASETS), default="iu_xray")
    pre.add_argument("--labels", default="keyword",
                     help="keyword (label the reports), mesh:FILE (IU X-Ray mesh_tags.csv) or "
                          "csv:FILE[@ID_COLUMN] (columns named like the graph's nodes)")
    pre.add_argument("--uncertain", type=int, choices=[0, 1], default=1,
                     help="uncertain labels count as 0 or 1 (default 1)")
    pre.add_argument("--backbone", default="densenet121")
    pre.add_argument("--backbone-weights", default=None, help="imagenet or a local state dict")
    pre.add_argument("--image-size", type=int, default=224)
    pre.add_argument("--d-knowledge", type=int, default=512)
    pre.add_argument("--gcn-layers", type=int, default=2)
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

    ev = commands.add_parser(
        "evaluate", help="NLG metrics and clinical efficacy of generated reports",
        description="BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap) and CE of the 14 CheXpert "
                    "observations (built-in labeler) for a predictions file as `cknet generate` writes it.",
    )
    ev.add_argument("--predictions", required=True, type=Path,
                    help="JSON or CSV: id, prediction[, reference]")
    ev.add_argument("--references", type=Path,
                    help="JSON or CSV: id, reference (else read from --predictions)")
    ev.add_argument("--reference-form", choices=["cleaned", "raw"], default="cleaned",
                    help="score against R2Gen-cleaned, truncated references (the peers' way) or raw text")
    ev.add_argument("--dataset", choices=sorted(DATASETS), default="iu_xray")
    ev.add_argument("--labeler", default="rules",
                    help="rules (built-in), chexbert:CHECKPOINT[,BERT_DIR] (the CheXbert model) or the CSV "
                         "another labeler wrote for every report (default rules)")
    ev.add_argument("--average", choices=["micro", "macro", "example"], default="micro")
    ev.add_argument("--uncertain", type=int, choices=[0, 1], default=0,
                    help="what an uncertain label (-1) counts as: 0 negative (default) or 1 positive")
    ev.add_argument("--output", help="write every score and setting as JSON here")
    ev.add_argument("--per-report", type=Path, help="write each report's labels as CSV here, for audit")
    ev.add_argument("--overwrite", action="store_true")
    ev.set_defaults(handler=_evaluate)

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

    from cknet.labeler.command import add_command as add_label_command

    add_label_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cknet`` console script; returns the exit status."""
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


if __name__ == "__main__":
    raise SystemExit(main())
