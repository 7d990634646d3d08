"""Multi-head attention, equations (2)-(3), and attention of beams over a shared cache.

Equation (2): Att_m(Q, K, V) = softmax(Q W_m^Q (K W_m^K)^T / sqrt(p/q)) V W_m^V per head;
equation (3): the heads concatenated and projected by W^O. Keys and values are
projected separately (`MultiHeadAttention.project_key_value`) so that a decoder can
cache them. `beam_attention` lets the beams of a study attend over a key/value cache
whose rows were never reordered (see `cknet.modules.cache.DecoderCache`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_positions(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """Sinusoidal position encodings (Vaswani et al.) for integer positions.

    Args:
        positions: ``(T,)`` integer positions.
        d_model: encoding size (even).

    Returns:
        ``(T, d_model)`` float32, ``sin`` in even and ``cos`` in odd channels.
    """
    half = torch.arange(0, d_model, 2, device=positions.device, dtype=torch.float32)
    frequencies = torch.exp(-math.log(10000.0) * half / d_model)
    angles = positions.to(torch.float32)[:, None] * frequencies[None, :]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)[:, :d_model]


def beam_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    ancestry: torch.Tensor,
    group: int,
) -> torch.Tensor:
    """Attention of one new token per beam over a cache whose rows were never reordered.

    Beams of a study form a group of G consecutive rows. Cache row ``s*G + j`` holds, at
    time l, the token written by whichever beam sat in slot j at step l; ``ancestry``
    says, for each current beam and time, which slot holds its own history. Every query
    is scored against all G slots of its study (G times the arithmetic, but the cache is
    read once and never copied), then only its own history's scores are kept:

        out[s, i] = softmax_l(q[s, i] . k[s, a_il, l] / sqrt(d)) v[s, a_il, l]

    Args:
        queries: ``(S*G, H, 1, d)``.
        keys: ``(S*G, H, L, d)`` cache rows (views of the cache buffers).
        values: ``(S*G, H, L, d)`` likewise.
        ancestry: ``(S*G, L)`` slot ``a_il`` in ``[0, G)`` of each beam's token at time l.
        group: G, the beams per study.

    Returns:
        ``(S*G, H, 1, d)``.
    """
    rows, heads, _, d = queries.shape
    studies = rows // group
    k = keys.unflatten(0, (studies, group))  # (S, Gj, H, L, d): a view in cache order
    v = values.unflatten(0, (studies, group))
    q = queries[:, :, 0].unflatten(0, (studies, group)).transpose(1, 2)  # (S, H, Gi, d)
    scores = q[:, None] @ k.transpose(-1, -2) / d**0.5  # (S, Gj, H, Gi, L), eq. (2)
    slots = ancestry.unflatten(0, (studies, group))  # (S, Gi, L)
    index = slots[:, None, None].expand(-1, 1, heads, -1, -1)  # (S, 1, H, Gi, L)
    weights = scores.gather(1, index).softmax(dim=-1)  # own history only
    spread = torch.zeros_like(scores).scatter_(1, index, weights)  # (S, Gj, H, Gi, L)
    out = (spread @ v).sum(dim=1)  # (S, H, Gi, d)
    return out.transpose(1, 2).flatten(0, 1)[:, :, None]  # (S*G, H, 1, d)


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention, equations (2)-(3).

    Keys and values are projected separately (`project_key_value`) so that callers can
    cache them.

    Args:
        d_model: the feature size.
        num_heads: q, the heads (``d_model`` must be divisible by it).
        dropout: on the attention weights, in training.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.query_proj = nn.Linear(d_model, d_model)
        self.key_proj = nn.Linear(d_model, d_model)
        self.value_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, H, T, d_head)

    def project_key_value(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project features to keys and values.

        Args:
            x: ``(B, S, d_model)``.

        Returns:
            Keys and values, each ``(B, H, S, d_head)``.
        """
        return self._split_heads(self.key_proj(x)), self._split_heads(self.value_proj(x))

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None = None,
        ancestry: torch.Tensor | None = None,
        group: int = 1,
    ) -> torch.Tensor:
        """Attend from ``query`` ``(B, T, d_model)`` to projected ``keys``/``values``.

        Args:
            query: ``(B, T, d_model)``.
            keys: ``(B, H, S, d_head)``, from `project_key_value`.
            values: ``(B, H, S, d_head)``, likewise.
            mask: optional bool ``(T, S)``, True where attention is allowed.
            ancestry: for one token per beam over an unreordered beam cache (see
                `beam_attention`).
            group: the beams per study with ``ancestry``.

        Returns:
            ``(B, T, d_model)``.
        """
        q = self._split_heads(self.query_proj(query))  # Q W^Q
        if ancestry is not None:
            out = beam_attention(q, keys, values, ancestry, group)  # eq. (2) through the ancestry table
        else:
            dropout = self.dropout if self.training else 0.0
            out = F.scaled_dot_product_attention(q, keys, values, mask, dropout)  # eq. (2)
        return self.out_proj(out.transpose(1, 2).flatten(2))  # heads concatenated, W^O: eq. (3)
