"""Per-study sufficient statistics of report metrics, from which a metric is recomputed
for any weighting of the studies (a bootstrap resample, a swap of two systems; see
`cknet.metrics.resampling`).

A corpus metric such as BLEU-n or a micro F1 is not a mean of per-study scores, so each
study keeps the statistics the corpus metric is computed from, and the metric is
recomputed from their sums, exactly as on a corpus that holds those studies:

- BLEU-n (Papineni et al. 2002, as pycocoevalcap computes it with one reference): each
  study's hypothesis length, reference length, and per order k = 1..4 its n-gram count
  ("guess") and clipped matches ("correct");
  ``BLEU-n = BP * prod_{k<=n} ((correct_k + 1e-15) / (guess_k + 1e-9))^(1/n)``, with the
  brevity penalty ``BP = exp(1 - ref_len / hyp_len)`` when the corpus hypotheses are
  shorter than the references;
- ROUGE-L and CIDEr-D, which pycocoevalcap reports as the mean of per-study scores: the
  per-study scores (CIDEr-D's document frequencies are those of the whole reference set,
  held fixed);
- clinical efficacy: each study's true positives, false positives and false negatives
  per observation, giving the micro F1 over all observations ("ce_f1", CheXpert's 14),
  over the findings (without "No Finding"), over the top five, the macro F1 (mean of the
  observations' F1) and the example-based F1 (mean over studies), as
  `cknet.metrics.ce_scores` computes each;
- the model-based metrics, means of per-study scores (`mean_statistics`).

METEOR is left out: its corpus score is computed by the Java scorer from pooled
statistics it does not return.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cknet.metrics.clinical import TOP5

BLEU_ORDERS = 4
NO_FINDING = "No Finding"


def _bleu(order: int) -> Callable[[np.ndarray], np.ndarray]:
    """BLEU-``order`` from summed statistics ``(R, 2 + 2 * BLEU_ORDERS)``: hypothesis
    length, reference length, guesses per order, correct n-grams per order."""

    def metric(sums: np.ndarray) -> np.ndarray:
        hyp_len, ref_len = sums[:, 0], sums[:, 1]
        guess, correct = sums[:, 2:2 + BLEU_ORDERS], sums[:, 2 + BLEU_ORDERS:]
        precision = (correct[:, :order] + 1e-15) / (guess[:, :order] + 1e-9)
        score = np.prod(precision, axis=1) ** (1.0 / order)
        ratio = (hyp_len + 1e-15) / (ref_len + 1e-9)
        return np.where(ratio < 1, score * np.exp(1 - 1 / ratio), score)

    return metric


def _mean(sums: np.ndarray) -> np.ndarray:
    """The mean from summed ``(score, 1)`` columns."""
    return sums[:, 0] / sums[:, 1]


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 = 2 tp / (2 tp + fp + fn), 0 where the denominator is 0."""
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator, dtype=float), where=denominator > 0)


def _micro_f1(columns: Sequence[int], count: int) -> Callable[[np.ndarray], np.ndarray]:
    """Micro F1 over the observations ``columns`` of ``count``, from summed
    ``(R, 3 * count)`` statistics (tp, fp, fn per observation)."""
    columns = list(columns)

    def metric(sums: np.ndarray) -> np.ndarray:
        tp, fp, fn = (sums[:, part * count:(part + 1) * count][:, columns].sum(1) for part in range(3))
        return _f1(tp, fp, fn)

    return metric


def _macro_f1(count: int, absent: str = "zero") -> Callable[[np.ndarray], np.ndarray]:
    """The mean over the ``count`` observations of their F1; an observation no report
    states counts 0 (``absent="zero"``) or is left out (``"skip"``)."""

    def metric(sums: np.ndarray) -> np.ndarray:
        tp, fp, fn = (sums[:, part * count:(part + 1) * count] for part in range(3))
        f1 = _f1(tp, fp, fn)
        if absent == "zero":
            return f1.mean(1)
        stated = (tp + fp + fn) > 0
        return np.where(stated.any(1), (f1 * stated).sum(1) / np.maximum(stated.sum(1), 1), 0.0)

    return metric


@dataclass
class StudyStatistics:
    """Per-study sufficient statistics of N studies, from which each metric is recomputed
    for any weighting of the studies (a bootstrap resample, a swap of two systems).

    Attributes:
        statistics: metric name -> ``(N, k)`` float array of each study's statistics.
        aggregates: metric name -> function from summed statistics ``(R, k)`` to the
            metric ``(R,)``.
    """

    statistics: dict[str, np.ndarray]
    aggregates: dict[str, Callable[[np.ndarray], np.ndarray]]

    def __len__(self) -> int:
        return len(next(iter(self.statistics.values())))

    @property
    def names(self) -> list[str]:
        """The metrics, in order."""
        return list(self.statistics)

    def scores(self, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Each metric for each row of ``weights``.

        Args:
            weights: ``(R, N)``: how many times each study counts in each of R corpora
                (default: one corpus of every study once).

        Returns:
            Metric name -> ``(R,)`` scores.
        """
        if weights is None:
            weights = np.ones((1, len(self)))
        return {name: self.aggregates[name](weights @ stats) for name, stats in self.statistics.items()}

    def value(self) -> dict[str, float]:
        """Each metric on all the studies."""
        return {name: float(scores[0]) for name, scores in self.scores().items()}


def _ngram_counts(words: list[str]) -> Counter:
    return Counter(tuple(words[i:i + k]) for k in range(1, BLEU_ORDERS + 1)
                   for i in range(len(words) - k + 1))


def bleu_statistics(references: Sequence[str], predictions: Sequence[str]) -> np.ndarray:
    """Each study's BLEU statistics (texts split on white space, one reference each).

    Args:
        references: the reference texts, as scored.
        predictions: the generated texts, as scored, in the same order.

    Returns:
        ``(N, 2 + 2 * 4)``: hypothesis length, reference length, n-grams of the hypothesis
        per order 1..4, and those of them matched in the reference (clipped counts).
    """
    rows = np.zeros((len(references), 2 + 2 * BLEU_ORDERS))
    for i, (reference, prediction) in enumerate(zip(references, predictions)):
        hypothesis_words, reference_words = prediction.split(), reference.split()
        reference_counts = _ngram_counts(reference_words)
        rows[i, 0], rows[i, 1] = len(hypothesis_words), len(reference_words)
        rows[i, 2:2 + BLEU_ORDERS] = [max(0, len(hypothesis_words) - k) for k in range(BLEU_ORDERS)]
        for ngram, count in _ngram_counts(hypothesis_words).items():
            rows[i, 1 + BLEU_ORDERS + len(ngram)] += min(count, reference_counts[ngram])
    return rows


def study_statistics(
    references: Sequence[str],
    predictions: Sequence[str],
    reference_labels: np.ndarray | None = None,
    predicted_labels: np.ndarray | None = None,
    observations: Sequence[str] | None = None,
    macro_absent: str = "zero",
) -> StudyStatistics:
    """The statistics of every metric that resampling supports.

    Args:
        references: reference texts as the NLG metrics score them (e.g. R2Gen-cleaned and
            truncated, see `cknet.metrics.nlg.prepare_texts`).
        predictions: generated texts, likewise prepared, in the same order.
        reference_labels: ``(N, O)`` binary labels of the references (0/1, uncertain and
            blank already resolved), or None for no clinical efficacy.
        predicted_labels: the same for the predictions.
        observations: the ``O`` label columns' names (default: CheXpert's 14).
        macro_absent: macro F1's convention for an observation no report states.

    Returns:
        `StudyStatistics` with BLEU_1..4, ROUGE_L, CIDEr and, given labels, ``ce_f1``
        (micro over all observations), ``ce_findings_f1`` (micro without "No Finding"),
        and for CheXpert's observations ``ce_micro-5_f1``, ``ce_macro-14_f1`` and
        ``ce_example-14_f1``.

    Raises:
        ValueError: for texts or labels of different lengths or shapes.
    """
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(references) != len(predictions) or not references:
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions "
                         f"(as many of each, at least one)")
    statistics: dict[str, np.ndarray] = {}
    aggregates: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    bleu = bleu_statistics(references, predictions)
    for order in range(1, BLEU_ORDERS + 1):
        statistics[f"BLEU_{order}"], aggregates[f"BLEU_{order}"] = bleu, _bleu(order)
    gts = {i: [r] for i, r in enumerate(references)}
    res = {i: [p] for i, p in enumerate(predictions)}
    ones = np.ones(len(references))
    for name, scorer in (("ROUGE_L", Rouge()), ("CIDEr", Cider())):
        per_study = np.asarray(scorer.compute_score(gts, res)[1], dtype=float)
        statistics[name], aggregates[name] = np.stack([per_study, ones], 1), _mean
    if reference_labels is not None or predicted_labels is not None:
        _add_clinical(statistics, aggregates, reference_labels, predicted_labels, observations, macro_absent)
    return StudyStatistics(statistics, aggregates)


def _add_clinical(statistics: dict, aggregates: dict, reference_labels: np.ndarray | None,
                  predicted_labels: np.ndarray | None, observations: Sequence[str] | None,
                  macro_absent: str = "zero") -> None:
    from cknet.labeler import OBSERVATIONS

    if reference_labels is None or predicted_labels is None:
        raise ValueError("clinical efficacy needs both reference_labels and predicted_labels")
    ref, pred = np.asarray(reference_labels) == 1, np.asarray(predicted_labels) == 1
    names = list(OBSERVATIONS if observations is None else observations)
    if ref.shape != pred.shape or ref.ndim != 2 or ref.shape[1] != len(names):
        raise ValueError(f"reference labels {ref.shape} and predicted labels {pred.shape} must both be "
                         f"(num_reports, {len(names)})")
    count = len(names)
    tp, fp, fn = (ref & pred).astype(float), (~ref & pred).astype(float), (ref & ~pred).astype(float)
    per_observation = np.concatenate([tp, fp, fn], 1)
    findings = [j for j, name in enumerate(names) if name != NO_FINDING]
    statistics["ce_f1"], aggregates["ce_f1"] = per_observation, _micro_f1(range(count), count)
    statistics["ce_findings_f1"], aggregates["ce_findings_f1"] = per_observation, _micro_f1(findings, count)
    if observations is None:
        top5 = [names.index(name) for name in TOP5]
        statistics["ce_micro-5_f1"], aggregates["ce_micro-5_f1"] = per_observation, _micro_f1(top5, count)
        statistics["ce_macro-14_f1"] = per_observation
        aggregates["ce_macro-14_f1"] = _macro_f1(count, macro_absent)
        a, b, c = tp.sum(1), fp.sum(1), fn.sum(1)
        example = np.where(a + b + c == 0, 1.0, _f1(a, b, c))
        statistics["ce_example-14_f1"] = np.stack([example, np.ones(len(example))], 1)
        aggregates["ce_example-14_f1"] = _mean


def mean_statistics(per_study: dict[str, np.ndarray]) -> StudyStatistics:
    """Metrics that are means of per-study scores (BERTScore, SembScore, RadGraph F1,
    RadCliQ-v1) as `StudyStatistics`: each study's (score, 1), aggregated as their mean
    (RadCliQ-v1's mean is what ReXrank's tables show, lower is better).

    Args:
        per_study: metric name -> ``(N,)`` scores.
    """
    statistics = {name: np.stack([np.asarray(values, dtype=float), np.ones(len(values))], 1)
                  for name, values in per_study.items()}
    aggregates = {name: _mean for name in per_study}
    return StudyStatistics(statistics, aggregates)
