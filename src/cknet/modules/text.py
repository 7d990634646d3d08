"""`TokenEmbedding`: the textual features v_t of Section III.B.

The paper takes v_t from the last hidden layer of BioClinicalBERT; this module is the
light default: a learned token embedding scaled by sqrt(d_model) plus sinusoidal
position encodings, so that v_t at position t depends on token t and its position only
(causal by construction).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cknet.modules.attention import sinusoidal_positions


class TokenEmbedding(nn.Module):
    """Learned token embeddings with sinusoidal positions.

    Args:
        vocab_size: number of token ids.
        d_model: feature size.
        dropout: dropout on the output.
        padding_id: id whose embedding stays zero.

    Shapes:
        input: ``input_ids`` ``(B, T)`` int64; ``start`` the position of the first token.
        output: ``(B, T, d_model)``.
    """

    def __init__(self, vocab_size: int, d_model: int, dropout: float = 0.1, padding_id: int = 0):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_id)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)
        x = self.embedding(input_ids) * math.sqrt(self.d_model)
        return self.dropout(x + sinusoidal_positions(positions, self.d_model).to(x.dtype))
