"""Model-based report metrics in one call, per study, with bootstrap intervals:
``cknet evaluate --metrics bertscore,semb`` (and ``rexrank``).

Each metric is the mean of per-study scores, so the per-study scores are kept (any
subset of studies can be re-aggregated) and resampled as `cknet.metrics.resampling`
resamples the others.

| name | what | weights |
| --- | --- | --- |
| ``BERTScore_F1`` | `cknet.metrics.bertscore`, ReXrank's setting | ``distilroberta-base`` |
| ``SembScore`` | `cknet.metrics.semb` | CheXbert (``chexbert.pth`` + ``bert-base-uncased``) |

ReXrank's other metrics (RadGraph F1, RaTEScore, GREEN, and RadCliQ, which needs
RadGraph F1) are not computed by cknet yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cknet.metrics.resampling import Interval, bootstrap_intervals, mean_statistics

if TYPE_CHECKING:
    from cknet.labeler.chexbert import CheXbertLabeler

MODEL_METRICS = ("bertscore", "semb")
REXRANK = ("nlg", "ce", "bertscore", "semb")
"""What ``--metrics rexrank`` computes: BLEU-2 (with the NLG metrics), BERTScore, SembScore."""
REXRANK_MISSING = ("RadGraph F1", "RadCliQ-v1", "RaTEScore", "GREEN")


@dataclass
class ModelScores:
    """Per-study model-based scores, their means and intervals.

    Attributes:
        per_study: metric name -> ``(n,)`` scores, in the order of the studies.
        intervals: metric name -> the mean with its bootstrap interval (empty without resamples).
    """

    per_study: dict[str, np.ndarray]
    intervals: dict[str, Interval] = field(default_factory=dict)

    @property
    def means(self) -> dict[str, float]:
        """Metric name -> the mean over the studies."""
        return {
            name: float(np.mean(values)) if len(values) else float("nan")
            for name, values in self.per_study.items()
        }


def model_based_scores(
    references: Sequence[str],
    predictions: Sequence[str],
    metrics: Sequence[str],
    bertscore_model: str = "distilroberta-base",
    chexbert: CheXbertLabeler | None = None,
    resamples: int = 1000,
    seed: int = 0,
    device: str | None = None,
) -> ModelScores:
    """The model-based metrics of generated reports.

    Args:
        references: the reference reports.
        predictions: the generated reports, in the same order.
        metrics: among `MODEL_METRICS`.
        bertscore_model: BERTScore's model: a local folder or a hub id in the cache.
        chexbert: a `CheXbertLabeler` (needed for ``"semb"``).
        resamples: bootstrap resamples for the 95% intervals (0: none).
        seed: the resampling's seed.
        device: where the models run.

    Returns:
        The per-study scores and the intervals of their means.

    Raises:
        ValueError: for an unknown metric, or ``"semb"`` without CheXbert.
    """
    unknown = [m for m in metrics if m not in MODEL_METRICS]
    if unknown:
        raise ValueError(f"unknown model-based metric(s) {unknown}; choose among {list(MODEL_METRICS)}")
    per_study: dict[str, np.ndarray] = {}
    if "bertscore" in metrics:
        from cknet.metrics.bertscore import BERTScorer

        per_study["BERTScore_F1"] = (
            BERTScorer(bertscore_model, device=device).score(references, predictions).f1
        )
    if "semb" in metrics:
        if chexbert is None:
            raise ValueError(
                "SembScore needs CheXbert: give --chexbert CHECKPOINT[,BERT_DIR] or "
                "--labeler chexbert:CHECKPOINT[,BERT_DIR]"
            )
        from cknet.metrics.semb import semb_scores

        per_study["SembScore"] = semb_scores(chexbert, references, predictions)
    intervals = {}
    if resamples and per_study and len(references):
        intervals = bootstrap_intervals(mean_statistics(per_study), resamples, seed=seed)
    return ModelScores(per_study, intervals)
