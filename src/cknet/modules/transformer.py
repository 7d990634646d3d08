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

import torch
from torch import nn

from cknet.modules.attention import MultiHeadAttention, sinusoidal_positions
from cknet.modules.cache import DecoderCache


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

    def forward(self, x: torch.Tensor, sublayer) -> torch.Tensor:
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
                keys, values = cache.append(layer, keys, values)
                if cache.group > 1:
                    if h.shape[1] != 1:
                        raise ValueError("a beam cache (group > 1) takes one token per call")
                    ancestry = cache.ancestry[:, : keys.shape[2]]
                    return self.self_attn(h, keys, values, ancestry=ancestry, group=cache.group)
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
        num_encoder_layers: encoder depth.
        num_decoder_layers: decoder depth.
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
        """Equation (10): the encoder over the knowledge-fused patches.

        Args:
            source: ``(B, S, d_model)``.

        Returns:
            The memory, ``(B, S, d_model)``.
        """
        positions = torch.arange(source.shape[1], device=source.device)
        x = self.input_dropout(source + sinusoidal_positions(positions, self.d_model).to(source.dtype))
        for layer in self.encoder_layers:
            x = layer(x)  # f_e, eq. (10)
        return self.encoder_norm(x)

    def init_cache(self, memory: torch.Tensor, capacity: int = 0, group: int = 1) -> DecoderCache:
        """A cache for incremental decoding.

        Args:
            memory: ``(B, S, d_model)`` encoder output.
            capacity: token slots to reserve.
            group: beams per study in consecutive rows (see `DecoderCache`).

        Returns:
            A `DecoderCache` holding every layer's cross-attention keys and values of
            ``memory``.
        """
        cache = DecoderCache(capacity, group)
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
            x = layer(x, memory, index, cache)  # f_d, eq. (11)
        if cache is not None:
            cache.advance(target.shape[1])
        return self.decoder_norm(x)
