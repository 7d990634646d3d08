"""The training loss of the paper (Section IV.C): masked cross-entropy with teacher forcing.

``logits[:, t]`` scores the token at position t + 1, so the targets are the labels
shifted by one; ``<pad>`` and -100 targets are ignored and the loss is the mean over
the remaining target tokens of the batch (as the R2Gen family computes it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, pad_id: int,
                         label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of ``logits[:, t]`` against ``labels[:, t + 1]`` over the target
    tokens.

    Args:
        logits: ``(B, T, V)``.
        labels: ``(B, T)`` ids aligned with the input ids (usually the input ids).
        pad_id: the padding id, ignored as a target (as is -100).
        label_smoothing: as in `torch.nn.functional.cross_entropy` (0: none).

    Returns:
        The loss, a scalar (computed in float32).

    Raises:
        ValueError: for labels of another shape, or without any target token.
    """
    if not isinstance(labels, torch.Tensor) or labels.shape != logits.shape[:2]:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must have the shape of input_ids {tuple(logits.shape[:2])}, got {got}")
    targets = labels[:, 1:].masked_fill(labels[:, 1:] == pad_id, IGNORE_INDEX)
    if not (targets != IGNORE_INDEX).any():
        raise ValueError("labels hold no target token (all are <pad> or -100)")
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
                           label_smoothing=label_smoothing)
