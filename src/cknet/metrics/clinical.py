"""Clinical efficacy (CE) and ROC AUC.

`ce_scores`: precision, recall, F1, accuracy and AUC of the 14 CheXpert observations
extracted from generated vs reference reports, with micro, macro or example-based
averaging and an explicit policy for uncertain labels; every result states both.

`roc_auc`: the area under the ROC curve, computed exactly from ranks (the
Mann-Whitney U statistic, ties counted as one half), per column of a label matrix.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence

import numpy as np

from cknet.metrics.report import MetricReport


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-column ROC AUC of ``scores`` against binary ``labels``.

    Args:
        labels: ``(n,)`` or ``(n, k)`` of 0/1.
        scores: same shape, higher meaning more likely positive.

    Returns:
        ``(k,)`` float array (a 0-d array for 1-D input); NaN where a column has no
        positive or no negative example.

    Raises:
        ValueError: for mismatched shapes or labels other than 0 and 1.
    """
    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must have the same shape")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    single = y.ndim == 1
    y, s = y.reshape(len(y), -1), s.reshape(len(s), -1)
    out = np.full(y.shape[1], np.nan)
    for column in range(y.shape[1]):
        positives = y[:, column] == 1
        n_pos, n_neg = int(positives.sum()), int((~positives).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = _average_ranks(s[:, column])
        out[column] = (ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out[0] if single else out


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # rank of the last member of each group of ties
    return ((last - counts + 1 + last) / 2)[inverse]


def _labels_from(
    source: object, observations: Sequence[str], labeler: Callable[[Sequence[str]], np.ndarray] | None
) -> np.ndarray:
    """A label array from an array, a labeler CSV, or report texts (labelled here)."""
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        from cknet.data.labels import load_label_csv

        with open(source, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh))
        missing = [o for o in observations if o not in header]
        if missing:
            raise ValueError(f"{os.fspath(source)} lacks the observation column(s) {missing}")
        id_column = next(c for c in header if c not in observations)
        return load_label_csv(source, observations, id_column)[2]
    if isinstance(source, np.ndarray):
        return source.astype(float)
    if isinstance(source, Sequence) and all(isinstance(r, str) for r in source):
        if labeler is None:
            from cknet.labeler import CheXpertLabeler

            labeler = CheXpertLabeler()
        return np.asarray(labeler(list(source)), dtype=float)
    raise ValueError(
        "labels must be an array, the path of a labeler's CSV output, or a list of report texts"
    )


# The CE variants papers report, by name: (averaging, observations; None = all 14).
TOP5 = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
CE_VARIANTS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "micro-14": ("micro", None),
    "macro-14": ("macro", None),
    "micro-5": ("micro", TOP5),
    "example-14": ("example", None),
}


def ce_scores(
    reference: object,
    predicted: object,
    average: str = "micro",
    uncertain: int = 0,
    labeler: Callable[[Sequence[str]], np.ndarray] | None = None,
    observations: Sequence[str] | None = None,
    variant: str | None = None,
    absent: str = "zero",
) -> MetricReport:
    """Clinical efficacy: accuracy, precision, recall, F1 and AUC of predicted findings.

    Args:
        reference: the reference labels: a ``(num_reports, num_observations)`` array of
            1 / 0 / -1 / NaN (as `CheXpertLabeler` returns), the path of a CSV file
            written by the CheXpert labeler or CheXbert (observation columns named as in
            CheXpert), or a list of report texts, labelled with ``labeler``.
        predicted: the generated reports' labels, in any of the same forms.
        average: ``"micro"`` (pool every report-observation cell), ``"macro"`` (mean over
            observations) or ``"example"`` (mean over reports; a report with no finding
            in either is a perfect match).
        uncertain: what -1 counts as, 0 (default) or 1. Blank (NaN) counts as 0.
        labeler: any callable from report texts to such an array (default
            `CheXpertLabeler`).
        observations: column names (default: the 14 CheXpert observations).
        variant: a named variant of `CE_VARIANTS`, setting the averaging and the
            observations scored (of the 14 CheXpert ones): ``"micro-14"``,
            ``"macro-14"``, ``"micro-5"`` (the "F1-5" of the top five: Atelectasis,
            Cardiomegaly, Consolidation, Edema, Pleural Effusion) or ``"example-14"``.
        absent: with macro averaging, an observation that neither the references nor the
            predictions state: ``"zero"`` counts its F1 as 0 (sklearn's
            ``zero_division=0``, the usual reading; then predictions equal to their
            references score below 1 when an observation never occurs) or ``"skip"``
            leaves it out of the mean. The result's settings state which.

    Returns:
        A `MetricReport` whose scores are accuracy, precision, recall, F1, AUC (mean over
        observations where the reference has both classes; with binary predictions it
        is the balanced accuracy) and exact_match (reports with every column right); its
        table has one row per observation; its settings state averaging and policy.
        Precision, recall or F1 with a zero denominator count as 0.

    Raises:
        ValueError: for an unknown averaging, policy or variant, or label arrays that
            differ in shape.
    """
    from cknet.labeler import OBSERVATIONS, binarize

    subset = None
    if variant is not None:
        if variant not in CE_VARIANTS:
            raise ValueError(f"variant must be one of {sorted(CE_VARIANTS)}, got {variant!r}")
        if observations is not None:
            raise ValueError("a variant scores CheXpert's observations: give variant or observations")
        average, subset = CE_VARIANTS[variant]
    if average not in ("micro", "macro", "example"):
        raise ValueError(f"average must be 'micro', 'macro' or 'example', got {average!r}")
    if absent not in ("zero", "skip"):
        raise ValueError(f"absent must be 'zero' or 'skip', got {absent!r}")
    names = list(observations) if observations is not None else list(OBSERVATIONS)
    ref = binarize(_labels_from(reference, names, labeler), uncertain).astype(bool)
    pred = binarize(_labels_from(predicted, names, labeler), uncertain).astype(bool)
    if subset is not None:
        columns = [names.index(o) for o in subset]
        ref, pred, names = ref[:, columns], pred[:, columns], list(subset)
    if ref.shape != pred.shape or ref.shape[1] != len(names):
        raise ValueError(
            f"reference labels {ref.shape} and predicted labels {pred.shape} must both be "
            f"(num_reports, {len(names)})"
        )
    tp, fp = (ref & pred).sum(0), (~ref & pred).sum(0)
    fn, tn = (ref & ~pred).sum(0), (~ref & ~pred).sum(0)
    auc = roc_auc(ref.astype(float), pred.astype(float))
    table = []
    for j, name in enumerate(names):
        p, r, f = _prf(tp[j], fp[j], fn[j])
        table.append(dict(observation=name, support=int(ref[:, j].sum()),
                          predicted=int(pred[:, j].sum()), precision=p, recall=r, f1=f,
                          accuracy=float((tp[j] + tn[j]) / len(ref)),
                          auc=None if np.isnan(auc[j]) else float(auc[j])))
    accuracy, precision, recall, f1 = _averaged(ref, pred, table, average, absent)
    defined = auc[~np.isnan(auc)]
    scores = {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1,
              "auc": float(defined.mean()) if len(defined) else None,
              "exact_match": float((ref == pred).all(axis=1).mean())}
    settings = {"average": average, "uncertain": "positive (-1 -> 1)" if uncertain else "negative (-1 -> 0)",
                "blank": "-> 0", "observations": str(len(names)), "reports": str(len(ref))}
    if average == "macro":
        settings["absent observations"] = ("F1 0, counted in the mean" if absent == "zero"
                                           else "left out of the mean")
    if variant is not None:
        settings = {"variant": variant, **settings, "observation set": ", ".join(names)}
    return MetricReport(scores, settings, table=table)


def _averaged(ref: np.ndarray, pred: np.ndarray, table: list[dict], average: str, absent: str
              ) -> tuple[float, float, float, float]:
    """Accuracy, precision, recall and F1 of ``(num_reports, num_observations)`` boolean
    labels, averaged as `ce_scores` says (``table``: its per-observation rows)."""
    tp, fp, fn = (ref & pred).sum(0), (~ref & pred).sum(0), (ref & ~pred).sum(0)
    if average == "micro":
        precision, recall, f1 = _prf(tp.sum(), fp.sum(), fn.sum())
        return float((ref == pred).sum() / ref.size), precision, recall, f1
    if average == "macro":
        stated = [row for j, row in enumerate(table) if tp[j] + fp[j] + fn[j] > 0]
        counted = stated if absent == "skip" else table
        precision, recall, f1 = (float(np.mean([row[k] for row in counted])) if counted else 0.0
                                 for k in ("precision", "recall", "f1"))
        return float(np.mean([row["accuracy"] for row in table])), precision, recall, f1
    per_report = []
    for i in range(len(ref)):
        a, b, c = (ref[i] & pred[i]).sum(), (~ref[i] & pred[i]).sum(), (ref[i] & ~pred[i]).sum()
        per_report.append((1.0, 1.0, 1.0) if a + b + c == 0 else _prf(a, b, c))
    precision, recall, f1 = (float(np.mean(v)) for v in zip(*per_report))
    return float(np.mean((ref == pred).mean(axis=1))), precision, recall, f1


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = float(tp / (tp + fp)) if tp + fp else 0.0
    recall = float(tp / (tp + fn)) if tp + fn else 0.0
    f1 = float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0
    return precision, recall, f1
