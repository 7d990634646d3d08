"""The top-k knowledge query of equations (5), (6) and (8), on per-head tensors.

For every query row q (one image patch or one report token, in one head):

    D_j = q . k_j / sqrt(d)                      (5)  scores against the N knowledge keys
    S   = indices of the gamma largest D_j            top-gamma selection
    w_j = softmax_{j in S}(D_j)                       weighting="softmax" (R2GenCMN's), or
    w_j = D_j / sum_{i in S} D_i                 (6)  weighting="sum" (the paper literally)
    r   = sum_{j in S} w_j g_j                   (8)  weighted sum of the selected values

The values g_j are the knowledge vectors already transformed by W_g (equation 7).

This is the pure-PyTorch reference path. It never gathers a ``(B, H, L, gamma, d)``
tensor: the selected weights are scattered into a ``(B, H, L, N)`` matrix that is then
multiplied with the values, which is exact (the unselected entries are zero) and cheap
because N is small (41 for the default graph).

In the "sum" weighting a denominator closer to zero than ``SUM_EPS`` is replaced by
``+-SUM_EPS`` (keeping its sign, + for exactly zero), so that no weight is infinite.
Among equal scores, which one torch.topk keeps is not specified.
"""

from __future__ import annotations

import math

import torch

SUM_EPS = 1e-6
WEIGHTINGS = ("softmax", "sum")


def knowledge_query(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    top_k: int,
    weighting: str = "softmax",
) -> torch.Tensor:
    """Attend from each query to its ``top_k`` best-scoring knowledge vectors.

    Args:
        queries: ``(B, H, L, d)``.
        keys: ``(B, H, N, d)``, or ``(H, N, d)`` for a knowledge matrix shared by the batch.
        values: same shape as ``keys``.
        top_k: gamma, how many knowledge vectors each query keeps (1 <= top_k <= N).
        weighting: ``"softmax"`` or ``"sum"`` (see the module docstring).

    Returns:
        ``(B, H, L, d)`` the preserved knowledge r of equation (8), per head.

    Raises:
        ValueError: for mismatched shapes, ``top_k`` outside ``[1, N]`` or an unknown
            weighting.
    """
    if queries.dim() != 4:
        raise ValueError(f"queries must have shape (B, H, L, d), got {tuple(queries.shape)}")
    if keys.dim() not in (3, 4) or keys.shape != values.shape:
        raise ValueError(
            f"keys and values must both have shape (B, H, N, d) or (H, N, d), "
            f"got {tuple(keys.shape)} and {tuple(values.shape)}"
        )
    if keys.shape[-3] != queries.shape[1] or keys.shape[-1] != queries.shape[-1] or (
        keys.dim() == 4 and keys.shape[0] != queries.shape[0]
    ):
        raise ValueError(
            f"keys {tuple(keys.shape)} do not match queries {tuple(queries.shape)} "
            f"(batch, heads and head size must agree)"
        )
    num_keys = keys.shape[-2]
    if not 1 <= top_k <= num_keys:
        raise ValueError(f"top_k must be in [1, {num_keys}] (the number of knowledge vectors), got {top_k}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be 'softmax' or 'sum', got {weighting!r}")

    return knowledge_weights(queries, keys, top_k, weighting) @ values


def knowledge_weights(
    queries: torch.Tensor, keys: torch.Tensor, top_k: int, weighting: str = "softmax"
) -> torch.Tensor:
    """The weights of equation (6) spread over all N knowledge vectors (zero for those
    not among a query's top ``top_k``): ``(B, H, L, N)``. Shapes as `knowledge_query`."""
    scores = queries @ keys.transpose(-1, -2) / math.sqrt(queries.shape[-1])  # (B, H, L, N)
    top_scores, top_index = scores.topk(top_k, dim=-1)  # (B, H, L, gamma)
    if weighting == "softmax":
        weights = top_scores.softmax(dim=-1)
    else:
        total = top_scores.sum(dim=-1, keepdim=True)
        total = torch.where(total >= 0, total.clamp(min=SUM_EPS), total.clamp(max=-SUM_EPS))
        weights = top_scores / total
    return torch.zeros_like(scores).scatter(-1, top_index, weights)
