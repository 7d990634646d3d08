"""Confidence intervals and paired comparisons of report metrics, by resampling studies.

A corpus metric such as BLEU-n or a micro F1 is not a mean of per-study scores, so the
bootstrap here resamples each study's *sufficient statistics* and recomputes the metric
from their sums, exactly as the metric is computed on a corpus that holds those studies:

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
  `cknet.metrics.ce_scores` computes each.

METEOR is left out: its corpus score is computed by the Java scorer from pooled
statistics it does not return.

`bootstrap_intervals` gives percentile intervals (Efron and Tibshirani 1993).
`paired_comparison` compares two systems on the same studies: the difference B - A, its
paired-bootstrap interval (the same resampled studies for both), and two p-values, one
from that bootstrap and one from approximate randomisation (Noreen 1989; Riezler and
Maxwell 2005), which swaps the two systems' outputs of each study at random.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cknet.metrics.clinical import TOP5

BLEU_ORDERS = 4
TIE = 1e-12  # differences of scores below this are ties
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


def _macro_f1(count: int) -> Callable[[np.ndarray], np.ndarray]:
    """The mean over the ``count`` observations of their F1."""

    def metric(sums: np.ndarray) -> np.ndarray:
        tp, fp, fn = (sums[:, part * count:(part + 1) * count] for part in range(3))
        return _f1(tp, fp, fn).mean(1)

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
        _add_clinical(statistics, aggregates, reference_labels, predicted_labels, observations)
    return StudyStatistics(statistics, aggregates)


def _add_clinical(statistics: dict, aggregates: dict, reference_labels: np.ndarray | None,
                  predicted_labels: np.ndarray | None, observations: Sequence[str] | None) -> None:
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
        statistics["ce_macro-14_f1"], aggregates["ce_macro-14_f1"] = per_observation, _macro_f1(count)
        a, b, c = tp.sum(1), fp.sum(1), fn.sum(1)
        example = np.where(a + b + c == 0, 1.0, _f1(a, b, c))
        statistics["ce_example-14_f1"] = np.stack([example, np.ones(len(example))], 1)
        aggregates["ce_example-14_f1"] = _mean


def _inverse_mean(sums: np.ndarray) -> np.ndarray:
    """One over the mean from summed ``(score, 1)`` columns (ReXrank's 1/RadCliQ-v1)."""
    return sums[:, 1] / sums[:, 0]


def mean_statistics(per_study: dict[str, np.ndarray]) -> StudyStatistics:
    """Metrics that are means of per-study scores (BERTScore, SembScore, RadGraph F1,
    RadCliQ-v1) as `StudyStatistics`: each study's (score, 1), aggregated as their mean;
    with RadCliQ-v1, also ``1/RadCliQ-v1``, the inverse of its mean (ReXrank's ranking).

    Args:
        per_study: metric name -> ``(N,)`` scores.
    """
    statistics = {name: np.stack([np.asarray(values, dtype=float), np.ones(len(values))], 1)
                  for name, values in per_study.items()}
    aggregates = {name: _mean for name in per_study}
    if "RadCliQ-v1" in per_study:
        statistics["1/RadCliQ-v1"], aggregates["1/RadCliQ-v1"] = statistics["RadCliQ-v1"], _inverse_mean
    return StudyStatistics(statistics, aggregates)


def _resample_weights(count: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(resamples, count)``: how many times each study is drawn in each resample."""
    return rng.multinomial(count, np.full(count, 1.0 / count), size=resamples).astype(float)


@dataclass
class Interval:
    """A score with its bootstrap confidence interval.

    Attributes:
        value: the metric on all the studies.
        low: the lower bound.
        high: the upper bound.
    """

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _check(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def bootstrap_intervals(
    statistics: StudyStatistics, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Interval]:
    """Percentile bootstrap intervals of every metric, resampling studies with replacement.

    Args:
        statistics: from `study_statistics`.
        resamples: bootstrap resamples.
        confidence: the intervals' nominal coverage.
        seed: the resampling's random seed (the intervals are reproducible).

    Returns:
        Metric name -> `Interval`.

    Raises:
        ValueError: for fewer than one resample or a confidence outside (0, 1).
    """
    _check(resamples, confidence)
    weights = _resample_weights(len(statistics), resamples, np.random.default_rng(seed))
    samples = statistics.scores(weights)
    return {name: Interval(value, *_percentiles(samples[name], confidence))
            for name, value in statistics.value().items()}


@dataclass
class Comparison:
    """System B against system A on one metric, over the same studies.

    Attributes:
        a: A's score.
        b: B's score.
        difference: B - A.
        low: the lower bound of the difference's paired-bootstrap interval.
        high: its upper bound.
        p_bootstrap: two-sided p-value of "no difference" from the paired bootstrap: twice
            the smaller share of resamples whose difference is <= 0 or >= 0, at most 1.
        p_randomisation: two-sided p-value from approximate randomisation: the share of
            random swaps (plus the observed one) whose absolute difference is at least
            the observed one.
    """

    a: float
    b: float
    difference: float
    low: float
    high: float
    p_bootstrap: float
    p_randomisation: float


def paired_comparison(
    a: StudyStatistics | Sequence[StudyStatistics],
    b: StudyStatistics | Sequence[StudyStatistics],
    resamples: int = 1000,
    trials: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Comparison]:
    """Compare two systems' reports of the same studies, metric by metric.

    Given several runs of each system (one per training seed, paired: run i of A with run
    i of B), a score is the mean over the runs, and each resample or swap applies to a
    study in every run at once, so that the interval and p-values account for the test
    studies drawn, with the runs' spread inside them.

    Args:
        a: statistics of system A's reports (`study_statistics`), or one per run.
        b: those of system B, for the same studies in the same order, against the same
            references; as many runs as ``a``.
        resamples: paired bootstrap resamples.
        trials: approximate-randomisation trials.
        confidence: the difference intervals' nominal coverage.
        seed: the random seed (the results are reproducible).

    Returns:
        Metric name -> `Comparison`, for the metrics both have.

    Raises:
        ValueError: for different numbers of studies or runs, or bad settings.
    """
    _check(resamples, confidence)
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    runs_a = [a] if isinstance(a, StudyStatistics) else list(a)
    runs_b = [b] if isinstance(b, StudyStatistics) else list(b)
    if len(runs_a) != len(runs_b) or not runs_a:
        raise ValueError(f"{len(runs_a)} run(s) of system A and {len(runs_b)} of system B: "
                         f"pair them one to one")
    count = len(runs_a[0])
    sizes = {len(run) for run in runs_a + runs_b}
    if len(sizes) > 1:
        differ = " (or its runs differ)" if len(runs_a) > 1 else ""
        raise ValueError(f"system A has {len(runs_a[0])} studies and system B {len(runs_b[0])}{differ}: "
                         f"compare the same studies")
    rng = np.random.default_rng(seed)
    weights = _resample_weights(count, resamples, rng)
    swaps = rng.integers(0, 2, size=(trials, count)).astype(float)
    out = {}
    for name in (n for n in runs_a[0].names if all(n in run.statistics for run in runs_a + runs_b)):
        value_a = value_b = 0.0
        boot, swapped = np.zeros(resamples), np.zeros(trials)
        for run_a, run_b in zip(runs_a, runs_b):
            stats_a, stats_b = run_a.statistics[name], run_b.statistics[name]
            aggregate = run_a.aggregates[name]
            value_a += float(aggregate(stats_a.sum(0, keepdims=True))[0]) / len(runs_a)
            value_b += float(aggregate(stats_b.sum(0, keepdims=True))[0]) / len(runs_a)
            boot += (aggregate(weights @ stats_b) - aggregate(weights @ stats_a)) / len(runs_a)
            moved = swaps @ (stats_a - stats_b)  # what the swapped studies move from B to A
            swapped += (aggregate(stats_b.sum(0) + moved) - aggregate(stats_a.sum(0) - moved)) / len(runs_a)
        observed = value_b - value_a
        low, high = _percentiles(boot, confidence)
        # differences within float rounding (e.g. two BLEU scores of 1e-10) count as ties
        p_boot = min(1.0, 2 * min(float(np.mean(boot <= TIE)), float(np.mean(boot >= -TIE))))
        exceed = np.sum(np.abs(swapped) >= abs(observed) - TIE)
        out[name] = Comparison(value_a, value_b, observed, low, high, p_boot,
                               float((exceed + 1) / (trials + 1)))
    return out
