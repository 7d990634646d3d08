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
from typing import Any

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
        keys, values: ``(S*G, H, L, d)`` cache rows (views of the cache buffers).
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
    scores = q[:, None] @ k.transpose(-1, -2) / d**0.5  # (S, Gj, H, Gi, L)
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
        ancestry: torch.Tensor | None = None,
        group: int = 1,
    ) -> torch.Tensor:
        """Attend from ``query`` ``(B, T, d_model)`` to projected ``keys``/``values``.

        Args:
            mask: optional bool ``(T, S)``, True where attention is allowed.
            ancestry, group: for one token per beam over an unreordered beam cache
                (see `beam_attention`).

        Returns:
            ``(B, T, d_model)``.
        """
        q = self._split_heads(self.query_proj(query))
        if ancestry is not None:
            out = beam_attention(q, keys, values, ancestry, group)
        else:
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


class DecoderCache:
    """Keys and values kept between incremental decoding calls.

    Self-attention keys and values live in preallocated buffers of ``capacity`` token
    slots (grown by doubling when exceeded), so appending a token writes in place
    instead of copying the whole history.

    With ``group`` G > 1 (G beams per study, in consecutive rows), reordering beams
    never copies keys or values: an ``ancestry`` table records, for every beam and
    time, which of its study's G rows holds its token, and `beam_attention` reads
    through it.

    Args:
        capacity: token slots to reserve (e.g. the maximum number of decoding steps).
        group: beams per study (1: rows are independent).

    Attributes:
        length: number of tokens already decoded.
        self_keys, self_values: per decoder layer, buffers ``(B, H, capacity, d_head)``
            whose first ``length`` slots hold the tokens so far.
        memory_keys, memory_values: per decoder layer ``(B, H, S, d_head)``, the encoder
            memory projected for cross-attention.
        ancestry: ``(B, capacity)`` slots within the group (only when group > 1).
        text_cache: the key/value cache of a pretrained text encoder (a ``transformers``
            cache, see `cknet.PretrainedTextEncoder`), kept row for row with this one;
            None for the learned token embedding.
    """

    def __init__(self, capacity: int = 0, group: int = 1) -> None:
        self.capacity = capacity
        self.group = group
        self.length = 0
        self.ancestry: torch.Tensor | None = None
        self.text_cache: Any | None = None
        self.self_keys: list[torch.Tensor] = []
        self.self_values: list[torch.Tensor] = []
        self.memory_keys: list[torch.Tensor] = []
        self.memory_values: list[torch.Tensor] = []
        self._spare_keys: dict[int, torch.Tensor | None] = {}
        self._spare_values: dict[int, torch.Tensor | None] = {}

    def append(
        self, layer: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new tokens' keys and values of one layer.

        Args:
            layer: the decoder layer's index.
            keys: ``(B, H, T_new, d_head)``.
            values: ``(B, H, T_new, d_head)``.

        Returns:
            Views of the keys and values of all tokens so far, ``(B, H, length + T_new, d_head)``.
        """
        end = self.length + keys.shape[2]
        if layer == len(self.self_keys):
            shape = (*keys.shape[:2], max(self.capacity, end), keys.shape[3])
            self.self_keys.append(keys.new_empty(shape))
            self.self_values.append(values.new_empty(shape))
        elif end > self.self_keys[layer].shape[2]:
            for store in (self.self_keys, self.self_values):
                old = store[layer]
                grown = old.new_empty((*old.shape[:2], max(2 * old.shape[2], end), old.shape[3]))
                grown[:, :, : self.length] = old[:, :, : self.length]
                store[layer] = grown
        if layer == 0 and self.group > 1:
            rows, slots = keys.shape[0], self.self_keys[0].shape[2]
            if self.ancestry is None or self.ancestry.shape[1] < slots:
                grown = torch.zeros(rows, slots, dtype=torch.long, device=keys.device)
                if self.ancestry is not None:
                    grown[:, : self.length] = self.ancestry[:, : self.length]
                self.ancestry = grown
            own = torch.arange(rows, device=keys.device) % self.group
            self.ancestry[:, self.length:end] = own[:, None]
        self.self_keys[layer][:, :, self.length:end] = keys
        self.self_values[layer][:, :, self.length:end] = values
        return self.self_keys[layer][:, :, :end], self.self_values[layer][:, :, :end]

    def advance(self, new_tokens: int) -> None:
        """Count tokens as decoded (after every layer has appended them).

        Args:
            new_tokens: how many.
        """
        self.length += new_tokens

    def _gather_tokens(self, index: torch.Tensor) -> None:
        # Gather into a spare buffer of the same shape (kept between calls, so that beam
        # reordering at every step allocates nothing), then swap the two.
        for store, spares in ((self.self_keys, self._spare_keys), (self.self_values, self._spare_values)):
            for layer, old in enumerate(store):
                shape = (index.numel(), *old.shape[1:])
                spare = spares.get(layer)
                if spare is None or spare.shape != shape:
                    spare = old.new_empty(shape)
                torch.index_select(old[:, :, : self.length], 0, index, out=spare[:, :, : self.length])
                store[layer] = spare
                spares[layer] = old if old.shape == shape else None

    def select(self, index: torch.Tensor) -> None:
        """Keep (and reorder) batch rows of every cached tensor.

        Args:
            index: ``(B',)`` the rows to keep; with group > 1 it must keep whole groups
                (studies) in slot order."""
        self._gather_tokens(index)
        for store in (self.memory_keys, self.memory_values):
            store[:] = [t.index_select(0, index) for t in store]
        if self.ancestry is not None:
            self.ancestry = self.ancestry.index_select(0, index)
        if self.text_cache is not None:
            self.text_cache.reorder_cache(index)

    def reorder_tokens(self, index: torch.Tensor) -> None:
        """Let row r continue the history of row ``index[r]``, e.g. beams of one study.

        With group > 1 (``index[r]`` in r's own group) only the ancestry table moves;
        otherwise the self-attention keys/values are gathered (the memory projections,
        identical within a study, stay). A text encoder's cache is always gathered.

        Args:
            index: ``(B,)`` the row each row continues."""
        if self.text_cache is not None:
            self.text_cache.reorder_cache(index)
        if self.group > 1:
            if self.ancestry is not None:
                self.ancestry = self.ancestry.index_select(0, index)
            return
        self._gather_tokens(index)


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
            x = layer(x)
        return self.encoder_norm(x)

    def init_cache(self, memory: torch.Tensor, capacity: int = 0) -> DecoderCache:
        """A cache for incremental decoding.

        Args:
            memory: ``(B, S, d_model)`` encoder output.
            capacity: token slots to reserve.

        Returns:
            A `DecoderCache` holding every layer's cross-attention keys and values of
            ``memory``.
        """
        cache = DecoderCache(capacity)
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
        if cache is not None:
            cache.advance(target.shape[1])
        return self.decoder_norm(x)
