"""Sizes past any real model or input, checked before anything is allocated for them: a
config, generation options or a language model's ``config.json`` can ask for anything
(docs/reliability.md, "Security")."""

from __future__ import annotations

import dataclasses
from typing import Any

MAX_PARAMETERS = 2_000_000_000  # of the parts a config sizes (the CNN aside)
MAX_IMAGE_SIZE = 8192  # pixels on a side
MAX_VIEWS = 16  # images per study
MAX_REPORT_TOKENS = 65_536  # CKNetConfig.max_length
MAX_LAYERS = 256  # Transformer, GCN or language-model layers
MAX_NEW_TOKENS = 65_536  # GenerationConfig.max_new_tokens
MAX_BEAMS = 1_024  # GenerationConfig.num_beams and num_return_sequences
MAX_REPORT_CHARACTERS = 100_000  # a report or prediction to score (real ones are a few KB)
MAX_TOKENIZER_BYTES = 64 * 2**20  # a saved tokenizer.json (real ones are under a few MB)


SIZE_FIELDS = ("vocab_size", "d_model", "d_ff", "d_knowledge", "num_encoder_layers", "num_decoder_layers",
               "max_length", "num_gcn_layers")


def parameter_count(sizes: dict[str, int]) -> int:
    """The parameters of the parts a config sizes, roughly (the CNN aside): what
    `check_sizes` weighs before anything is allocated.

    Args:
        sizes: the values of `SIZE_FIELDS`.
    """
    d, ff, k = sizes["d_model"], sizes["d_ff"], sizes["d_knowledge"]
    return (2 * sizes["vocab_size"] * d  # token embedding and output layer
            + sizes["num_encoder_layers"] * (4 * d * d + 2 * d * ff)
            + sizes["num_decoder_layers"] * (8 * d * d + 2 * d * ff)
            + 4 * d * d + 2 * d * k + sizes["num_gcn_layers"] * k * k  # knowledge query, GCN
            + sizes["max_length"] * d)  # the position table


def check_sizes(config: Any) -> None:
    """Refuse sizes past any real model before anything is built, naming the field.

    Args:
        config: a `cknet.CKNetConfig`.

    Raises:
        ValueError: for an image, view count, report length or depth past the limits, or a
            model of more than `MAX_PARAMETERS` parameters (naming the field whose default
            value would shrink it most).
    """
    for name, limit in (("image_size", MAX_IMAGE_SIZE), ("num_views", MAX_VIEWS),
                        ("max_length", MAX_REPORT_TOKENS), ("num_encoder_layers", MAX_LAYERS),
                        ("num_decoder_layers", MAX_LAYERS), ("num_gcn_layers", MAX_LAYERS)):
        if getattr(config, name) > limit:
            raise ValueError(f"CKNetConfig.{name} is {getattr(config, name):,}, past the {limit:,} cknet "
                             f"allows "
                             f"(checked before anything is allocated)")
    sizes = {name: getattr(config, name) for name in SIZE_FIELDS}
    total = parameter_count(sizes)
    if total > MAX_PARAMETERS:
        defaults = {f.name: f.default for f in dataclasses.fields(config)}
        field = min(SIZE_FIELDS, key=lambda name: parameter_count({**sizes, name: defaults[name]}))
        raise ValueError(f"CKNetConfig would build about {total:,} parameters "
                         f"({4 * total / 2**30:,.0f} GiB), "
                         f"past the {MAX_PARAMETERS:,} cknet allows; CKNetConfig.{field} "
                         f"({getattr(config, field):,}) weighs most")
