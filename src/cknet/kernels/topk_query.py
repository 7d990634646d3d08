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
Among equal scores the lower index is selected first, on both paths.
"""

from __future__ import annotations

import logging
import math
import os

import torch

logger = logging.getLogger(__name__)
SUM_EPS = 1e-6
WEIGHTINGS = ("softmax", "sum")


def knowledge_query(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    top_k: int,
    weighting: str = "softmax",
    backend: str = "auto",
) -> torch.Tensor:
    """Attend from each query to its ``top_k`` best-scoring knowledge vectors.

    Args:
        queries: ``(B, H, L, d)``.
        keys: ``(B, H, N, d)``, or ``(H, N, d)`` for a knowledge matrix shared by the batch.
        values: same shape as ``keys``.
        top_k: gamma, how many knowledge vectors each query keeps (1 <= top_k <= N).
        weighting: ``"softmax"`` or ``"sum"`` (see the module docstring).
        backend: ``"torch"`` (this reference path, everywhere), ``"triton"`` (the fused
            kernel of `cknet.kernels.triton_topk`, on CUDA, or on the CPU under
            ``TRITON_INTERPRET=1``) or ``"auto"`` (Triton on CUDA when it imports, else
            PyTorch). The environment variable ``CKNET_KERNEL`` overrides it; the path
            taken is logged at debug level.

    Returns:
        ``(B, H, L, d)`` the preserved knowledge r of equation (8), per head.

    Raises:
        ValueError: for mismatched shapes, ``top_k`` outside ``[1, N]``, an unknown
            weighting or backend, or ``"triton"`` where Triton cannot run.
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

    if _resolve_backend(backend, queries) == "triton":
        return _TritonKnowledgeQuery.apply(queries, keys, values, top_k, weighting)
    return knowledge_weights(queries, keys, top_k, weighting) @ values


BACKENDS = ("auto", "torch", "triton")


def triton_available(device: torch.device | None = None) -> bool:
    """Whether the Triton kernel can run for tensors on a device: on CUDA when Triton
    imports, or anywhere under ``TRITON_INTERPRET=1`` (its CPU interpreter).

    Args:
        device: the tensors' device.
    """
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    return device is not None and device.type == "cuda"


def _resolve_backend(backend: str, queries: torch.Tensor) -> str:
    requested = os.environ.get("CKNET_KERNEL", backend)
    if requested not in BACKENDS:
        source = "CKNET_KERNEL" if "CKNET_KERNEL" in os.environ else "backend"
        raise ValueError(f"{source} must be one of {BACKENDS}, got {requested!r}")
    usable = triton_available(queries.device)
    if requested == "triton" and not usable:
        raise ValueError(
            f"the Triton kernel cannot run on {queries.device}: it needs CUDA and the triton "
            f"package (or TRITON_INTERPRET=1 for the CPU interpreter); use backend='torch'"
        )
    chosen = "triton" if requested == "triton" or (requested == "auto" and usable
                                                   and queries.device.type == "cuda") else "torch"
    logger.debug("knowledge_query: %s path (requested %r) for queries %s on %s",
                 chosen, requested, tuple(queries.shape), queries.device)
    return chosen


def _selected_query(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, index: torch.Tensor, weighting: str
) -> torch.Tensor:
    """Equations (5), (6), (8) restricted to the given top-k ``index`` ``(B, H, L, K)``,
    in float32: the differentiable recomputation behind the Triton path's backward."""
    batch, heads, length, dim = queries.shape
    top_k = index.shape[-1]
    if keys.dim() == 3:
        keys, values = keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1)
    flat = index.flatten(2)[..., None].expand(-1, -1, -1, dim)  # (B, H, L*K, d)
    chosen_keys = keys.float().gather(2, flat).view(batch, heads, length, top_k, dim)
    chosen_values = values.float().gather(2, flat).view(batch, heads, length, top_k, dim)
    scores = (queries.float()[..., None, :] * chosen_keys).sum(-1) / math.sqrt(dim)
    return (_selected_weights(scores, weighting)[..., None] * chosen_values).sum(-2)


class _TritonKnowledgeQuery(torch.autograd.Function):
    """Fused Triton forward; PyTorch backward from the saved top-k indices."""

    @staticmethod
    def forward(ctx, queries, keys, values, top_k, weighting):
        from cknet.kernels.triton_topk import triton_topk_forward

        out, index = triton_topk_forward(queries, keys, values, top_k, weighting)
        ctx.save_for_backward(queries, keys, values, index)
        ctx.weighting = weighting
        return out

    @staticmethod
    def backward(ctx, grad_out):
        queries, keys, values, index = ctx.saved_tensors
        inputs = [t.detach().requires_grad_(need) for t, need in
                  zip((queries, keys, values), ctx.needs_input_grad[:3])]
        with torch.enable_grad():
            out = _selected_query(*inputs, index, ctx.weighting)
            wanted = [t for t in inputs if t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, grad_out.float()))
        result = [next(grads).to(t.dtype) if t.requires_grad else None for t in inputs]
        return (*result, None, None)


def knowledge_weights(
    queries: torch.Tensor, keys: torch.Tensor, top_k: int, weighting: str = "softmax"
) -> torch.Tensor:
    """The weights of equation (6) spread over all N knowledge vectors.

    Args:
        queries: ``(B, H, L, d)``.
        keys: ``(B, H, N, d)``, or ``(H, N, d)`` shared by the batch.
        top_k: gamma, the vectors each query keeps.
        weighting: ``"softmax"`` or ``"sum"``, as in `knowledge_query`.

    Returns:
        ``(B, H, L, N)``: each query's weights, zero outside its top ``top_k``.
    """
    scores = queries @ keys.transpose(-1, -2) / math.sqrt(queries.shape[-1])  # (B, H, L, N)
    # A stable descending sort: among equal scores the lower index is kept, as in the
    # Triton kernel (torch.topk leaves ties unspecified).
    top_scores, top_index = scores.sort(dim=-1, descending=True, stable=True)
    top_scores, top_index = top_scores[..., :top_k], top_index[..., :top_k]  # (B, H, L, gamma)
    weights = _selected_weights(top_scores, weighting)
    return torch.zeros_like(scores).scatter(-1, top_index, weights)


def _selected_weights(top_scores: torch.Tensor, weighting: str) -> torch.Tensor:
    """Equation (6) over the selected scores ``(..., gamma)``: a softmax, or each score
    over their sum with the sum kept at least ``SUM_EPS`` away from zero."""
    if weighting == "softmax":
        return top_scores.softmax(dim=-1)
    total = top_scores.sum(dim=-1, keepdim=True)
    total = torch.where(total >= 0, total.clamp(min=SUM_EPS), total.clamp(max=-SUM_EPS))
    return top_scores / total
