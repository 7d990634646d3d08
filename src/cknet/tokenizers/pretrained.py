"""`PretrainedReportTokenizer`: a language model's own tokenizer behind the report interface.

With a pretrained text encoder (``CKNetConfig.text_encoder``; the paper's
BioClinicalBERT, Section III.B) the decoder's input and output live in that model's
vocabulary. Each report is first cleaned by the same R2Gen rules as `ReportTokenizer`
(`clean_report`), then split by the model's tokenizer (WordPiece for BERT). The
model's ``[CLS]`` starts and its ``[SEP]`` ends every report (its BOS/EOS tokens for
models without them); truncation keeps the end token. Decoding merges word pieces
back into words (and glues hyphens back into the words they came from), so a cleaned
report survives encode-decode unchanged and generated reports are scored on the same
words as the references.

Saved as a small JSON descriptor plus the Hugging Face tokenizer files in the
``text_encoder/`` folder beside it (a saved CKNet adds the language model's
architecture there); loading needs no network.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from cknet.config import dataset_preset
from cknet.persistence.files import write_text_atomic
from cknet.persistence.hub import load_hf_pretrained
from cknet.tokenizers.base import ReportTokenizerBase

FILES_DIR = "text_encoder"
# After R2Gen cleaning the hyphen is the only punctuation left inside words; BERT's
# pre-tokenizer splits it off, and decoding glues it back ("t - spine" -> "t-spine").
_HYPHEN = re.compile(r"\s*-\s*")


class PretrainedReportTokenizer(ReportTokenizerBase):
    """R2Gen report cleaning followed by a Hugging Face tokenizer.

    Args:
        tokenizer: a ``transformers`` tokenizer (e.g. ``AutoTokenizer.from_pretrained(...)``)
            with padding, unknown, start (``[CLS]`` or BOS) and end (``[SEP]`` or EOS) tokens.
        dataset: cleaning rules, ``"iu_xray"`` or ``"mimic_cxr"``.
        max_length: longest encoded report in tokens, start and end included (default
            60 for IU X-Ray, 100 for MIMIC-CXR; word pieces make reports longer than
            their word count).
        source: where the tokenizer came from (hub id or folder), kept for records.

    Raises:
        ValueError: for an unknown dataset, or a tokenizer without the four special
            tokens (or with two of them sharing an id).

    Example:
        ```python
        tok = PretrainedReportTokenizer.from_pretrained("/models/Bio_ClinicalBERT")
        tok.decode(tok.encode("No pneumothorax."))   # 'no pneumothorax .'
        ```
    """

    def __init__(
        self,
        tokenizer: Any,
        dataset: str = "iu_xray",
        max_length: int | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(dataset, max_length)
        self.tokenizer = tokenizer
        self.source = source
        ids = {
            "pad": tokenizer.pad_token_id,
            "start ([CLS] or BOS)": _first(tokenizer.cls_token_id, tokenizer.bos_token_id),
            "end ([SEP] or EOS)": _first(tokenizer.sep_token_id, tokenizer.eos_token_id),
            "unknown": tokenizer.unk_token_id,
        }
        missing = [name for name, i in ids.items() if i is None]
        if missing:
            raise ValueError(
                f"the tokenizer {source or type(tokenizer).__name__} has no {', '.join(missing)} "
                f"token; a report tokenizer needs padding, unknown, start and end tokens"
            )
        if len(set(ids.values())) < len(ids):
            raise ValueError(f"the tokenizer's special tokens share ids: {ids}")
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = ids.values()
        self._special = frozenset(tokenizer.all_special_ids)
        self._non_report_ids = tuple(sorted(self._special - {self.eos_id, self.unk_id}))
        self._continuation = _wordpiece_prefix(tokenizer)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        dataset: str = "iu_xray",
        max_length: int | None = None,
    ) -> PretrainedReportTokenizer:
        """Load a language model's tokenizer from a local folder or the Hugging Face Hub.

        Args:
            name_or_path: e.g. ``"emilyalsentzer/Bio_ClinicalBERT"`` or its local copy.
            dataset: cleaning rules, ``"iu_xray"`` or ``"mimic_cxr"``.
            max_length: longest encoded report (see the class).

        Returns:
            The tokenizer.

        Raises:
            OSError: when the tokenizer files are neither local nor downloadable; the
                message says how to place them in a local folder.
        """
        from transformers import AutoTokenizer

        tokenizer = load_hf_pretrained(AutoTokenizer, name_or_path, "tokenizer")
        return cls(tokenizer, dataset, max_length, os.fspath(name_or_path))

    # ------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        """Number of ids, special and added tokens included."""
        return len(self.tokenizer)

    @property
    def non_report_ids(self) -> tuple[int, ...]:
        """Every special id but the end and unknown tokens."""
        return self._non_report_ids

    @property
    def reference_length(self) -> int:
        """References are cut to the peers' word limit for the dataset (60 for IU X-Ray,
        100 for MIMIC-CXR), whatever ``max_length`` counts in word pieces, so that scores
        compare with published ones."""
        return dataset_preset(self.dataset).max_length

    def __repr__(self) -> str:
        return (f"PretrainedReportTokenizer(source={self.source!r}, dataset={self.dataset!r}, "
                f"vocab_size={self.vocab_size}, max_length={self.max_length})")

    # ------------------------------------------------------------ encode/decode
    def tokenize(self, cleaned: str) -> list[int]:
        """The language model's ids of a cleaned report, without start and end tokens.

        Args:
            cleaned: a report cleaned by `clean`.

        Returns:
            The token ids (word pieces for BERT).
        """
        return list(self.tokenizer(cleaned, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """Turn ids back into words, stopping at the first end token.

        Word pieces are merged into words and hyphens glued to their neighbours (after
        cleaning a hyphen only occurs inside words); special tokens other than the
        unknown token are skipped.

        Args:
            ids: token ids, a list or a 1-D tensor.

        Returns:
            The words joined by single spaces.

        Raises:
            ValueError: for an id outside ``[0, vocab_size)``.
        """
        kept = [i for i in self.report_ids(ids) if i not in self._special or i == self.unk_id]
        if self._continuation is not None:  # WordPiece: "##" marks a piece inside a word
            text = " ".join(self.tokenizer.convert_ids_to_tokens(kept)).replace(" " + self._continuation, "")
        else:
            text = self.tokenizer.decode(kept, clean_up_tokenization_spaces=False)
        return " ".join(_HYPHEN.sub("-", text).split())

    # ------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the descriptor JSON to ``path`` and the Hugging Face tokenizer files to
        the ``text_encoder/`` folder beside it.

        Args:
            path: the JSON file to write (e.g. ``tokenizer.json`` of a saved model).
        """
        path = Path(path)
        self.tokenizer.save_pretrained(path.parent / FILES_DIR)
        descriptor = {"type": "PretrainedReportTokenizer", "dataset": self.dataset,
                      "max_length": self.max_length, "source": self.source, "files": FILES_DIR}
        write_text_atomic(path, json.dumps(descriptor, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PretrainedReportTokenizer:
        """Read a tokenizer written by `save` (offline).

        Args:
            path: the descriptor JSON file.

        Returns:
            The tokenizer.

        Raises:
            ValueError: naming the file if it is not such a descriptor.
            FileNotFoundError: if the tokenizer files beside it are missing.
        """
        from transformers import AutoTokenizer

        path = Path(path)
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(data, dict) or data.get("type") != "PretrainedReportTokenizer":
                raise ValueError("expected 'type': 'PretrainedReportTokenizer'")
            files, dataset = data.get("files"), data.get("dataset")
            max_length, source = data.get("max_length"), data.get("source")
            if not isinstance(files, str) or not isinstance(dataset, str) or not (
                    max_length is None or (isinstance(max_length, int) and not isinstance(max_length, bool))):
                raise ValueError("expected 'files' and 'dataset' names and an integer 'max_length'")
            folder = path.parent / files
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as err:
            raise ValueError(f"{path} is not a PretrainedReportTokenizer file: {err}") from None
        if not folder.is_dir():
            raise FileNotFoundError(f"{path} refers to the tokenizer folder {folder}, which is missing")
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        return cls(tokenizer, dataset, max_length, source)


def _wordpiece_prefix(tokenizer: Any) -> str | None:
    """The prefix of word-internal pieces (``"##"``) for a WordPiece tokenizer, else None."""
    model = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    if type(model).__name__ == "WordPiece":
        return model.continuing_subword_prefix
    if hasattr(tokenizer, "wordpiece_tokenizer"):  # the slow (pure Python) BertTokenizer
        return "##"
    return None


def _first(*ids: int | None) -> int | None:
    return next((i for i in ids if i is not None), None)
