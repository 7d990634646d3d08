"""SembScore (Yu et al., Patterns 2023; the ReXrank leaderboard's "SembScore"): the cosine
similarity of the CheXbert embeddings of a generated report and its reference, per
study; the embedding is the ``[CLS]`` state of CheXbert's last layer
(`cknet.labeler.chexbert.CheXbertLabeler.embed`), as CXR-Report-Metric's
``encode.py`` takes it. A pair with a zero-norm embedding scores 0."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cknet.labeler.chexbert import CheXbertLabeler


def semb_scores(
    labeler: CheXbertLabeler, references: Sequence[str], predictions: Sequence[str]
) -> np.ndarray:
    """SembScore of each prediction against its reference.

    Args:
        labeler: a `CheXbertLabeler` (its ``embed`` method).
        references: the reference reports.
        predictions: the generated reports, in the same order.

    Returns:
        ``(n,)`` cosine similarities.

    Raises:
        ValueError: when the two lists differ in length, or the labeler cannot embed.
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not hasattr(labeler, "embed"):
        raise ValueError(f"SembScore needs CheXbert's embeddings (--labeler chexbert:...); "
                         f"{type(labeler).__name__} has none")
    reference, prediction = labeler.embed(list(references)), labeler.embed(list(predictions))
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(prediction, axis=1)
    dots = np.einsum("nd,nd->n", reference, prediction)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
