"""Checks of what users hand to a model: images, token ids, and parts that must agree.

Each raises a `ValueError` that names the argument at fault and says what was expected.
"""

from __future__ import annotations

from typing import Any

import torch


def check_images(images: Any, config: Any, finite: bool = True) -> torch.Tensor:
    """Validate a batch of preprocessed images and return it as ``(B, V, 3, S, S)``.

    A ``(B, 3, S, S)`` tensor is accepted for single-view models.

    Args:
        images: the preprocessed images.
        config: the model's `CKNetConfig` (views and image size).
        finite: also scan the values for NaN and infinity (a pass over the data and a
            device sync; `CKNet.encode` does it, so a caller that encodes the batch
            itself checks the shape only).

    Returns:
        ``images`` with the view axis.

    Raises:
        ValueError: for a non-float tensor, an empty batch, the wrong rank, channel
            count, number of views or image size, or NaN / infinite values.
    """
    expected = f"(B, {config.num_views}, 3, {config.image_size}, {config.image_size})"
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        kind = type(images).__name__ + (f" {images.dtype}" if isinstance(images, torch.Tensor) else "")
        raise ValueError(
            f"images must be a float tensor of shape {expected}; got {kind} (use "
            f"cknet.data.prepare_images for paths, PIL images or arrays)"
        )
    if images.dim() == 4 and config.num_views == 1:
        images = images.unsqueeze(1)
    if images.dim() != 5:
        raise ValueError(f"images must have shape {expected}, got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"images holds no study (shape {tuple(images.shape)}); expected {expected}")
    if images.shape[1] != config.num_views:
        raise ValueError(
            f"images has {images.shape[1]} view(s) per study but this model takes "
            f"{config.num_views}: expected shape {expected}, got {tuple(images.shape)}"
        )
    if images.shape[2] != 3 or tuple(images.shape[3:]) != (config.image_size, config.image_size):
        raise ValueError(f"images must have shape {expected}, got {tuple(images.shape)}")
    if finite and not bool(torch.isfinite(images).all()):
        bad = (~torch.isfinite(images)).flatten(1).any(dim=1).nonzero()[:, 0].tolist()
        raise ValueError(f"images holds NaN or infinite values (studies {bad[:10]} of the batch)")
    return images


def check_input_ids(input_ids: Any, vocab_size: int, batch_size: int | None = None) -> None:
    """Validate token ids.

    Args:
        input_ids: ``(B, T)`` integer token ids.
        vocab_size: ids must lie in ``[0, vocab_size)``.
        batch_size: the B they must have (None: any).

    Raises:
        ValueError: for a non-integer tensor, the wrong rank, an empty sequence, a batch
            size other than ``batch_size`` or ids outside the vocabulary.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point() or \
            input_ids.dtype == torch.bool:
        dtype = f" {input_ids.dtype}" if isinstance(input_ids, torch.Tensor) else ""
        kind = type(input_ids).__name__ + dtype
        raise ValueError(f"input_ids must be an integer tensor of shape (B, T), got {kind}")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (B, T), got {tuple(input_ids.shape)}")
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids is empty (T = 0): a report needs at least the <bos> token")
    if batch_size is not None and input_ids.shape[0] != batch_size:
        raise ValueError(f"input_ids has {input_ids.shape[0]} rows but images has {batch_size} studies")
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"input_ids must lie in [0, {vocab_size}) (the vocabulary), found values in [{low}, {high}]"
        )


def check_model_parts(config: Any, tokenizer: Any) -> None:
    """Raise unless the config and the tokenizer describe the same model.

    Args:
        config: the `CKNetConfig` (with ``vocab_size`` filled in).
        tokenizer: the report tokenizer.

    Raises:
        ValueError: naming what disagrees: kind of tokenizer for the text encoder,
            vocabulary size, dataset, maximum length.
    """
    from cknet.tokenizers import PretrainedReportTokenizer, ReportTokenizer

    if config.pretrained_text_encoder and not isinstance(tokenizer, PretrainedReportTokenizer):
        raise ValueError(
            f"config.text_encoder is the language model {config.text_encoder!r}: the tokenizer must be its "
            f"own, PretrainedReportTokenizer.from_pretrained({config.text_encoder!r}), not a "
            f"{type(tokenizer).__name__}"
        )
    if not config.pretrained_text_encoder and not isinstance(tokenizer, ReportTokenizer):
        raise ValueError(
            f"tokenizer must be a ReportTokenizer for text_encoder='embedding', got "
            f"{type(tokenizer).__name__} (set config.text_encoder to use a language model's tokenizer)"
        )
    if config.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"config.vocab_size is {config.vocab_size} but the tokenizer has "
                         f"{tokenizer.vocab_size} tokens")
    if config.dataset != tokenizer.dataset:
        raise ValueError(f"config.dataset is {config.dataset!r} but the tokenizer cleans reports as "
                         f"{tokenizer.dataset!r}")
    if config.max_length != tokenizer.max_length:
        raise ValueError(f"config.max_length is {config.max_length} but tokenizer.max_length is "
                         f"{tokenizer.max_length}; build both with the same value")

