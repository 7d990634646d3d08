"""`CKNetTransformer`: the encoder-decoder of Section III.D, with a key/value cache.

Equation (10): {m_1..m_Ns} = f_e(k_s); equation (11): y_T = f_d(m; k_t1..k_t(T-1)).
Attention is equation (2)-(3): per head softmax(Q W^Q (K W^K)^T / sqrt(p/q)) V W^V, the
heads concatenated and projected by W^O. Every sub-layer has a residual connection and
layer normalisation, applied before the sub-layer (``norm_first=True``, as in the
R2Gen code base) or after it (``norm_first=False``, the original Transformer).

The decoder supports incremental decoding: with a `DecoderCache`, each call takes only
the new tokens, appends their self-attention keys and values to the cache, and reuses
the cross-attention keys and values of the encoder memory computed on the first call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention, equations (2)-(3).

    Keys and values are projected separately (`project_key_value`) so that callers can
    cache them.
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
        """``(B, S, d_model)`` -> keys and values ``(B, H, S, d_head)``."""
        return self._split_heads(self.key_proj(x)), self._split_heads(self.value_proj(x))

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from ``query`` ``(B, T, d_model)`` to projected ``keys``/``values``.

        Args:
            mask: optional bool ``(T, S)``, True where attention is allowed.

        Returns:
            ``(B, T, d_model)``.
        """
        q = self._split_heads(self.query_proj(query))
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, dropout_p=dropout)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Sequential):
    """Position-wise feed-forward network: Linear, ReLU, dropout, Linear."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model)
        )


class _Residual(nn.Module):
    """x + sublayer(x) with layer normalisation before or after, and dropout."""

    def __init__(self, d_model: int, dropout: float, norm_first: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor, sublayer) -> torch.Tensor:  # noqa: ANN001
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))


class EncoderLayer(nn.Module):
    """Self-attention and feed-forward sub-layers."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float, norm_first: bool):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.attn_block = _Residual(d_model, dropout, norm_first)
        self.ff_block = _Residual(d_model, dropout, norm_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn_block(x, lambda h: self.self_attn(h, *self.self_attn.project_key_value(h)))
        return self.ff_block(x, self.feed_forward)


@dataclass
class DecoderCache:
    """Keys and values kept between incremental decoding calls.

    Attributes:
        self_keys, self_values: per decoder layer ``(B, H, T, d_head)``, the tokens so far.
        memory_keys, memory_values: per decoder layer ``(B, H, S, d_head)``, the encoder
            memory projected for cross-attention (computed on the first call).
    """

    self_keys: list[torch.Tensor] = field(default_factory=list)
    self_values: list[torch.Tensor] = field(default_factory=list)
    memory_keys: list[torch.Tensor] = field(default_factory=list)
    memory_values: list[torch.Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        """Number of tokens already decoded."""
        return self.self_keys[0].shape[2] if self.self_keys else 0

    def select(self, index: torch.Tensor) -> None:
        """Keep (and reorder) the batch rows ``index`` ``(B',)`` of every cached tensor."""
        for store in (self.self_keys, self.self_values, self.memory_keys, self.memory_values):
            store[:] = [t.index_select(0, index) for t in store]

    def reorder_tokens(self, index: torch.Tensor) -> None:
        """Reorder the self-attention keys/values only, e.g. beams of the same study
        (whose memory rows are identical, so the memory projections need not move)."""
        for store in (self.self_keys, self.self_values):
            store[:] = [t.index_select(0, index) for t in store]


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder memory, feed-forward."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float, norm_first: bool):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.self_block = _Residual(d_model, dropout, norm_first)
        self.cross_block = _Residual(d_model, dropout, norm_first)
        self.ff_block = _Residual(d_model, dropout, norm_first)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor | None, layer: int, cache: DecoderCache | None
    ) -> torch.Tensor:
        def self_attention(h: torch.Tensor) -> torch.Tensor:
            keys, values = self.self_attn.project_key_value(h)
            if cache is not None:
                if len(cache.self_keys) > layer:
                    keys = torch.cat([cache.self_keys[layer], keys], dim=2)
                    values = torch.cat([cache.self_values[layer], values], dim=2)
                    cache.self_keys[layer], cache.self_values[layer] = keys, values
                else:
                    cache.self_keys.append(keys)
                    cache.self_values.append(values)
            new, total = h.shape[1], keys.shape[2]
            mask = None
            if new > 1:  # position i of the new tokens sees cached tokens and new ones <= i
                past = total - new
                mask = (torch.arange(total, device=h.device)[None, :]
                        <= past + torch.arange(new, device=h.device)[:, None])
            return self.self_attn(h, keys, values, mask)

        def cross_attention(h: torch.Tensor) -> torch.Tensor:
            if cache is not None and len(cache.memory_keys) > layer:
                keys, values = cache.memory_keys[layer], cache.memory_values[layer]
            else:
                keys, values = self.cross_attn.project_key_value(memory)
                if cache is not None:
                    cache.memory_keys.append(keys)
                    cache.memory_values.append(values)
            return self.cross_attn(h, keys, values)

        x = self.self_block(x, self_attention)
        x = self.cross_block(x, cross_attention)
        return self.ff_block(x, self.feed_forward)


class CKNetTransformer(nn.Module):
    """Transformer encoder over the knowledge-fused patches k_s and decoder over k_t.

    Args:
        d_model: hidden size.
        num_heads: attention heads.
        d_ff: feed-forward inner size.
        num_encoder_layers, num_decoder_layers: depth.
        dropout: dropout probability.
        norm_first: pre-LayerNorm (True) or post-LayerNorm (False) sub-layers.

    The encoder adds sinusoidal position encodings to its input (patch order: view-major,
    then row-major within a view); the decoder's input already carries positions (they
    are part of the textual features v_t).
    """

    def __init__(
        self,
        d_model: int = 512,
        num_heads: int = 8,
        d_ff: int = 512,
        num_encoder_layers: int = 3,
        num_decoder_layers: int = 3,
        dropout: float = 0.1,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, d_ff, dropout, norm_first)
            for _ in range(num_encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(d_model, num_heads, d_ff, dropout, norm_first)
            for _ in range(num_decoder_layers)
        )
        # With pre-normalisation the residual stream is never normalised: do it at the end.
        self.encoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.input_dropout = nn.Dropout(dropout)

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        """Equation (10): ``(B, S, d_model)`` knowledge-fused patches -> memory ``(B, S, d_model)``."""
        positions = torch.arange(source.shape[1], device=source.device)
        x = self.input_dropout(source + sinusoidal_positions(positions, self.d_model).to(source.dtype))
        for layer in self.encoder_layers:
            x = layer(x)
        return self.encoder_norm(x)

    def init_cache(self, memory: torch.Tensor) -> DecoderCache:
        """A `DecoderCache` holding every layer's cross-attention keys/values of ``memory``
        ``(B, S, d_model)``, ready for incremental decoding."""
        cache = DecoderCache()
        for layer in self.decoder_layers:
            keys, values = layer.cross_attn.project_key_value(memory)
            cache.memory_keys.append(keys)
            cache.memory_values.append(values)
        return cache

    def decode(
        self, target: torch.Tensor, memory: torch.Tensor | None, cache: DecoderCache | None = None
    ) -> torch.Tensor:
        """Equation (11): decoder states for the target features.

        Args:
            target: ``(B, T, d_model)`` knowledge-fused token features k_t. Without a
                cache, the whole prefix; with one, only the tokens not yet decoded.
            memory: ``(B, S, d_model)`` encoder output; may be None when the cache
                already holds its projections (see `init_cache`).
            cache: a `DecoderCache`, updated in place.

        Returns:
            ``(B, T, d_model)``; position t depends only on target positions <= t.
        """
        x = target
        for index, layer in enumerate(self.decoder_layers):
            x = layer(x, memory, index, cache)
        return self.decoder_norm(x)
