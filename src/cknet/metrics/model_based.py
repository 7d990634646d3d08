"""Model-based report metrics in one call (`ModelMetrics`), per study, with bootstrap intervals:
``cknet evaluate --metrics bertscore,semb,radgraph,radcliq`` (and ``rexrank``).

Each metric is the mean of per-study scores, so the per-study scores are kept (any
subset of studies can be re-aggregated) and resampled as `cknet.metrics.resampling`
resamples the others.

| name | what | weights |
| --- | --- | --- |
| ``BERTScore_F1`` | `cknet.metrics.bertscore`, ReXrank's setting | ``distilroberta-base`` |
| ``SembScore`` | `cknet.metrics.semb` | CheXbert (``chexbert.pth`` + ``bert-base-uncased``) |
| ``RadGraph_simple``, ``_partial``, ``_complete``, ``_combined`` | `cknet.metrics.radgraph` | RadGraph |
| ``RadCliQ-v1`` (and ``1/RadCliQ-v1`` when positive) | `cknet.metrics.radcliq` | all three above |
| ``RaTEScore`` | `cknet.metrics.ratescore` | RaTE-NER + BioLORD-2023-C (+ medspaCy) |
| ``GREEN`` | `cknet.metrics.green` (only when asked: a 7B judge) | GREEN-radllama2-7b |
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cknet.metrics.resampling import Interval, bootstrap_intervals
from cknet.metrics.study_statistics import mean_statistics

if TYPE_CHECKING:
    from cknet.labeler.chexbert import CheXbertLabeler

MODEL_METRICS = ("bertscore", "semb", "radgraph", "radcliq", "ratescore", "green")
REXRANK = ("nlg", "ce", "bertscore", "semb", "radgraph", "radcliq", "ratescore")
"""What ``--metrics rexrank`` computes: BLEU-2 (with the NLG metrics), BERTScore,
SembScore, RadGraph F1, RadCliQ-v1 and RaTEScore; ReXrank's GREEN, a 7B judge, only
when asked (``--metrics rexrank,green``)."""


@dataclass
class ModelScores:
    """Per-study model-based scores, their means and intervals.

    Attributes:
        per_study: metric name -> ``(n,)`` scores, in the order of the studies.
        intervals: metric name -> the mean with its bootstrap interval (empty without resamples).
        answers: metric name -> each study's text behind its score (GREEN's judge's answers).
    """

    per_study: dict[str, np.ndarray]
    intervals: dict[str, Interval] = field(default_factory=dict)
    answers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def means(self) -> dict[str, float]:
        """Metric name -> the mean over the studies; with RadCliQ-v1 (lower is better)
        also ``1/RadCliQ-v1``, one over its mean, the column of ReXrank's current tables
        (``results/findings_result_*.csv``; its earlier tables showed the mean), only
        when the mean is positive: near or below 0 the inverse means nothing."""
        means = {
            name: float(np.mean(values)) if len(values) else float("nan")
            for name, values in self.per_study.items()
        }
        if means.get("RadCliQ-v1", 0.0) > 0:
            means["1/RadCliQ-v1"] = 1 / means["RadCliQ-v1"]
        return means


class ModelMetrics:
    """The model-based metrics of generated reports, each model loaded once, when first
    needed, and reused for every set of predictions scored (e.g. both systems of
    ``cknet compare``).

    Args:
        metrics: among `MODEL_METRICS`.
        bertscore_model: BERTScore's model: a local folder or a hub id in the cache.
        chexbert: a `CheXbertLabeler` (needed for ``"semb"`` and ``"radcliq"``).
        radgraph_model: RadGraph's ``radgraph.tar.gz`` or its folder (needed for
            ``"radgraph"`` and ``"radcliq"``).
        ratescore_models: RaTEScore's entity tagger and encoder (default: the
            package's, from the Hugging Face cache).
        ratescore_sentences: RaTEScore's sentence splitter, ``"medspacy"`` (the
            package's) or ``"periods"`` (no medspaCy; close, not equal).
        green_model: GREEN's judge (default: ``StanfordAIMI/GREEN-radllama2-7b`` from the
            Hugging Face cache).
        device: where the models run.
        radcliq_idf: RadCliQ-v1 with BERTScore weighted by idf over the references
            (RadEval's); False (default) takes it without idf, as ReXrank does.

    Raises:
        ValueError: for an unknown metric or sentence splitter, or a metric without the
            model it needs.
        ImportError: for RaTEScore with medspaCy's sentences and no medspaCy (at once,
            before any scoring).
    """

    def __init__(
        self,
        metrics: Sequence[str],
        bertscore_model: str | os.PathLike[str] = "distilroberta-base",
        chexbert: CheXbertLabeler | None = None,
        radgraph_model: str | os.PathLike[str] | None = None,
        ratescore_models: Sequence[str | os.PathLike[str]] | None = None,
        ratescore_sentences: str = "medspacy",
        green_model: str | os.PathLike[str] | None = None,
        device: str | None = None,
        radcliq_idf: bool = False,
    ) -> None:
        unknown = [m for m in metrics if m not in MODEL_METRICS]
        if unknown:
            raise ValueError(f"unknown model-based metric(s) {unknown}; choose among {list(MODEL_METRICS)}")
        need = {"semb": "CheXbert", "radcliq": "CheXbert"} if chexbert is None else {}
        if radgraph_model is None:
            need["radgraph"] = "RadGraph"
            need["radcliq"] = "RadGraph and CheXbert" if chexbert is None else "RadGraph"
        missing = {m: need[m] for m in metrics if m in need}
        if missing:
            raise ValueError(
                f"{', '.join(missing)} need(s) {', '.join(sorted(set(missing.values())))}: give --chexbert "
                f"CHECKPOINT[,BERT_DIR] (or --labeler chexbert:...) for CheXbert, --radgraph "
                f"radgraph.tar.gz for RadGraph"
            )
        self.split_sentences = None
        if "ratescore" in metrics:  # before any scoring: without medspaCy, say so now
            from cknet.metrics.ratescore import SENTENCE_SPLITTERS, medspacy_sentences, period_sentences

            if ratescore_sentences not in SENTENCE_SPLITTERS:
                raise ValueError(
                    f"RaTEScore's sentences: one of {SENTENCE_SPLITTERS}, not {ratescore_sentences!r}"
                )
            medspacy = ratescore_sentences == "medspacy"
            self.split_sentences = medspacy_sentences() if medspacy else period_sentences
        self.metrics, self.chexbert, self.device = list(metrics), chexbert, device
        self.bertscore_model, self.radgraph_model = bertscore_model, radgraph_model
        self.ratescore_models, self.green_model = ratescore_models, green_model
        self.radcliq_idf = radcliq_idf
        self._loaded: dict[str, Any] = {}

    def _model(self, name: str) -> Any:
        if name not in self._loaded:
            if name == "bertscore":
                from cknet.metrics.bertscore import BERTScorer

                self._loaded[name] = BERTScorer(self.bertscore_model, device=self.device)
            elif name == "radgraph":
                from cknet.metrics.radgraph import RadGraph

                self._loaded[name] = RadGraph(self.radgraph_model, device=self.device)
            elif name == "ratescore":
                from cknet.metrics.ratescore import RaTEScorer

                models = self.ratescore_models or ()
                split = self.split_sentences
                self._loaded[name] = RaTEScorer(*models, split_sentences=split, device=self.device)
            else:
                from cknet.metrics.green import JUDGE, GREENScorer

                self._loaded[name] = GREENScorer(self.green_model or JUDGE, device=self.device)
        return self._loaded[name]

    def score(
        self, references: Sequence[str], predictions: Sequence[str], resamples: int = 1000, seed: int = 0,
        ids: Sequence[str] | None = None,
    ) -> ModelScores:
        """The metrics of one set of generated reports.

        Args:
            references: the reference reports.
            predictions: the generated reports, in the same order.
            resamples: bootstrap resamples for the 95% intervals (0: none).
            seed: the resampling's seed.
            ids: the studies' ids, to name them in errors (default: their positions).

        Returns:
            The per-study scores and the intervals of their means.

        Raises:
            ValueError: when a metric is not a finite number for some study (they are
                named): no NaN reaches a mean silently.
        """
        metrics, per_study, answers = self.metrics, {}, {}
        if "bertscore" in metrics:
            per_study["BERTScore_F1"] = self._model("bertscore").score(references, predictions).f1
        if "semb" in metrics or "radcliq" in metrics:
            from cknet.metrics.semb import semb_scores

            semb = semb_scores(self.chexbert, references, predictions)
            if "semb" in metrics:
                per_study["SembScore"] = semb
        if "radgraph" in metrics or "radcliq" in metrics:
            graph = self._model("radgraph").score(references, predictions)
            if "radgraph" in metrics:
                for level in ("simple", "partial", "complete", "combined"):
                    per_study[f"RadGraph_{level}"] = getattr(graph, level)
        if "ratescore" in metrics:
            per_study["RaTEScore"] = self._model("ratescore").score(references, predictions)
        if "green" in metrics:
            green = self._model("green").score(references, predictions)
            per_study["GREEN"], answers["GREEN"] = green.green, green.answers
        if "radcliq" in metrics:
            from cknet.metrics.radcliq import bleu2_per_study, radcliq_v1

            if "BERTScore_F1" in per_study and not self.radcliq_idf:
                bertscore = per_study["BERTScore_F1"]
            else:  # without idf as ReXrank (CXR-Report-Metric); with idf as RadEval
                bertscore = self._model("bertscore").score(references, predictions, idf=self.radcliq_idf).f1
            per_study["RadCliQ-v1"] = radcliq_v1(
                graph.combined, bertscore, semb, bleu2_per_study(references, predictions)
            )
        for name, values in per_study.items():
            bad = np.flatnonzero(~np.isfinite(np.asarray(values, dtype=float)))
            if len(bad):
                named = [ids[i] if ids is not None else f"#{i}" for i in bad[:5]]
                raise ValueError(f"{name} is not a finite number for {len(bad)} of {len(values)} studies "
                                 f"(e.g. {named}); nothing was averaged")
        intervals = {}
        if resamples and per_study and len(references):
            intervals = bootstrap_intervals(mean_statistics(per_study), resamples, seed=seed)
        return ModelScores(per_study, intervals, answers)
