"""Fused top-k knowledge query in Triton: scores, top-gamma selection, weights and the
weighted sum in one pass, equations (5), (6) and (8).

One program handles ``BLOCK_L`` query rows of one (batch, head): it loads the head's N
knowledge keys and values once, computes the ``(BLOCK_L, N)`` scores with fp32
accumulation, selects the gamma best per row by repeated arg-max (ties go to the lower
index, the rule of the PyTorch path's stable sort), turns them into weights and writes
only the ``(BLOCK_L, d)`` output and the selected indices. Neither the full score
tensor nor the gathered values ever reach memory.

The backward pass (`TritonKnowledgeQuery.backward`) is PyTorch, from the saved
indices: it gathers the gamma selected keys and values per row (small: gamma = 8 of
N = 41 by default), recomputes their scores and weights (`reference.selected_query`)
and differentiates that. A Triton backward would save little: the gradients of the
keys and values are scatter-adds into N rows shared by every query, which PyTorch's
index_add does well, and the gathered tensors are no larger than the output's
gamma-fold.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

from cknet.kernels.reference import SUM_EPS, selected_query


@triton.jit
def _topk_query_forward(
    q_ptr, k_ptr, v_ptr, out_ptr, index_ptr,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kn,
    stride_ob, stride_oh, stride_ol, stride_ib, stride_ih, stride_il,
    num_heads, length, num_keys, head_dim, scale, sum_eps,
    TOP_K: tl.constexpr, SOFTMAX: tl.constexpr, IEEE: tl.constexpr,
    BLOCK_L: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_l = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // num_heads
    h = pid_bh % num_heads
    rows = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    cols = tl.arange(0, BLOCK_N)
    dims = tl.arange(0, BLOCK_D)
    row_ok = rows < length
    col_ok = cols < num_keys
    dim_ok = dims < head_dim

    q = tl.load(q_ptr + b * stride_qb + h * stride_qh + rows[:, None] * stride_ql + dims[None, :],
                mask=row_ok[:, None] & dim_ok[None, :], other=0.0)
    kv_offsets = b * stride_kb + h * stride_kh + cols[:, None] * stride_kn + dims[None, :]
    kv_mask = col_ok[:, None] & dim_ok[None, :]
    k = tl.load(k_ptr + kv_offsets, mask=kv_mask, other=0.0)
    v = tl.load(v_ptr + kv_offsets, mask=kv_mask, other=0.0)
    if IEEE:
        scores = tl.dot(q, tl.trans(k), input_precision="ieee")  # eq. (5)
    else:
        scores = tl.dot(q, tl.trans(k))  # eq. (5)
    scores = tl.where(col_ok[None, :], scores * scale, float("-inf"))  # (BLOCK_L, BLOCK_N) fp32, eq. (5)

    remaining = scores
    selected = tl.zeros((BLOCK_L, BLOCK_N), dtype=tl.int1)
    best = tl.max(scores, axis=1)
    for j in tl.static_range(TOP_K):
        pick = tl.argmax(remaining, axis=1)  # the first (lowest) index among equal maxima
        hit = cols[None, :] == pick[:, None]
        selected = selected | hit
        remaining = tl.where(hit, float("-inf"), remaining)
        tl.store(index_ptr + b * stride_ib + h * stride_ih + rows * stride_il + j, pick, mask=row_ok)

    if SOFTMAX:
        exps = tl.where(selected, tl.exp(scores - best[:, None]), 0.0)
        weights = exps / tl.sum(exps, axis=1)[:, None]  # eq. (6), softmax weighting
    else:
        total = tl.sum(tl.where(selected, scores, 0.0), axis=1)
        total = tl.where(total >= 0, tl.maximum(total, sum_eps), tl.minimum(total, -sum_eps))
        weights = tl.where(selected, scores / total[:, None], 0.0)  # eq. (6)

    if IEEE:
        out = tl.dot(weights, v.to(tl.float32), input_precision="ieee")  # eq. (8)
    else:
        out = tl.dot(weights.to(v.dtype), v)  # eq. (8)
    tl.store(out_ptr + b * stride_ob + h * stride_oh + rows[:, None] * stride_ol + dims[None, :],
             out, mask=row_ok[:, None] & dim_ok[None, :])


def triton_topk_forward(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, top_k: int, weighting: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the fused kernel.

    Args:
        queries: ``(B, H, L, d)``.
        keys: ``(B, H, N, d)`` or ``(H, N, d)``.
        values: the same shape as ``keys``.
        top_k: gamma.
        weighting: ``"softmax"`` or ``"sum"``.

    Returns:
        The output ``(B, H, L, d)`` (queries' dtype) and the selected indices
        ``(B, H, L, top_k)`` int64.
    """
    batch, heads, length, head_dim = queries.shape
    num_keys = keys.shape[-2]
    queries = queries.contiguous()
    keys, values = keys.contiguous(), values.contiguous()
    shared = keys.dim() == 3
    out = torch.empty(queries.shape, dtype=torch.float32, device=queries.device)  # fp32 accumulation
    index = torch.empty((batch, heads, length, top_k), dtype=torch.int32, device=queries.device)
    block_l = 16
    grid = (triton.cdiv(length, block_l), batch * heads)
    _topk_query_forward[grid](
        queries, keys, values, out, index,
        queries.stride(0), queries.stride(1), queries.stride(2),
        0 if shared else keys.stride(0), keys.stride(-3), keys.stride(-2),
        out.stride(0), out.stride(1), out.stride(2),
        index.stride(0), index.stride(1), index.stride(2),
        heads, length, num_keys, head_dim, 1.0 / math.sqrt(head_dim), SUM_EPS,
        TOP_K=top_k, SOFTMAX=weighting == "softmax", IEEE=queries.dtype == torch.float32,
        BLOCK_L=block_l, BLOCK_N=max(16, triton.next_power_of_2(num_keys)),
        BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
    )
    return out.to(queries.dtype), index.long()


class TritonKnowledgeQuery(torch.autograd.Function):
    """Fused Triton forward; PyTorch backward from the saved top-k indices."""

    @staticmethod
    def forward(ctx: Any, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, top_k: int,
                weighting: str) -> torch.Tensor:
        """The kernel's output; the top-k indices are saved for the backward pass.

        Args:
            ctx: the autograd context.
            queries: ``(B, H, L, d)``.
            keys: ``(B, H, N, d)`` or ``(H, N, d)``.
            values: the same shape as ``keys``.
            top_k: gamma.
            weighting: ``"softmax"`` or ``"sum"``.
        """
        out, index = triton_topk_forward(queries, keys, values, top_k, weighting)  # eqs. (5), (6), (8)
        ctx.save_for_backward(queries, keys, values, index)
        ctx.weighting = weighting
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Gradients of the queries, keys and values, by recomputing eqs. (5), (6), (8)
        on the saved indices in PyTorch.

        Args:
            ctx: the autograd context (the saved inputs and indices).
            grad_out: ``(B, H, L, d)`` the output's gradient.
        """
        queries, keys, values, index = ctx.saved_tensors
        inputs = [t.detach().requires_grad_(need) for t, need in
                  zip((queries, keys, values), ctx.needs_input_grad[:3])]
        with torch.enable_grad():
            out = selected_query(*inputs, index, ctx.weighting)  # eqs. (5), (6), (8) on the kept indices
            wanted = [t for t in inputs if t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, grad_out.float()))
        result = [next(grads).to(t.dtype) if t.requires_grad else None for t in inputs]
        return (*result, None, None)
