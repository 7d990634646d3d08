"""Report cleaning and the interface every report tokenizer follows.

`clean_report` follows the R2Gen family's rules for IU X-Ray and MIMIC-CXR (for any
dataset preset of `cknet.config.DATASETS`), so that a vocabulary built from a training
split holds exactly the words those code bases keep. Empty sentences (from ".." or a
trailing period) are dropped while cleaning, where the peers keep them as doubled
" . . " tokens; the vocabulary is the same either way.

`ReportTokenizerBase` is what `CKNet` needs from a tokenizer: the special ids, `encode`
(truncation keeps the end token), `decode`, and `save` (one JSON file that
`cknet.tokenizers.load_tokenizer` reads back, keyed by its ``"type"``).
"""

from __future__ import annotations

import numbers
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import torch

from cknet.config import dataset_preset

# R2Gen's character class ``[.,?;*!%^&_+():-\[\]{}]``: note that ``:-\[`` is a range
# from ":" to "[" (it also removes ;<=>?@ and upper-case letters) and that "-" itself
# is kept. Reproduced literally so that the vocabularies agree.
_PUNCTUATION = re.compile(r"[.,?;*!%^&_+():-\[\]{}]")
_NUMBERING = (("1. ", ""), (". 2. ", ". "), (". 3. ", ". "), (". 4. ", ". "), (". 5. ", ". "),
              (" 2. ", ". "), (" 3. ", ". "), (" 4. ", ". "), (" 5. ", ". "))


def _collapse(text: str, pattern: str, replacement: str) -> str:
    while pattern in text:
        text = text.replace(pattern, replacement)
    return text


def _clean_sentence(sentence: str) -> str:
    for char in ('"', "/", "\\", "'"):
        sentence = sentence.replace(char, "")
    return _PUNCTUATION.sub("", sentence.strip().lower())


def clean_report(report: str, dataset: str = "iu_xray") -> str:
    """Clean a report the R2Gen way: lower case, no list numbering or punctuation,
    sentences joined by ``" . "`` and ending with ``" ."``.

    Args:
        report: the raw report text.
        dataset: a preset of `cknet.config.DATASETS`: ``"iu_xray"``, or ``"mimic_cxr"``
            (which also folds newlines, underscores and repeated spaces).

    Returns:
        The cleaned report; ``""`` when nothing but punctuation was left.

    Raises:
        ValueError: for an unknown ``dataset`` or a ``report`` that is not a string.
    """
    preset = dataset_preset(dataset)
    if not isinstance(report, str):
        raise ValueError(f"report must be a str, got {type(report).__name__}")
    text = report
    if preset.fold_whitespace:
        text = _collapse(_collapse(text.replace("\n", " "), "__", "_"), "  ", " ")
    text = _collapse(text, "..", ".")
    for pattern, replacement in _NUMBERING:
        text = text.replace(pattern, replacement)
    sentences = [_clean_sentence(s) for s in text.strip().lower().split(". ")]
    sentences = [" ".join(s.split()) for s in sentences]
    sentences = [s for s in sentences if s]
    if not sentences:
        return ""
    return " . ".join(sentences) + " ."


class ReportTokenizerBase(ABC):
    """What `CKNet` needs from a report tokenizer; `ReportTokenizer` (word level) and
    `cknet.PretrainedReportTokenizer` (a language model's own, e.g. WordPiece) implement it.

    Attributes:
        dataset: cleaning rules, ``"iu_xray"`` or ``"mimic_cxr"``.
        max_length: longest encoded report, ``<bos>`` and ``<eos>`` included.
        pad_id: the padding id.
        bos_id: the id every encoded report starts with.
        eos_id: the id every encoded report ends with.
        unk_id: the id of text outside the vocabulary.
    """

    dataset: str
    max_length: int
    pad_id: int
    bos_id: int
    eos_id: int
    unk_id: int

    def __init__(self, dataset: str, max_length: int | None) -> None:
        self.dataset = dataset
        self.max_length = dataset_preset(dataset).max_length if max_length is None else int(max_length)
        if self.max_length < 3:
            raise ValueError(f"max_length must be at least 3, got {self.max_length}")

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""

    @property
    def non_report_ids(self) -> tuple[int, ...]:
        """Ids that never occur inside a report (generation never emits them)."""
        return (self.pad_id, self.bos_id)

    @property
    def reference_length(self) -> int:
        """The ``max_length`` (in words, BOS and EOS counted) that references are cut to
        for scoring, as the R2Gen family cuts them."""
        return self.max_length

    def __len__(self) -> int:
        return self.vocab_size

    def clean(self, report: str) -> str:
        """`clean_report` with this tokenizer's dataset rules.

        Args:
            report: raw report text.

        Returns:
            The cleaned text, words separated by spaces.
        """
        return clean_report(report, self.dataset)

    def encode(self, report: str, max_length: int | None = None) -> list[int]:
        """Clean and encode one report as ``[<bos>, tokens..., <eos>]``.

        Args:
            report: raw report text.
            max_length: longest output, BOS and EOS included (default: the tokenizer's).
                Longer reports are cut to ``max_length - 2`` tokens and keep their EOS.

        Raises:
            ValueError: if the report is empty once cleaned.
        """
        limit = self.max_length if max_length is None else int(max_length)
        if limit < 3:
            raise ValueError(f"max_length must be at least 3, got {limit}")
        cleaned = self.clean(report)
        if not cleaned:
            raise ValueError(f"report is empty once cleaned: {report!r}")
        return [self.bos_id] + self.tokenize(cleaned)[: limit - 2] + [self.eos_id]

    @abstractmethod
    def tokenize(self, cleaned: str) -> list[int]:
        """The ids of a cleaned report, without ``<bos>`` and ``<eos>``.

        Args:
            cleaned: a report cleaned by `clean`.

        Returns:
            Its token ids.
        """

    @abstractmethod
    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """Turn ids back into text (words joined by spaces), stopping at the first ``<eos>``.

        Args:
            ids: token ids, a list or a 1-D tensor.

        Returns:
            The report text.
        """

    def report_ids(self, ids: Iterable[int] | torch.Tensor) -> list[int]:
        """The ids before the first ``<eos>``, each checked to be a valid id.

        Args:
            ids: token ids, a list or a 1-D tensor.

        Returns:
            The ids up to (not including) the first ``<eos>``.

        Raises:
            ValueError: for an id that is not an integer in ``[0, vocab_size)``.
        """
        if isinstance(ids, torch.Tensor):
            if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool or ids.dim() != 1:
                raise ValueError(f"ids must be a 1-D integer tensor or a list of ints, got a {ids.dim()}-D "
                                 f"{ids.dtype} tensor")
            ids = ids.tolist()
        kept = []
        for i in ids:
            if not isinstance(i, numbers.Integral) or isinstance(i, bool):
                raise ValueError(f"token ids must be integers, got {i!r} ({type(i).__name__})")
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside [0, {self.vocab_size})")
            if i == self.eos_id:
                break
            kept.append(i)
        return kept

    def encode_batch(
        self, reports: Sequence[str], max_length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode reports and right-pad them with ``<pad>``.

        Args:
            reports: raw report texts.
            max_length: as in `encode`.

        Returns:
            ``input_ids`` ``(B, T)`` int64 and ``attention_mask`` ``(B, T)`` bool (True
            on real tokens), T the longest encoded report.
        """
        if isinstance(reports, str):
            raise ValueError("reports must be a sequence of strings, got a single str")
        encoded = [self.encode(r, max_length) for r in reports]
        if not encoded:
            raise ValueError("reports is empty")
        longest = max(len(e) for e in encoded)
        input_ids = torch.full((len(encoded), longest), self.pad_id, dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return input_ids, input_ids != self.pad_id

    def decode_batch(self, ids: torch.Tensor | Sequence[Sequence[int]]) -> list[str]:
        """`decode` each row of a batch.

        Args:
            ids: a ``(B, T)`` tensor or a list of id lists.

        Returns:
            ``B`` texts.
        """
        return [self.decode(row) for row in ids]

    @abstractmethod
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer to ``path`` (a JSON file; `load_tokenizer` reads it back).

        Args:
            path: the JSON file to write.
        """

    @classmethod
    @abstractmethod
    def load(cls, path: str | os.PathLike[str]) -> ReportTokenizerBase:
        """Read a tokenizer written by `save`.

        Args:
            path: the JSON file.

        Returns:
            The tokenizer.
        """
