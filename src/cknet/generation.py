"""Report generation from a `CKNet`: greedy decoding with a key/value cache.

The images are encoded once (encoder memory and projected knowledge matrix); every
step then feeds only the newest token through the text-side knowledge query and the
decoder, whose self-attention keys and values are cached. All studies of the batch
advance together as one tensor; decoding stops as soon as every report has ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from cknet.modules.transformer import DecoderCache

if TYPE_CHECKING:
    from cknet.model import CKNet


def greedy_search(model: CKNet, images: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Pick the most probable token at every step.

    Args:
        model: the model (in eval mode).
        images: ``(B, V, 3, S, S)`` preprocessed images.
        max_new_tokens: steps at most after ``<bos>``.

    Returns:
        ``(B, 1 + T)`` token ids starting with ``<bos>``; each row ends with its first
        ``<eos>`` followed by ``<pad>``, or is cut at ``max_new_tokens``.
    """
    tok = model.tokenizer
    encoding = model.encode_images(images)
    batch = images.shape[0]
    tokens = torch.full((batch, 1), tok.bos_id, dtype=torch.long, device=images.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=images.device)
    cache = DecoderCache()
    step_input = tokens
    for _ in range(max_new_tokens):
        logits = model.decode(step_input, encoding, cache)[:, -1]  # (B, vocab)
        next_token = logits.argmax(dim=-1).masked_fill(finished, tok.pad_id)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
        finished |= next_token == tok.eos_id
        if bool(finished.all()):
            break
        step_input = next_token[:, None]
    return tokens
