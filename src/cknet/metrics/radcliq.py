"""RadCliQ-v1 (Yu et al., Patterns 2023): a linear model of radiologists' error counts over
four per-study metrics, lower is better; ReXrank's tables show its mean.

For a study with metrics x = (RadGraph combined, BERTScore F1, SembScore, BLEU-2),

    RadCliQ-v1 = Σ_k c_k (x_k - μ_k) / σ_k + c_0,

with the normalisation (μ, σ) and coefficients (c) fitted by the authors
(CXR-Report-Metric, ``run_eval.py``), as RadEval (commit e0a3909) transcribes them
(`NORMALISATION`, `COEFFICIENTS`). The corpus value is the mean over studies. The inputs:
RadGraph's combined entity/relation F1 (`cknet.metrics.radgraph`), BERTScore with
``distilroberta-base``, layer 5, baseline rescaling, SembScore, and each study's BLEU-2
(pycocoevalcap, whitespace tokens of the texts as given). BERTScore is taken without idf
weights, as CXR-Report-Metric (``config.py``: ``USE_IDF = False``) and so ReXrank compute
it: ReXrank's RadCliQ-v1 column is rebuilt from its own BertScore, SembScore, RadGraph and
BLEU columns by this formula (docs/evaluation.md). RadEval weights BERTScore by idf over
the references: ``cknet evaluate --radcliq-idf`` (`ModelMetrics(radcliq_idf=True)`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FEATURES = ("radgraph_combined", "bertscore", "semb_score", "bleu_score")
"""The four inputs, in the model's order (CXR-Report-Metric's column names)."""
NORMALISATION = {
    "mean": (0.53792312, 0.61757256, 0.76479421, 0.44738335),
    "scale": (0.30282584, 0.22430938, 0.25394391, 0.29892717),
}
"""The fitted standardisation (μ, σ) of the four inputs."""
COEFFICIENTS = (-3.77083683e-01, -3.70300100e-01, -2.52616218e-01, 4.31504841e-12)
"""The fitted weights of the four standardised inputs."""
INTERCEPT = 2.46655256e-10


def radcliq_v1(
    radgraph_combined: Sequence[float],
    bertscore: Sequence[float],
    semb: Sequence[float],
    bleu2: Sequence[float],
) -> np.ndarray:
    """Each study's RadCliQ-v1 from its four metrics (lower is better).

    Args:
        radgraph_combined: ``(n,)`` RadGraph's mean of entity and relation F1.
        bertscore: ``(n,)`` BERTScore F1 (rescaled; no idf for ReXrank's value).
        semb: ``(n,)`` SembScore.
        bleu2: ``(n,)`` BLEU-2 of each study.

    Returns:
        ``(n,)`` RadCliQ-v1.

    Raises:
        ValueError: when the four differ in length.
    """
    columns = [np.asarray(c, dtype=np.float64) for c in (radgraph_combined, bertscore, semb, bleu2)]
    if len({len(c) for c in columns}) != 1:
        raise ValueError(
            f"the four metrics must have one value per study, got lengths {[len(c) for c in columns]}"
        )
    standardised = (np.stack(columns, 1) - NORMALISATION["mean"]) / NORMALISATION["scale"]
    return standardised @ np.asarray(COEFFICIENTS) + INTERCEPT


def bleu2_per_study(references: Sequence[str], predictions: Sequence[str]) -> np.ndarray:
    """Each study's BLEU-2 (pycocoevalcap's sentence scores, ``closest`` reference length).

    Args:
        references: the reference reports.
        predictions: the generated reports, in the same order.
    """
    from pycocoevalcap.bleu.bleu import Bleu

    if not len(references):
        return np.zeros(0)
    gts = {i: [r] for i, r in enumerate(references)}
    res = {i: [p] for i, p in enumerate(predictions)}
    return np.asarray(Bleu(2).compute_score(gts, res, verbose=0)[1][1], dtype=np.float64)
