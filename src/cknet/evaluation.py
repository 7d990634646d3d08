"""Evaluate a model on a dataset, or score reports: the one place both are done.

`evaluate` generates a report for every study of a dataset (images, or the cached
features of `cknet.training.FeatureCache`), computes the teacher-forced loss on the
same encoding, and scores the reports with `score_reports`. The trainer's validation
and test, the command line, the demo and the benchmarks all use it.

`score_reports` gives BLEU-1..4, METEOR, ROUGE-L and CIDEr (`cknet.metrics.nlg_scores`,
against R2Gen-cleaned references as the peers score) and clinical efficacy
(`cknet.metrics.ce_scores`) over the labeler's observations, plus the CE over the
findings alone: micro F1 over every observation but "No Finding", the number that says
whether reports state what the images show.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from cknet.data.collate import collate_studies
from cknet.data.rexrank import is_rexrank, rexrank_records
from cknet.generation import GenerationConfig, run_search
from cknet.inputs.features import encode_inputs
from cknet.limits import MAX_REPORT_CHARACTERS
from cknet.losses import masked_cross_entropy
from cknet.metrics import CE_VARIANTS, bleu_4, ce_scores, nlg_scores
from cknet.metrics.resampling import Interval, bootstrap_intervals
from cknet.metrics.study_statistics import StudyStatistics, study_statistics

NO_FINDING = "No Finding"


@dataclass
class Evaluation:
    """What `evaluate` returns.

    Attributes:
        loss: teacher-forced cross-entropy per target token, averaged over studies.
        scores: ``"bleu4"`` always; with ``full``, every NLG metric by its pycocoevalcap
            name; with a labeler, ``"ce_f1"`` (the labeler's averaging over all its
            observations) and ``"ce_findings_f1"`` (micro F1 without "No Finding").
        predictions: one ``{"id", "prediction", "reference"}`` per study.
        nlg: the NLG `MetricReport` as a dict (with ``full``).
        ce: the CE `MetricReport` as a dict (with a labeler).
        ce_variants: with a labeler of the 14 CheXpert observations, each named variant
            of `cknet.metrics.CE_VARIANTS` (``"micro-14"``, ``"macro-14"``, ``"micro-5"``,
            ``"example-14"``) as a dict; their F1 are also in ``scores`` as
            ``"ce_<variant>_f1"``.
        reference_labels: the labeler's ``(n, observations)`` labels of the references.
        predicted_labels: the same for the generated reports.
        intervals: with ``resamples``, each resampled score's 95% bootstrap interval
            over studies (`cknet.metrics.resampling`), by the name in ``scores``.
    """

    loss: float
    scores: dict[str, float | None]
    predictions: list[dict[str, str]] = field(default_factory=list)
    nlg: dict[str, Any] | None = None
    ce: dict[str, Any] | None = None
    ce_variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference_labels: np.ndarray | None = None
    predicted_labels: np.ndarray | None = None
    intervals: dict[str, Interval] = field(default_factory=dict)


def read_records(path: str | os.PathLike[str], fields: Sequence[str]) -> list[dict[str, str]]:
    """Read predictions or references: a JSON list of objects, a CSV file with a header,
    or ReXrank's JSON (`cknet.data.rexrank`: ``model_prediction`` the prediction, its
    findings and impression the reference).

    Args:
        path: the file (``.csv``, else JSON), e.g. what `cknet generate --output` writes.
        fields: the fields each record must have (``"id"`` and report texts).

    Returns:
        The records, each with the given fields as strings (ids may be numbers in JSON).

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: naming the file, and the record and field at fault: not UTF-8, not
            valid JSON or CSV, no record, a missing field, a report that is not text, an
            empty reference, an id given twice (the ids are named). A UTF-8 byte-order
            mark (as spreadsheet programs write) is read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
        if path.suffix.lower() == ".csv":
            records: Any = list(csv.DictReader(io.StringIO(text, newline="")))
        else:
            records = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error, RecursionError) as err:
        kind = "CSV" if path.suffix.lower() == ".csv" else "JSON"
        raise ValueError(f"{path} is not a readable {kind} file: {err}") from None
    if path.suffix.lower() != ".csv" and is_rexrank(records):
        records = rexrank_records(records, path, with_prediction="prediction" in fields)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path} must hold a list of records with {', '.join(fields)} (or ReXrank's "
                         f"object of studies)")
    if not records:
        raise ValueError(f"{path} holds no record")
    out = []
    for index, record in enumerate(records):
        name = f"{path}, record {index}" + (f" (id {record['id']!r})" if "id" in record else "")
        missing = [f for f in fields if record.get(f) is None]
        if missing:
            raise ValueError(f"{name}: missing {', '.join(missing)}")
        clean = {}
        for field_name in fields:
            value = record[field_name]
            if field_name == "id" and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise ValueError(f"{name}: {field_name!r} must be text, got {type(value).__name__}")
            if field_name == "reference" and not value.strip():
                raise ValueError(f"{name}: the reference is empty")
            if field_name in ("prediction", "reference") and len(value) > MAX_REPORT_CHARACTERS:
                raise ValueError(f"{name}: the {field_name} holds {len(value):,} characters, more than any "
                                 f"real report ({MAX_REPORT_CHARACTERS:,} at most)")
            clean[field_name] = value
        out.append(clean)
    counts = collections.Counter(record["id"] for record in out) if "id" in fields else {}
    twice = [key for key, count in counts.items() if count > 1]
    if twice:
        raise ValueError(f"{path} gives {len(twice)} id(s) more than once, e.g. {twice[:5]}: each study "
                         f"must appear once, or its scores would be counted twice")
    return out


def read_predictions(
    predictions: str | os.PathLike[str], references: str | os.PathLike[str] | None = None,
    allow_missing: bool = False,
) -> tuple[list[str], list[str], list[str]]:
    """Read a predictions file and its references, joined by study id, in id order (so
    that the bootstrap, which draws rows, does not depend on the files' row order).

    Args:
        predictions: JSON or CSV with ``id``, ``prediction`` and, without
            ``references``, ``reference`` (as `cknet generate --output` writes it).
        references: JSON or CSV with ``id`` and ``reference``, or None.
        allow_missing: score the predictions of only some of ``references``' studies;
            by default that is refused, since a system that skips hard studies would
            score better.

    Returns:
        The ids, references and predictions, sorted by id.

    Raises:
        ValueError: as `read_records`, when a prediction has no reference, or when a
            study of ``references`` has no prediction (the ids are named).
    """
    if references is None:
        records = sorted(read_records(predictions, ("id", "prediction", "reference")), key=lambda r: r["id"])
        return ([r["id"] for r in records], [r["reference"] for r in records],
                [r["prediction"] for r in records])
    records = sorted(read_records(predictions, ("id", "prediction")), key=lambda r: r["id"])
    by_id = {r["id"]: r["reference"] for r in read_records(references, ("id", "reference"))}
    missing = [r["id"] for r in records if r["id"] not in by_id]
    if missing:
        raise ValueError(f"{references} has no reference for {len(missing)} prediction(s) of {predictions}, "
                         f"e.g. ids {missing[:3]}")
    unanswered = sorted(set(by_id) - {r["id"] for r in records})
    if unanswered and not allow_missing:
        raise ValueError(f"{predictions} has no prediction for {len(unanswered)} of the {len(by_id)} "
                         f"studies of "
                         f"{references} (e.g. ids {unanswered[:3]}): a system that skips studies would score "
                         f"better; predict every study, or pass --allow-missing to score {len(records)} of "
                         f"{len(by_id)}")
    return [r["id"] for r in records], [by_id[r["id"]] for r in records], [r["prediction"] for r in records]


def report_statistics(
    references: Sequence[str],
    predictions: Sequence[str],
    reference_labels: np.ndarray | None = None,
    predicted_labels: np.ndarray | None = None,
    dataset: str = "iu_xray",
    max_length: int | None = None,
    uncertain: int = 0,
    reference_form: str = "cleaned",
    observations: Sequence[str] | None = None,
    macro_absent: str = "zero",
) -> StudyStatistics:
    """Per-study statistics of reports, scored as `score_reports` scores them, for
    bootstrap intervals and paired comparisons (`cknet.metrics.study_statistics`, `cknet.metrics.resampling`).

    Args:
        references: the reference reports.
        predictions: the generated reports, in the same order.
        reference_labels: the labeler's labels of the references (1 / 0 / -1 / NaN), or
            None for no clinical efficacy.
        predicted_labels: the same for the predictions.
        dataset: the cleaning rules of the NLG metrics.
        max_length: the references' truncation (default: the dataset's).
        uncertain: what an uncertain label counts as, 0 or 1.
        reference_form: ``"cleaned"`` or ``"raw"`` (see `cknet.metrics.nlg_scores`).
        observations: the labels' column names (default: CheXpert's 14).
        macro_absent: macro F1's convention for an observation no report states.

    Returns:
        The `StudyStatistics`.
    """
    from cknet.labeler import binarize
    from cknet.metrics.nlg import prepare_texts

    references, predictions, _ = prepare_texts(references, predictions, reference_form, dataset, max_length)
    if reference_labels is None or predicted_labels is None:
        return study_statistics(references, predictions)
    return study_statistics(references, predictions, binarize(reference_labels, uncertain),
                            binarize(predicted_labels, uncertain), observations, macro_absent)


def findings_f1(ce: dict[str, Any]) -> float:
    """Micro F1 over the observations of a CE result except "No Finding".

    Args:
        ce: `MetricReport.to_dict` of `cknet.metrics.ce_scores`.

    Returns:
        The F1 (0 when no report of either side states a finding).
    """
    tp = fp = fn = 0
    for row in ce["table"]:
        if row["observation"] != NO_FINDING:
            hits = round(row["recall"] * row["support"])
            tp, fp, fn = tp + hits, fp + row["predicted"] - hits, fn + row["support"] - hits
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def score_reports(
    references: Sequence[str],
    predictions: Sequence[str],
    dataset: str = "iu_xray",
    max_length: int | None = None,
    full: bool = True,
    labeler: Callable[[Sequence[str]], np.ndarray] | None = None,
    observations: Sequence[str] | None = None,
    average: str = "micro",
    uncertain: int = 0,
    reference_form: str = "cleaned",
    resamples: int = 0,
    seed: int = 0,
    macro_absent: str = "zero",
) -> Evaluation:
    """NLG and CE scores of generated reports against their references.

    Args:
        references: the reference reports.
        predictions: the generated reports, in the same order.
        dataset: the cleaning rules of the NLG metrics.
        max_length: references are cut to this many tokens (BOS and EOS counted) as the
            peers cut them (default: the dataset's).
        full: every NLG metric (METEOR needs Java); False: BLEU-4 alone, fast.
        labeler: labels report texts for CE (e.g. ``CheXpertLabeler()``); None: no CE.
        observations: the labeler's column names (default: the 14 CheXpert observations).
        average: CE averaging, ``"micro"``, ``"macro"`` or ``"example"``.
        uncertain: what an uncertain label counts as, 0 or 1.
        reference_form: ``"cleaned"`` (R2Gen-cleaned, truncated references, the peers'
            way) or ``"raw"`` (the strings as given); see `cknet.metrics.nlg_scores`.
        resamples: with ``full``, bootstrap resamples of the studies for 95% intervals
            of BLEU, ROUGE-L, CIDEr and the micro, findings and CE-variant F1
            (`Evaluation.intervals`); 0: none.
        seed: the resampling's seed.
        macro_absent: macro F1's convention for an observation no report states,
            ``"zero"`` or ``"skip"`` (see `cknet.metrics.ce_scores`).

    Returns:
        An `Evaluation` whose loss is NaN (no model was run).
    """
    scores: dict[str, float | None] = {}
    nlg = ce = reference_labels = predicted_labels = None
    variants: dict[str, dict[str, Any]] = {}
    if full:
        report = nlg_scores(references, predictions, reference_form, dataset, max_length)
        nlg = report.to_dict()
        scores.update(report.scores)
        scores["bleu4"] = report["BLEU_4"]
    else:
        scores["bleu4"] = bleu_4(references, predictions, dataset, max_length)
    if labeler is not None:
        reference_labels = np.asarray(labeler(list(references)), dtype=float)
        predicted_labels = np.asarray(labeler(list(predictions)), dtype=float)
        ce = ce_scores(reference_labels, predicted_labels, average, uncertain,
                       observations=observations, absent=macro_absent).to_dict()
        scores["ce_f1"] = ce["scores"]["f1"]
        scores["ce_findings_f1"] = findings_f1(ce)
        if observations is None:
            for name in CE_VARIANTS:
                variants[name] = ce_scores(reference_labels, predicted_labels, uncertain=uncertain,
                                           variant=name, absent=macro_absent).to_dict()
                scores[f"ce_{name}_f1"] = variants[name]["scores"]["f1"]
    intervals = {}
    if full and resamples:
        statistics = report_statistics(references, predictions, reference_labels, predicted_labels, dataset,
                                       max_length, uncertain, reference_form, observations, macro_absent)
        intervals = bootstrap_intervals(statistics, resamples, seed=seed)
        if average != "micro":
            intervals.pop("ce_f1", None)
    return Evaluation(float("nan"), scores, nlg=nlg, ce=ce, ce_variants=variants,
                      reference_labels=reference_labels, predicted_labels=predicted_labels,
                      intervals=intervals)


@torch.no_grad()
def evaluate(
    model: Any,
    data: Dataset,
    generation: GenerationConfig | None = None,
    batch_size: int = 16,
    limit: int = 0,
    full: bool = False,
    labeler: Callable[[Sequence[str]], np.ndarray] | None = None,
    observations: Sequence[str] | None = None,
    num_workers: int = 0,
    progress: bool = False,
) -> Evaluation:
    """Generate, compute the loss and score, for every study of a dataset.

    Args:
        model: a `CKNet`.
        data: study dicts with ``id``, ``report`` and ``images`` (``(V, 3, S, S)``) or
            cached ``maps`` (and ``knowledge``, used by a per-study knowledge source
            only), as `cknet.data.AnnotationDataset` and `cknet.training.FeatureCache`
            give them.
        generation: decoding options (default: the model's ``generation_config``).
        batch_size: studies per batch.
        limit: use the first ``limit`` studies only (0: all).
        full: every NLG metric (see `score_reports`).
        labeler: for CE (see `score_reports`).
        observations: the labeler's column names.
        num_workers: data-loader worker processes.
        progress: show a progress bar.

    Returns:
        The `Evaluation`.
    """
    from tqdm.auto import tqdm

    if limit:
        data = Subset(data, range(min(limit, len(data))))
    options = (generation or model.generation_config).resolve(model.config.max_length)
    loader = DataLoader(data, batch_size=batch_size, collate_fn=collate_studies(model.tokenizer),
                        num_workers=num_workers)
    was_training = model.training
    model.eval()
    device, tokenizer = model.device, model.tokenizer
    total, count, predictions = 0.0, 0, []
    try:
        for batch in tqdm(loader, desc="evaluating", disable=not progress, leave=False):
            input_ids = batch["input_ids"].to(device)
            encoding = model.encode(**encode_inputs(batch, device))
            loss = masked_cross_entropy(model.decode(input_ids, encoding), input_ids, tokenizer.pad_id)
            total += loss.item() * len(batch["ids"])
            count += len(batch["ids"])
            found = run_search(model, encoding, len(batch["ids"]), tokenizer, options)
            texts = [tokenizer.decode(row[0]) for row in found.tokens.tolist()]
            predictions += [{"id": i, "prediction": p, "reference": r}
                            for i, p, r in zip(batch["ids"], texts, batch["reports"])]
    finally:
        model.train(was_training)
    result = score_reports([p["reference"] for p in predictions], [p["prediction"] for p in predictions],
                           model.config.dataset, tokenizer.reference_length, full, labeler, observations)
    result.loss = total / max(count, 1)
    result.predictions = predictions
    return result
