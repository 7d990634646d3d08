"""What a model looks at: the knowledge vectors its patches and tokens draw on, and
the image regions each word of a report attends to.

`knowledge_attention` returns the top-γ weights of equation (6), averaged over the
heads, of every image patch (v_s) and, given a report, every token (v_t), over the rows
of the study's knowledge matrix G: column 0 is the global node, column j >= 1 the
graph's node j - 1 (``model.graph.nodes[j - 1]``) for the built-in sources.

`explain` gives, for each word of a report (generated, or given), the decoder's
cross-attention over the encoder positions, one per image patch (equation 2 in the
last decoder layer, averaged over its heads), as a map over each view, and the
equation-(6) weights over G of the token the word was written after. Attention says
where the model looked, not why it wrote a word: the maps are a guide, not evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from cknet.inputs.checks import check_images, check_input_ids


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
        features = model.study_features(images)  # one backbone pass; G as encode takes it
        projection = model.encode(features=features).projected_knowledge  # eqs. (4), (7)
        patches = model.visual_extractor.project(features.maps)  # v_s, eq. (1)
        patch_weights = model.cross_modal.attention(patches, projection).mean(dim=1)  # eqs. (5), (6)
        token_weights = None
        if input_ids is not None:
            check_input_ids(input_ids, model.config.vocab_size, images.shape[0])
            tokens = model.text_features(input_ids.to(model.device))  # v_t
            token_weights = model.cross_modal.attention(tokens, projection).mean(dim=1)
    finally:
        model.train(was_training)
    return patch_weights, token_weights


@dataclass
class Explanation:
    """What a model attended to while writing one study's report.

    Attributes:
        words: the report's tokens as the tokenizer writes them (``T`` of them).
        patch_attention: ``(T, V, h, w)``: for each word, the last decoder layer's
            cross-attention (equation 2, mean over heads) over the image patches of
            each view, from the position that wrote the word; each word's maps sum to 1.
        node_attention: ``(T, M)``: for each word, the equation-(6) weights over G's rows
            of the token it was written after (None without a knowledge matrix).
        node_names: G's ``M`` rows: ``"(global node)"``, then the graph's nodes.
        report: the report, tokenised.
    """

    words: list[str]
    patch_attention: torch.Tensor
    node_attention: torch.Tensor | None
    node_names: list[str]
    report: str


@torch.no_grad()
def explain(model: Any, images: torch.Tensor, reports: list[str] | None = None) -> list[Explanation]:
    """For each study, where each word of its report looked (`Explanation`).

    Args:
        model: a `CKNet`.
        images: ``(B, V, 3, S, S)`` preprocessed images.
        reports: one report per study to explain (e.g. the reference); default: the
            model's own, written with its generation defaults.

    Returns:
        One `Explanation` per study.

    Raises:
        ValueError: for malformed images, or a number of reports other than B.
    """
    images = check_images(images, model.config).to(model.device)
    if reports is not None and (isinstance(reports, str) or len(reports) != images.shape[0]):
        raise ValueError(f"reports must be a list of {images.shape[0]} report texts, one per study")
    was_training = model.training
    model.eval()
    try:
        tokenizer = model.tokenizer
        if reports is None:  # the ids as generated: a report cut at the length limit has no <eos>
            sequences = [[tokenizer.bos_id, *found[0].token_ids]
                         for found in model.generate(images, return_scores=True)]
        else:
            sequences = [tokenizer.encode(report) for report in reports]
        input_ids = torch.full((len(sequences), max(map(len, sequences))), tokenizer.pad_id, dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, :len(ids)] = torch.tensor(ids)
        input_ids = input_ids.to(model.device)
        features = model.study_features(images)
        encoding = model.encode(features=features)
        attention = model.transformer.decoder_layers[-1].cross_attn
        queries = []
        hook = attention.query_proj.register_forward_hook(lambda module, args, out: queries.append(out))
        try:
            model.decode(input_ids, encoding)
        finally:
            hook.remove()
        q = queries[0].unflatten(-1, (attention.num_heads, -1)).transpose(1, 2)  # (B, H, T, d_head)
        keys, _ = attention.project_key_value(encoding.memory)  # (B, H, S, d_head)
        scores = q @ keys.transpose(-2, -1) / math.sqrt(q.shape[-1])
        weights = torch.softmax(scores, dim=-1).mean(1)  # eq. (2), (B, T, S), mean over heads
        views, _, h, w = features.maps.shape[1:]
        maps = weights.unflatten(-1, (views, h, w))  # (B, T, V, h, w), view-major patches
        nodes = None
        if model.cross_modal is not None:
            tokens = model.text_features(input_ids)  # v_t
            nodes = model.cross_modal.attention(tokens, encoding.projected_knowledge).mean(dim=1)  # eq. (6)
    finally:
        model.train(was_training)
    names = ["(global node)", *model.graph.nodes] if nodes is not None else []
    out = []
    for row, sequence in enumerate(sequences):
        ids = [i for i in sequence[1:] if i != tokenizer.eos_id]  # the words, without <bos> and <eos>
        count = len(ids)  # the word at position t + 1 was written from position t
        out.append(Explanation([tokenizer.decode([i]) for i in ids], maps[row, :count].cpu(),
                               None if nodes is None else nodes[row, :count].cpu(), names,
                               tokenizer.decode(ids)))
    return out
