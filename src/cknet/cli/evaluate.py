"""``cknet evaluate``: NLG metrics and clinical efficacy of a predictions file, printed,
and written as JSON (every score and setting) and per report as CSV (each report's
labels, for audit)."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from cknet.cli.arguments import (
    check_output_file,
    comma_separated,
    dataset_name,
    input_paths,
    metric_set,
    non_negative_int,
)
from cknet.persistence.files import write_text_atomic


def _print_scores(result, args: argparse.Namespace, count: int) -> None:
    if result.nlg is not None:
        values = result.nlg["scores"].items()
        print(f"NLG ({count} reports, {args.reference_form} references) -- " +
              ", ".join(f"{k}: {'n/a' if v is None else f'{v:.4f}'}" for k, v in values))
        for note in result.nlg["notes"]:
            print(f"  note: {note}")
    ce = result.ce
    if ce is None:
        return
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


def run(args: argparse.Namespace) -> int:
    from cknet.evaluation import read_predictions, score_reports
    from cknet.labeler import make_labeler
    from cknet.metrics.model_based import MODEL_METRICS, ModelMetrics

    metrics = metric_set(args.metrics)
    inputs = input_paths(args.predictions, args.references, args.labeler, args.bertscore_model, args.chexbert,
                         args.radgraph, args.ratescore, args.green_model)
    output, per_report = (
        None if path is None else check_output_file(path, option, args.overwrite, inputs=inputs)
        for path, option in ((args.output, "--output"), (args.per_report, "--per-report")))
    if output is not None and per_report is not None and output.resolve() == per_report.resolve():
        raise ValueError(f"--output and --per-report are the same file ({output}); the scores would "
                         f"be overwritten by the per-report labels: give two paths")
    ids, references, predictions = read_predictions(args.predictions, args.references, args.allow_missing)
    if args.references and args.allow_missing:
        from cknet.evaluation import read_records

        total = len(read_records(args.references, ("id", "reference")))
        print(f"scoring {len(ids)} of the {total} studies of {args.references} (--allow-missing)")
    labeler = make_labeler(args.labeler) if "ce" in metrics or args.labeler.startswith("chexbert:") else None
    chexbert = (make_labeler(f"chexbert:{args.chexbert}") if args.chexbert
                else labeler if hasattr(labeler, "embed") else None)
    model_metrics = ModelMetrics([m for m in metrics if m in MODEL_METRICS], args.bertscore_model, chexbert,
                                 args.radgraph, comma_separated(args.ratescore), args.ratescore_sentences,
                                 args.green_model, radcliq_idf=args.radcliq_idf)  # checks needs first
    result = score_reports(references, predictions, args.dataset, full="nlg" in metrics,
                           labeler=labeler if "ce" in metrics else None, average=args.average,
                           uncertain=args.uncertain, reference_form=args.reference_form,
                           resamples=args.resamples, seed=args.seed, macro_absent=args.macro_absent)
    model = model_metrics.score(references, predictions, args.resamples, args.seed, ids=ids)
    _print_scores(result, args, len(ids))
    if model.per_study:
        print("Model-based -- " + ", ".join(f"{k}: {v:.4f}" for k, v in model.means.items()))
    if "radcliq" in metrics and "green" not in metrics:
        print("  GREEN (ReXrank's 7B judge) runs only when asked: --metrics ...,green [--green-model DIR]")
    intervals = {**result.intervals, **model.intervals}
    if intervals:
        print(f"95% intervals ({args.resamples} bootstrap resamples of the {len(ids)} studies, "
              f"seed {args.seed}):")
        for name, interval in intervals.items():
            print(f"  {name:<17} {interval}")
    scores = {"metrics": metrics, "nlg": result.nlg, "ce": result.ce, "ce_variants": result.ce_variants}
    if model.per_study:
        scores["model_based"] = {
            "settings": _model_settings(args),
            "scores": model.means,
            "per_study": {"id": ids, **{k: v.tolist() for k, v in model.per_study.items()}},
            **({"answers": model.answers} if model.answers else {})}
    if intervals:
        scores["intervals"] = {
            "settings": {"confidence": 0.95, "resamples": args.resamples, "seed": args.seed,
                         "method": "percentile bootstrap over studies"},
            "scores": {name: vars(interval) for name, interval in intervals.items()}}
    if output is not None:
        write_text_atomic(output, json.dumps(scores, indent=1) + "\n")
    if args.per_report is not None:
        _write_per_report(Path(args.per_report), ids, result)
    return 0


def _model_settings(args: argparse.Namespace) -> dict:
    """The model-based metrics' settings, as the JSON output records them."""
    radcliq = ("RadCliQ-v1 as ReXrank (CXR-Report-Metric): BERTScore without idf, " if not args.radcliq_idf
               else "RadCliQ-v1 as RadEval e0a3909: BERTScore with idf over the references, ")
    return {"bertscore_model": args.bertscore_model, "bertscore": "layer 5, baseline rescaled, no idf",
            "radgraph_model": None if args.radgraph is None else str(args.radgraph),
            "radgraph": "radgraph 0.1.18's rewards; combined as RadEval (RadCliQ's term)",
            "radcliq": radcliq + "per-study BLEU-2; the mean, lower is better",
            "ratescore_models": args.ratescore, "ratescore_sentences": args.ratescore_sentences,
            "green_model": args.green_model}


def _write_per_report(path: Path, ids: list[str], result) -> None:
    """``--per-report``: each report's reference and predicted labels, one row per study."""
    from cknet.labeler import OBSERVATIONS

    if result.reference_labels is None:
        raise ValueError("--per-report writes each report's labels: keep ce in --metrics")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = [f"reference {o}" for o in OBSERVATIONS] + [f"predicted {o}" for o in OBSERVATIONS]
    writer.writerow(["id", *header])
    for key, ref_row, pred_row in zip(ids, result.reference_labels, result.predicted_labels):
        cells = ["" if v != v else int(v) for v in list(ref_row) + list(pred_row)]
        writer.writerow([key] + cells)
    write_text_atomic(path, buffer.getvalue())


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``cknet evaluate`` on the command line's sub-parsers.

    Args:
        commands: the ``add_subparsers()`` object of the ``cknet`` parser.
    """
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
    ev.add_argument("--dataset", type=dataset_name, default="iu_xray")
    ev.add_argument("--labeler", default="rules",
                    help="rules (built-in), chexbert:CHECKPOINT[,BERT_DIR] (the CheXbert model) or the CSV "
                         "another labeler wrote for every report (default rules)")
    ev.add_argument("--average", choices=["micro", "macro", "example"], default="micro")
    ev.add_argument("--uncertain", type=int, choices=[0, 1], default=0,
                    help="what an uncertain label (-1) counts as: 0 negative (default) or 1 positive")
    ev.add_argument("--resamples", type=non_negative_int, default=1000,
                    help="bootstrap resamples of the studies for 95%% intervals (0: none; default 1000)")
    ev.add_argument("--seed", type=int, default=0, help="the resampling's seed (default 0)")
    ev.add_argument("--metrics", default="nlg,ce",
                    help="comma-separated: nlg (BLEU-1..4, METEOR, ROUGE-L, CIDEr), ce, bertscore "
                         "(distilroberta-base, ReXrank's setting), semb (SembScore, needs CheXbert), "
                         "radgraph (RadGraph F1, needs --radgraph), radcliq (RadCliQ-v1, needs both), "
                         "ratescore (RaTEScore), green (GREEN, a 7B judge: a GPU), or "
                         "rexrank for ReXrank's set that cknet computes (default nlg,ce)")
    ev.add_argument("--bertscore-model", default="distilroberta-base",
                    help="BERTScore's model: a local folder, or a hub id already in the Hugging Face cache "
                         "(hf download distilroberta-base)")
    ev.add_argument("--chexbert", metavar="CHECKPOINT[,BERT_DIR]",
                    help="CheXbert for SembScore when --labeler is not chexbert:...")
    ev.add_argument("--radgraph", type=Path, metavar="radgraph.tar.gz",
                    help="RadGraph's model for RadGraph F1 and RadCliQ: the archive of "
                         "StanfordAIMI/RRG_scorers or the folder it unpacks to "
                         "(hf download StanfordAIMI/RRG_scorers radgraph.tar.gz)")
    ev.add_argument("--ratescore", metavar="NER[,ENCODER]",
                    help="RaTEScore's entity tagger and encoder: folders or hub ids in the Hugging Face "
                         "cache (default Angelakeke/RaTE-NER-Deberta,FremyCompany/BioLORD-2023-C)")
    ev.add_argument("--ratescore-sentences", choices=["medspacy", "periods"], default="medspacy",
                    help="RaTEScore's sentence splitter: medspacy (the package's; pip install "
                         "\"cknet[ratescore]\") or periods (no medspaCy; close, not equal)")
    ev.add_argument("--radcliq-idf", action="store_true",
                    help="RadCliQ-v1 with BERTScore weighted by idf over the references (RadEval's); "
                         "default without idf, as ReXrank (CXR-Report-Metric) computes it")
    ev.add_argument("--green-model", metavar="DIR",
                    help="GREEN's judge: a folder or a hub id in the Hugging Face cache "
                         "(default StanfordAIMI/GREEN-radllama2-7b)")
    ev.add_argument("--macro-absent", choices=["zero", "skip"], default="zero",
                    help="macro F1: an observation no report states counts F1 0 (zero, the usual reading) "
                         "or is left out of the mean (skip)")
    ev.add_argument("--allow-missing", action="store_true",
                    help="with --references: score predictions of only some of its studies (refused by "
                         "default: skipping hard studies scores better); says how many of how many")
    ev.add_argument("--output", help="write every score and setting as JSON here")
    ev.add_argument("--per-report", type=Path, help="write each report's labels as CSV here, for audit")
    ev.add_argument("--overwrite", action="store_true")
    ev.set_defaults(handler=run)
