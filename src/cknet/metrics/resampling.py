"""Confidence intervals and paired comparisons of report metrics, by resampling studies.

Each metric is recomputed from the summed per-study statistics of the resampled
studies (`cknet.metrics.study_statistics`), as it is computed on a corpus that holds
them. `bootstrap_intervals` gives percentile intervals (Efron and Tibshirani 1993).
`paired_comparison` compares two systems on the same studies: the difference B - A, its
paired-bootstrap interval (the same resampled studies for both), and two p-values, one
from that bootstrap and one from approximate randomisation (Noreen 1989; Riezler and
Maxwell 2005), which swaps the two systems' outputs of each study at random.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cknet.metrics.study_statistics import StudyStatistics

TIE = 1e-12  # differences of scores below this are ties
FEW_STUDIES = 30  # under this, percentile intervals cover visibly less than they claim


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
        Metric name -> `Interval`; empty for a single study, which has no spread to
        resample (a `UserWarning` says so, and another says when fewer than
        `FEW_STUDIES` studies make the intervals too rough to trust).

    Raises:
        ValueError: for fewer than one resample or a confidence outside (0, 1).
    """
    _check(resamples, confidence)
    if len(statistics) < 2:
        warnings.warn("one study has no spread to resample: no interval is given", UserWarning, stacklevel=2)
        return {}
    if len(statistics) < FEW_STUDIES:
        warnings.warn(f"bootstrap intervals over {len(statistics)} studies (fewer than {FEW_STUDIES}) are "
                      f"rough: "
                      f"their coverage falls short of {confidence:.0%}", UserWarning, stacklevel=2)
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
