"""`ReportTokenizer`: R2Gen-compatible report cleaning and a word-level vocabulary.

Cleaning follows the R2Gen family's rules for IU X-Ray and MIMIC-CXR, so that the
vocabulary built from a training split holds exactly the words those code bases keep
(on IU X-Ray with threshold 3: 759 words plus the unknown token). Two deliberate
differences from the peers, both fixing defects:

- The special tokens have distinct ids: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2,
  ``<unk>`` = 3 (the peers use id 0 for BOS, EOS and padding at once).
- Truncation keeps the end-of-sequence token: a report longer than ``max_length`` is
  cut to ``max_length - 2`` words and still ends with ``<eos>`` (the peers cut after
  adding it, so a long report loses its end).

Empty sentences (from ".." or a trailing period) are dropped while cleaning, where the
peers keep them as doubled " . . " tokens; the vocabulary is the same either way.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from cknet.io import write_text_atomic

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
DEFAULT_THRESHOLDS = {"iu_xray": 3, "mimic_cxr": 10}
DEFAULT_MAX_LENGTHS = {"iu_xray": 60, "mimic_cxr": 100}

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
        dataset: ``"iu_xray"`` or ``"mimic_cxr"`` (which also folds newlines,
            underscores and repeated spaces).

    Returns:
        The cleaned report; ``""`` when nothing but punctuation was left.

    Raises:
        ValueError: for an unknown ``dataset`` or a ``report`` that is not a string.
    """
    if dataset not in DEFAULT_THRESHOLDS:
        raise ValueError(f"dataset must be 'iu_xray' or 'mimic_cxr', got {dataset!r}")
    if not isinstance(report, str):
        raise ValueError(f"report must be a str, got {type(report).__name__}")
    text = report
    if dataset == "mimic_cxr":
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
        if dataset not in DEFAULT_MAX_LENGTHS:
            raise ValueError(f"dataset must be 'iu_xray' or 'mimic_cxr', got {dataset!r}")
        self.dataset = dataset
        self.max_length = DEFAULT_MAX_LENGTHS[dataset] if max_length is None else int(max_length)
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
            ValueError: for an id outside ``[0, vocab_size)``.
        """
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        kept = []
        for i in ids:
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


class ReportTokenizer(ReportTokenizerBase):
    """Word-level tokenizer for radiology reports.

    Ids: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3, then the vocabulary words in
    sorted order.

    Args:
        words: the vocabulary words (special tokens excluded).
        dataset: cleaning rules, ``"iu_xray"`` or ``"mimic_cxr"``.
        max_length: longest encoded report, BOS and EOS included.
        threshold: the count threshold the vocabulary was built with (kept for records).

    Example:
        >>> tok = ReportTokenizer.from_reports(["No effusion. Heart is normal."] * 3)
        >>> tok.decode(tok.encode("No effusion."))
        'no effusion .'
    """

    def __init__(
        self,
        words: Sequence[str],
        dataset: str = "iu_xray",
        max_length: int | None = None,
        threshold: int | None = None,
    ) -> None:
        super().__init__(dataset, max_length)
        words = list(words)
        clashes = sorted(set(words) & set(SPECIAL_TOKENS))
        if clashes:
            raise ValueError(f"words must not contain the special tokens {clashes}")
        if len(set(words)) != len(words):
            dupes = sorted(w for w, c in Counter(words).items() if c > 1)
            raise ValueError(f"words contains duplicates: {dupes[:10]}")
        bad = [w for w in words if not isinstance(w, str) or not w or w != w.strip() or " " in w]
        if bad:
            raise ValueError(f"words must be non-empty strings without spaces, got {bad[:10]!r}")
        self.threshold = threshold
        self.id_to_token: list[str] = list(SPECIAL_TOKENS) + sorted(words)
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(self.id_to_token)}

    pad_id = 0
    bos_id = 1
    eos_id = 2
    unk_id = 3

    # ------------------------------------------------------------ construction
    @classmethod
    def from_reports(
        cls,
        reports: Iterable[str],
        dataset: str = "iu_xray",
        threshold: int | None = None,
        max_length: int | None = None,
    ) -> ReportTokenizer:
        """Build the vocabulary from training reports, as R2Gen does.

        Words occurring at least ``threshold`` times after cleaning are kept; build it
        from the train split only.

        Args:
            reports: the training reports, raw text.
            dataset: ``"iu_xray"`` or ``"mimic_cxr"``: the cleaning rules and default threshold.
            threshold: minimum count of a kept word (default 3 for IU X-Ray, 10 for MIMIC-CXR).
            max_length: longest encoded report, ``<bos>`` and ``<eos>`` included (default
                60 for IU X-Ray, 100 for MIMIC-CXR).

        Returns:
            The tokenizer.

        Raises:
            ValueError: for an unknown dataset, or if no word reaches the threshold.
        """
        if dataset not in DEFAULT_THRESHOLDS:
            raise ValueError(f"dataset must be 'iu_xray' or 'mimic_cxr', got {dataset!r}")
        threshold = DEFAULT_THRESHOLDS[dataset] if threshold is None else int(threshold)
        counts: Counter[str] = Counter()
        for report in reports:
            counts.update(clean_report(report, dataset).split())
        words = [w for w, c in counts.items() if c >= threshold and w not in SPECIAL_TOKENS]
        if not words:
            raise ValueError(f"no word occurs at least {threshold} times in the given reports")
        return cls(words, dataset=dataset, max_length=max_length, threshold=threshold)

    @classmethod
    def from_annotation(
        cls,
        path: str | os.PathLike[str],
        dataset: str = "iu_xray",
        threshold: int | None = None,
        max_length: int | None = None,
    ) -> ReportTokenizer:
        """Build the vocabulary from the train split of an R2Gen ``annotation.json``.

        Args:
            path: the annotation file.
            dataset: as in `from_reports`.
            threshold: as in `from_reports`.
            max_length: as in `from_reports`.

        Returns:
            The tokenizer.

        Raises:
            ValueError: if the file has no ``"train"`` list of entries with ``"report"``.
        """
        with open(path, encoding="utf-8") as fh:
            annotation = json.load(fh)
        train = annotation.get("train") if isinstance(annotation, dict) else None
        if not isinstance(train, list) or not all(isinstance(e, dict) and "report" in e
                                                  for e in train):
            raise ValueError(
                f"{os.fspath(path)}: expected an R2Gen annotation file with a 'train' list "
                f"of entries holding a 'report'"
            )
        return cls.from_reports((e["report"] for e in train), dataset, threshold, max_length)

    # ------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        return len(self.id_to_token)

    @property
    def words(self) -> list[str]:
        """The vocabulary words, special tokens excluded, in id order."""
        return self.id_to_token[len(SPECIAL_TOKENS):]

    def __repr__(self) -> str:
        return (f"ReportTokenizer(dataset={self.dataset!r}, vocab_size={self.vocab_size}, "
                f"max_length={self.max_length})")

    # ------------------------------------------------------------ encode/decode
    def tokenize(self, cleaned: str) -> list[int]:
        """The word ids of a cleaned report (``<unk>`` for words outside the vocabulary).

        Args:
            cleaned: a report cleaned by `clean`.

        Returns:
            One id per word.
        """
        return [self.token_to_id.get(w, self.unk_id) for w in cleaned.split()]

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """Turn ids back into text, stopping at the first ``<eos>``.

        ``<bos>`` and ``<pad>`` are skipped; ``<unk>`` is kept as is.

        Args:
            ids: token ids, a list or a 1-D tensor.

        Returns:
            The words joined by spaces.

        Raises:
            ValueError: for an id outside ``[0, vocab_size)``.
        """
        return " ".join(self.id_to_token[i] for i in self.report_ids(ids)
                        if i not in (self.bos_id, self.pad_id))

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """A JSON-ready description of the tokenizer."""
        return {
            "type": "ReportTokenizer",
            "dataset": self.dataset,
            "max_length": self.max_length,
            "threshold": self.threshold,
            "special_tokens": list(SPECIAL_TOKENS),
            "words": self.words,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ReportTokenizer:
        """Inverse of `to_dict`.

        Args:
            data: a dict written by `to_dict`.

        Returns:
            The tokenizer.

        Raises:
            ValueError: if ``data`` is not a ReportTokenizer description.
        """
        if not isinstance(data, dict) or data.get("type") != "ReportTokenizer":
            raise ValueError("not a ReportTokenizer description (expected 'type': 'ReportTokenizer')")
        if list(data.get("special_tokens", [])) != list(SPECIAL_TOKENS):
            raise ValueError(
                f"special tokens {data.get('special_tokens')} differ from {list(SPECIAL_TOKENS)}"
            )
        return cls(data["words"], data["dataset"], data["max_length"], data.get("threshold"))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer as JSON (atomically: a temporary file, then a rename).

        Args:
            path: the JSON file to write.
        """
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReportTokenizer:
        """Read a tokenizer written by `save`.

        Args:
            path: the JSON file.

        Returns:
            The tokenizer.

        Raises:
            ValueError: naming the file if it is not a tokenizer JSON.
        """
        try:
            with open(path, encoding="utf-8") as fh:
                return cls.from_dict(json.load(fh))
        except (json.JSONDecodeError, KeyError, ValueError) as err:
            raise ValueError(f"{os.fspath(path)} is not a ReportTokenizer file: {err}") from None


def load_tokenizer(path: str | os.PathLike[str]) -> ReportTokenizerBase:
    """Read a tokenizer saved by either tokenizer's ``save``: a `ReportTokenizer`, or a
    `cknet.PretrainedReportTokenizer` (whose language-model files sit beside the JSON).

    Args:
        path: the JSON file written by ``save``.

    Returns:
        The tokenizer.

    Raises:
        ValueError: naming the file if it is neither kind of tokenizer file.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            kind = json.load(fh).get("type")
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"{os.fspath(path)} is not a tokenizer file: {err}") from None
    if kind == "PretrainedReportTokenizer":
        from cknet.pretrained_tokenizer import PretrainedReportTokenizer

        return PretrainedReportTokenizer.load(path)
    return ReportTokenizer.load(path)
