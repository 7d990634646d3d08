"""Report tokenizers: R2Gen cleaning, a word-level vocabulary, or a language model's own.

- `base`: `clean_report` and `ReportTokenizerBase`, the interface `CKNet` needs;
- `word`: `ReportTokenizer`, the peers' word-level vocabulary (the default);
- `pretrained`: `PretrainedReportTokenizer`, a Hugging Face tokenizer (WordPiece for
  BioClinicalBERT) behind the same interface.

`load_tokenizer` reads any of them back, keyed by the ``"type"`` their ``save`` writes.
"""

from __future__ import annotations

import json
import os

from cknet.tokenizers.base import ReportTokenizerBase, clean_report
from cknet.tokenizers.pretrained import FILES_DIR as TEXT_ENCODER_DIR
from cknet.tokenizers.pretrained import PretrainedReportTokenizer
from cknet.tokenizers.word import SPECIAL_TOKENS, ReportTokenizer

__all__ = [
    "SPECIAL_TOKENS",
    "TEXT_ENCODER_DIR",
    "TOKENIZER_TYPES",
    "PretrainedReportTokenizer",
    "ReportTokenizer",
    "ReportTokenizerBase",
    "clean_report",
    "load_tokenizer",
]

TOKENIZER_TYPES: dict[str, type[ReportTokenizerBase]] = {
    "ReportTokenizer": ReportTokenizer,
    "PretrainedReportTokenizer": PretrainedReportTokenizer,
}


def load_tokenizer(path: str | os.PathLike[str]) -> ReportTokenizerBase:
    """Read a tokenizer written by any tokenizer's ``save``, by the ``"type"`` it holds.

    Args:
        path: the JSON file written by ``save``.

    Returns:
        The tokenizer.

    Raises:
        ValueError: naming the file if it is not a tokenizer file of a known type.
    """
    from cknet.limits import MAX_TOKENIZER_BYTES

    size = os.path.getsize(path)
    if size > MAX_TOKENIZER_BYTES:
        raise ValueError(f"{os.fspath(path)} holds {size:,} bytes, more than any tokenizer file "
                         f"({MAX_TOKENIZER_BYTES:,} at most); it is not one")
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{os.fspath(path)} is not a tokenizer file: {err}") from None
    kind = data.get("type") if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in TOKENIZER_TYPES:
        raise ValueError(
            f"{os.fspath(path)} is not a tokenizer file: its 'type' is {kind!r}, expected one of "
            f"{sorted(TOKENIZER_TYPES)}"
        )
    return TOKENIZER_TYPES[kind].load(path)
