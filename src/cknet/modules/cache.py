"""`DecoderCache`: the keys and values a Transformer decoder keeps between incremental
decoding calls.

Self-attention keys and values live in preallocated buffers of ``capacity`` token
slots (grown by doubling when exceeded), so appending a token writes in place instead
of copying the whole history. The cross-attention keys and values of the encoder
memory are computed once per study. With ``group`` G > 1 (G beams per study in
consecutive rows), reordering beams never copies keys or values: an ancestry table
records, for every beam and time, which of its study's G rows holds its token, and
`cknet.modules.attention.beam_attention` reads through it.
"""

from __future__ import annotations

from typing import Any

import torch


class DecoderCache:
    """Keys and values kept between incremental decoding calls (see the module docstring).

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
