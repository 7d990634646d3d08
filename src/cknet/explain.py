"""Which knowledge vectors a model's image patches and report tokens draw on.

`knowledge_attention` returns the top-γ weights of equation (6), averaged over the
heads, of every image patch (v_s) and, given a report, every token (v_t), over the rows
of the study's knowledge matrix G: column 0 is the global node, column j >= 1 the
graph's node j - 1 (``model.graph.nodes[j - 1]``) for the built-in sources.
"""

from __future__ import annotations

from typing import Any

import torch

from cknet.validation import check_images, check_input_ids


@torch.no_grad()
def knowledge_attention(
    model: Any, images: torch.Tensor, input_ids: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The equation-(6) weights of the image patches (and report tokens) over G.

    Args:
        model: a `CKNet` with a knowledge matrix.
        images: ``(B, V, 3, S, S)`` preprocessed images.
        input_ids: optional ``(B, T)`` reports as token ids starting with ``<bos>`` (e.g.
            generated ones, encoded with ``model.tokenizer.encode_batch``).

    Returns:
        ``(B, V*h*w, M)`` patch weights and ``(B, T, M)`` token weights (None without
        ``input_ids``); each row sums to 1 over its top γ.

    Raises:
        ValueError: for a model without a knowledge matrix (``knowledge_source="none"``)
            or malformed inputs.
    """
    if model.cross_modal is None:
        raise ValueError("this model has no knowledge matrix (knowledge_source='none')")
    images = check_images(images, model.config).to(model.device)
    was_training = model.training
    model.eval()
    try:
        projection = model.cross_modal.project_knowledge(model.knowledge_matrix(images))  # eqs. (4), (7)
        patches = model.visual_extractor(images)  # v_s, eq. (1)
        patch_weights = model.cross_modal.attention(patches, projection).mean(dim=1)  # eqs. (5), (6)
        token_weights = None
        if input_ids is not None:
            check_input_ids(input_ids, model.config.vocab_size, images.shape[0])
            tokens = model.text_features(input_ids.to(model.device))  # v_t
            token_weights = model.cross_modal.attention(tokens, projection).mean(dim=1)
    finally:
        model.train(was_training)
    return patch_weights, token_weights
