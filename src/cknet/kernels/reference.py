"""The top-k knowledge query of equations (5), (6) and (8) in PyTorch: the reference path.

For every query row q (one image patch or one report token, in one head):

    D_j = q . k_j / sqrt(d)         (5)  scores against the N knowledge keys
    S   = the gamma largest D_j          top-gamma selection
    w_j = softmax_{j in S}(D_j)          weighting="softmax" (R2GenCMN's), or
    w_j = D_j / sum_{i in S} D_i    (6)  weighting="sum" (the paper, literally)
    r   = sum_{j in S} w_j g_j      (8)  weighted sum of the selected values

The values g_j are the knowledge vectors already transformed by W_g (equation 7).

`knowledge_weights` never gathers a ``(B, H, L, gamma, d)`` tensor: the selected weights
are scattered into a ``(B, H, L, N)`` matrix that is then multiplied with the values
(`reference_query`), which is exact (the unselected entries are zero) and cheap because
N is small (41 for the default graph). `selected_query` recomputes the same equations
from given top-k indices: the Triton path's backward differentiates it.

In the "sum" weighting a denominator closer to zero than ``SUM_EPS`` is replaced by
``+-SUM_EPS`` (keeping its sign, + for exactly zero), so that no weight is infinite.
Among equal scores the lower index is selected first, on both paths.
"""

from __future__ import annotations

import math

import torch

SUM_EPS = 1e-6
WEIGHTINGS = ("softmax", "sum")


def knowledge_weights(
    queries: torch.Tensor, keys: torch.Tensor, top_k: int, weighting: str = "softmax"
) -> torch.Tensor:
    """The weights of equation (6) spread over all N knowledge vectors.

    Args:
        queries: ``(B, H, L, d)``.
        keys: ``(B, H, N, d)``, or ``(H, N, d)`` shared by the batch.
        top_k: gamma, the vectors each query keeps.
        weighting: ``"softmax"`` or ``"sum"`` (see the module docstring).

    Returns:
        ``(B, H, L, N)``: each query's weights, zero outside its top ``top_k``.
    """
    scores = queries @ keys.transpose(-1, -2) / math.sqrt(queries.shape[-1])  # (B, H, L, N), eq. (5)
    # A stable descending sort: among equal scores the lower index is kept, as in the
    # Triton kernel (torch.topk leaves ties unspecified).
    top_scores, top_index = scores.sort(dim=-1, descending=True, stable=True)
    top_scores, top_index = top_scores[..., :top_k], top_index[..., :top_k]  # (B, H, L, gamma)
    weights = selected_weights(top_scores, weighting)  # eq. (6)
    return torch.zeros_like(scores).scatter(-1, top_index, weights)


def reference_query(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, top_k: int, weighting: str = "softmax"
) -> torch.Tensor:
    """Equations (5), (6) and (8): ``(B, H, L, d)`` preserved knowledge r per head.

    Args:
        queries: ``(B, H, L, d)``.
        keys: ``(B, H, N, d)`` or ``(H, N, d)``.
        values: same shape as ``keys`` (already transformed by W_g, eq. 7).
        top_k: gamma.
        weighting: ``"softmax"`` or ``"sum"``.
    """
    return knowledge_weights(queries, keys, top_k, weighting) @ values  # eq. (8)


def selected_weights(top_scores: torch.Tensor, weighting: str) -> torch.Tensor:
    """Equation (6) over the selected scores ``(..., gamma)``: a softmax, or each score
    over their sum with the sum kept at least ``SUM_EPS`` away from zero.

    Args:
        top_scores: the selected scores.
        weighting: ``"softmax"`` or ``"sum"``.
    """
    if weighting == "softmax":
        return top_scores.softmax(dim=-1)  # eq. (6), softmax weighting
    total = top_scores.sum(dim=-1, keepdim=True)
    total = torch.where(total >= 0, total.clamp(min=SUM_EPS), total.clamp(max=-SUM_EPS))
    return top_scores / total  # eq. (6)


def selected_query(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, index: torch.Tensor, weighting: str
) -> torch.Tensor:
    """Equations (5), (6), (8) restricted to given top-k ``index`` ``(B, H, L, K)``, in
    float32: the differentiable recomputation behind the Triton path's backward.

    Args:
        queries: ``(B, H, L, d)``.
        keys: ``(B, H, N, d)`` or ``(H, N, d)``.
        values: same shape as ``keys``.
        index: the selected knowledge vectors of each query.
        weighting: ``"softmax"`` or ``"sum"``.

    Returns:
        ``(B, H, L, d)`` float32.
    """
    batch, heads, length, dim = queries.shape
    top_k = index.shape[-1]
    if keys.dim() == 3:
        keys, values = keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1)
    flat = index.flatten(2)[..., None].expand(-1, -1, -1, dim)  # (B, H, L*K, d)
    chosen_keys = keys.float().gather(2, flat).view(batch, heads, length, top_k, dim)
    chosen_values = values.float().gather(2, flat).view(batch, heads, length, top_k, dim)
    scores = (queries.float()[..., None, :] * chosen_keys).sum(-1) / math.sqrt(dim)  # eq. (5)
    return (selected_weights(scores, weighting)[..., None] * chosen_values).sum(-2)  # eqs. (6), (8)
