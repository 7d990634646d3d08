"""`ReportTokenizer`: a word-level vocabulary built from training reports, as R2Gen does.

On IU X-Ray with threshold 3 the vocabulary holds exactly the 759 words the R2Gen family
keeps, plus the unknown token. Two deliberate differences from the peers, both fixing
defects:

- The special tokens have distinct ids: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2,
  ``<unk>`` = 3 (the peers use id 0 for BOS, EOS and padding at once).
- Truncation keeps the end-of-sequence token: a report longer than ``max_length`` is
  cut to ``max_length - 2`` words and still ends with ``<eos>`` (the peers cut after
  adding it, so a long report loses its end).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from cknet.config import dataset_preset
from cknet.persistence.files import write_text_atomic
from cknet.tokenizers.base import ReportTokenizerBase, clean_report

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)


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
        ```python
        tok = ReportTokenizer.from_reports(["No effusion. Heart is normal."] * 3)
        tok.decode(tok.encode("No effusion."))   # 'no effusion .'
        ```
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
        threshold = dataset_preset(dataset).vocab_threshold if threshold is None else int(threshold)
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
            ValueError: if the file is not an R2Gen annotation or has no ``"train"`` studies.
        """
        from cknet.data.annotation import read_annotation

        annotation = read_annotation(path)
        train = annotation.get("train")
        if not train:
            raise ValueError(f"{os.fspath(path)}: the annotation has no 'train' studies to build a "
                             f"vocabulary from")
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
        if data.get("special_tokens") != list(SPECIAL_TOKENS):
            raise ValueError(
                f"special tokens {data.get('special_tokens')!r} differ from {list(SPECIAL_TOKENS)}"
            )
        words, dataset = data.get("words"), data.get("dataset")
        max_length, threshold = data.get("max_length"), data.get("threshold")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError(f"'words' must be a list of strings, got {type(words).__name__}")
        if not isinstance(dataset, str):
            raise ValueError(f"'dataset' must be a dataset name, got {dataset!r}")
        for name, value in (("max_length", max_length), ("threshold", threshold)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"'{name}' must be an integer, got {value!r}")
        return cls(words, dataset, max_length, threshold)

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
            with open(path, "rb") as fh:
                return cls.from_dict(json.loads(fh.read().decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as err:
            raise ValueError(f"{os.fspath(path)} is not a ReportTokenizer file: {err}") from None


