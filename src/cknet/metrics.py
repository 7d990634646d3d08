"""Evaluation metrics.

`roc_auc`: the area under the ROC curve, computed exactly from ranks (the
Mann-Whitney U statistic, ties counted as one half), per column of a label matrix.
"""

from __future__ import annotations

import numpy as np


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
