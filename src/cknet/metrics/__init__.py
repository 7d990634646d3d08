"""Evaluation metrics, each returning a `MetricReport` (scores with their settings).

- `nlg`: `nlg_scores` (BLEU-1..4, METEOR, ROUGE-L, CIDEr), `bleu_4`, `meteor_score`;
- `clinical`: `ce_scores` (clinical efficacy over the CheXpert observations, with the
  variants papers report, `CE_VARIANTS`) and `roc_auc`;
- `report`: `MetricReport`;
- `study_statistics` and `resampling`: per-study statistics, bootstrap intervals and
  paired comparisons over studies;
- model-based, from local weights: `bertscore`, `semb`, `radgraph`, `radcliq`,
  `ratescore`, `green`, all in one call with `model_based` (``cknet evaluate
  --metrics rexrank``).
"""

from cknet.metrics.clinical import CE_VARIANTS, TOP5, ce_scores, roc_auc
from cknet.metrics.nlg import NLG_METRICS, bleu_4, meteor_score, nlg_scores
from cknet.metrics.report import MetricReport

__all__ = [
    "CE_VARIANTS",
    "NLG_METRICS",
    "TOP5",
    "MetricReport",
    "bleu_4",
    "ce_scores",
    "meteor_score",
    "nlg_scores",
    "roc_auc",
]
