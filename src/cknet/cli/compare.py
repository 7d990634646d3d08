"""``cknet compare A B``: two systems' reports of the same studies, metric by metric: the
difference B - A with its paired-bootstrap 95% interval and two p-values (paired
bootstrap, approximate randomisation), printed as a table and written as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cknet.cli.arguments import (
    check_output_file,
    comma_separated,
    dataset_name,
    input_paths,
    metric_set,
    positive_int,
)
from cknet.persistence.files import write_text_atomic


def _joined(args: argparse.Namespace) -> tuple[list[str], list[str], list[str], list[str]]:
    """The ids and references (A's order), A's and B's predictions, joined by id; a
    ValueError naming the ids when the two files do not hold the same studies, or give
    different references for one."""
    from cknet.evaluation import read_predictions

    ids_a, references, predictions_a = read_predictions(args.a, args.references)
    ids_b, references_b, predictions_b = read_predictions(args.b, args.references)
    only_a, only_b = sorted(set(ids_a) - set(ids_b)), sorted(set(ids_b) - set(ids_a))
    if only_a or only_b:
        raise ValueError(f"{args.a} and {args.b} must hold the same studies: {len(only_a)} id(s) only in "
                         f"the first (e.g. {only_a[:3]}), {len(only_b)} only in the second "
                         f"(e.g. {only_b[:3]})")
    row_b = {key: i for i, key in enumerate(ids_b)}
    differ = [key for key, reference in zip(ids_a, references) if references_b[row_b[key]] != reference]
    if differ:
        raise ValueError(f"{args.a} and {args.b} give different references for {len(differ)} studies "
                         f"(e.g. ids {differ[:3]}); pass the references once with --references")
    return ids_a, references, predictions_a, [predictions_b[row_b[key]] for key in ids_a]


def run(args: argparse.Namespace) -> int:
    from cknet.evaluation import report_statistics
    from cknet.labeler import make_labeler
    from cknet.metrics.resampling import paired_comparison

    inputs = input_paths(args.a, args.b, args.references, args.labeler, args.bertscore_model, args.chexbert,
                         args.radgraph, args.ratescore, args.green_model)
    output = None if args.output is None else check_output_file(args.output, "--output", args.overwrite,
                                                                  (".json",), inputs)
    ids, references, predictions_a, predictions_b = _joined(args)
    from cknet.metrics.model_based import MODEL_METRICS

    metrics = metric_set(args.metrics)
    labeler = None if args.labeler == "none" or "ce" not in metrics else make_labeler(args.labeler)
    extra = [m for m in metrics if m in MODEL_METRICS]
    scorer = None
    if extra:  # built first: what each model-based metric needs is checked before any scoring
        from cknet.metrics.model_based import ModelMetrics

        chexbert = make_labeler(f"chexbert:{args.chexbert}") if args.chexbert else (
            labeler if hasattr(labeler, "embed") else None)
        scorer = ModelMetrics(extra, args.bertscore_model, chexbert, args.radgraph,
                              comma_separated(args.ratescore), args.ratescore_sentences, args.green_model,
                              radcliq_idf=args.radcliq_idf)
    reference_labels = None if labeler is None else labeler(references)
    statistics = [
        report_statistics(references, predictions, reference_labels,
                          None if labeler is None else labeler(predictions), args.dataset,
                          uncertain=args.uncertain, reference_form=args.reference_form)
        for predictions in (predictions_a, predictions_b)]
    if scorer is not None:
        from cknet.metrics.study_statistics import mean_statistics

        for stats, predictions in zip(statistics, (predictions_a, predictions_b)):
            added = mean_statistics(scorer.score(references, predictions, resamples=0, ids=ids).per_study)
            stats.statistics.update(added.statistics)
            stats.aggregates.update(added.aggregates)
    comparisons = paired_comparison(*statistics, resamples=args.resamples, trials=args.trials, seed=args.seed)
    print(f"B = {args.b} against A = {args.a}: {len(ids)} studies, {args.reference_form} references, "
          f"labeler {args.labeler}; {args.resamples} paired bootstrap resamples, {args.trials} "
          f"randomisation trials, seed {args.seed}")
    print()
    print("| metric | A | B | B - A | 95% interval | p, bootstrap | p, randomisation |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
    for name, c in comparisons.items():
        print(f"| {name} | {c.a:.4f} | {c.b:.4f} | {c.difference:+.4f} | [{c.low:+.4f}, {c.high:+.4f}] | "
              f"{c.p_bootstrap:.3f} | {c.p_randomisation:.3f} |")
    if output is not None:
        settings = {"a": str(args.a), "b": str(args.b), "studies": len(ids), "labeler": args.labeler,
                    "references": args.reference_form, "dataset": args.dataset, "uncertain": args.uncertain,
                    "confidence": 0.95, "resamples": args.resamples, "trials": args.trials, "seed": args.seed,
                    "metrics": args.metrics, "bertscore_model": args.bertscore_model,
                    "radgraph_model": None if args.radgraph is None else str(args.radgraph),
                    "ratescore_models": args.ratescore, "ratescore_sentences": args.ratescore_sentences,
                    "green_model": args.green_model}
        scores = {name: vars(c) for name, c in comparisons.items()}
        write_text_atomic(output, json.dumps({"settings": settings, "metrics": scores}, indent=1) + "\n")
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``cknet compare`` on the command line's sub-parsers.

    Args:
        commands: the ``add_subparsers()`` object of the ``cknet`` parser.
    """
    co = commands.add_parser(
        "compare", help="paired comparison of two systems' reports: differences, intervals, p-values",
        description="Score two prediction files of the same studies (as `cknet generate` writes them) and "
                    "compare them metric by metric: B - A with its paired-bootstrap 95% interval, and "
                    "p-values from the paired bootstrap and from approximate randomisation.",
    )
    co.add_argument("a", type=Path, help="system A's predictions, JSON or CSV: id, prediction[, reference]")
    co.add_argument("b", type=Path, help="system B's predictions, the same studies")
    co.add_argument("--references", type=Path,
                    help="JSON or CSV: id, reference (else read from the prediction files, which must agree)")
    co.add_argument("--reference-form", choices=["cleaned", "raw"], default="cleaned",
                    help="score against R2Gen-cleaned, truncated references (the peers' way) or raw text")
    co.add_argument("--dataset", type=dataset_name, default="iu_xray")
    co.add_argument("--labeler", default="rules",
                    help="as for `cknet evaluate`, or none for the NLG metrics alone (default rules)")
    co.add_argument("--uncertain", type=int, choices=[0, 1], default=0,
                    help="what an uncertain label (-1) counts as: 0 negative (default) or 1 positive")
    co.add_argument("--resamples", type=positive_int, default=1000, help="paired bootstrap resamples")
    co.add_argument("--trials", type=positive_int, default=1000, help="approximate-randomisation trials")
    co.add_argument("--seed", type=int, default=0)
    co.add_argument("--metrics", default="nlg,ce",
                    help="the words of cknet evaluate --metrics: nlg, ce, bertscore, semb, radgraph, "
                         "radcliq, "
                         "ratescore, green or rexrank (default nlg,ce; the NLG metrics are always compared)")
    co.add_argument("--bertscore-model", default="distilroberta-base",
                    help="BERTScore's model: a local folder or a hub id in the Hugging Face cache")
    co.add_argument("--chexbert", metavar="CHECKPOINT[,BERT_DIR]", help="CheXbert, for SembScore and RadCliQ")
    co.add_argument("--radgraph", type=Path, metavar="radgraph.tar.gz",
                    help="RadGraph's model (archive or folder), for RadGraph F1 and RadCliQ")
    co.add_argument("--ratescore", metavar="NER[,ENCODER]", help="RaTEScore's models (see cknet evaluate)")
    co.add_argument("--ratescore-sentences", choices=["medspacy", "periods"], default="medspacy",
                    help="RaTEScore's sentence splitter (see cknet evaluate)")
    co.add_argument("--radcliq-idf", action="store_true",
                    help="RadCliQ-v1 with BERTScore weighted by idf over the references (RadEval's); "
                         "default without idf, as ReXrank (CXR-Report-Metric) computes it")
    co.add_argument("--green-model", metavar="DIR", help="GREEN's judge (see cknet evaluate)")
    co.add_argument("--output", type=Path, help="write the comparison as JSON here")
    co.add_argument("--overwrite", action="store_true")
    co.set_defaults(handler=run)
