"""`GenerationConfig`: the decoding options of `CKNet.generate`, with the paper's defaults.

The paper decodes with beam search of width 3 (Section IV.C) and, like the R2Gen
family, ranks hypotheses by their summed log-probabilities (``length_penalty=0``).
Options are named and behave as their Hugging Face namesakes, with one difference in
the default width: ``num_beams=None`` means the paper's 3 for search, and 1 when
``do_sample=True`` (sampling draws one token per step).

A model keeps its own defaults in ``CKNet.generation_config``, saved beside its weights
as ``generation_config.json`` (as ``transformers`` does): `CKNet.generate` starts from
them, and a call's options override them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from cknet.limits import MAX_BEAMS, MAX_NEW_TOKENS

PAPER_NUM_BEAMS = 3


@dataclass
class GenerationConfig:
    """Decoding options.

    Attributes:
        max_new_tokens: tokens after ``<bos>`` at most, ``<eos>`` included (None: the
            model's ``max_length - 1``).
        min_new_tokens: ``<eos>`` is forbidden before this many tokens.
        num_beams: beam width; None takes the paper's 3, or 1 when sampling; 1 means
            greedy decoding or sampling.
        length_penalty: a finished report scores its summed log-probability divided by
            ``length ** length_penalty`` (> 0 favours longer reports; 0, the paper's,
            ranks by the raw sum).
        no_repeat_ngram_size: forbid repeating any n-gram of this size (0: off); applies
            at every beam width.
        do_sample: sample each token instead of taking the most likely ones.
        temperature: divides the log-probabilities before sampling.
        top_k: sample among the k most likely tokens (0: all).
        top_p: sample within the smallest set of tokens whose probability reaches top_p
            (1: all).
        num_return_sequences: reports per study, best first (at most ``num_beams`` for
            beam search; independent samples when sampling).
        readable: return reports for people (`cknet.report_text.readable_report`:
            punctuation attached, sentences capitalised, an unfinished last sentence
            marked); False returns the tokenised form the metrics compare
            (``GeneratedReport.tokenized`` holds it either way).
        trim_incomplete: with ``readable``, cut a report that stops mid-sentence back
            to its last full sentence instead of marking it.
    """

    max_new_tokens: int | None = None
    min_new_tokens: int = 0
    num_beams: int | None = None
    length_penalty: float = 0.0
    no_repeat_ngram_size: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_return_sequences: int = 1
    readable: bool = True
    trim_incomplete: bool = False

    def updated(self, **options: Any) -> GenerationConfig:
        """A copy with some options changed.

        Args:
            **options: option names and values.

        Returns:
            The new config (this one is unchanged).

        Raises:
            ValueError: for unknown names (listed).
        """
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown generation option(s) {unknown}; see cknet.generation.GenerationConfig")
        return dataclasses.replace(self, **options)

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-ready dict (what ``generation_config.json`` holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationConfig:
        """Options from `to_dict`'s form (missing keys keep their defaults), checked.

        Args:
            data: option names and values.

        Returns:
            The options.

        Raises:
            ValueError: for unknown names (listed) or invalid values.
        """
        config = cls().updated(**data)
        config.validate()
        return config

    def resolve(self, max_length: int) -> GenerationConfig:
        """The options with every None filled in for a model, checked.

        Args:
            max_length: the model's longest report, ``<bos>`` and ``<eos>`` included.

        Returns:
            A new, complete config.

        Raises:
            ValueError: naming the first invalid option.
        """
        beams = self.num_beams if self.num_beams is not None else (1 if self.do_sample else PAPER_NUM_BEAMS)
        steps = self.max_new_tokens if self.max_new_tokens is not None else max_length - 1
        resolved = dataclasses.replace(self, num_beams=int(beams), max_new_tokens=int(steps))
        resolved.validate()
        return resolved

    def validate(self) -> None:
        """Raise `ValueError` naming the first invalid option (None counts as unset): of
        the wrong type, out of range, or past the sizes cknet allows (`MAX_NEW_TOKENS`,
        `MAX_BEAMS`), before anything is allocated."""
        from cknet.field_checks import check_field_types

        check_field_types(self)
        for name, limit in (("max_new_tokens", MAX_NEW_TOKENS), ("num_beams", MAX_BEAMS),
                            ("num_return_sequences", MAX_BEAMS)):
            value = getattr(self, name)
            if value is not None and value > limit:
                raise ValueError(f"{name} is {value:,}, past the {limit:,} cknet allows")
        for name in ("length_penalty", "temperature", "top_p"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        steps = self.max_new_tokens
        if steps is not None and steps < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {steps}")
        if self.min_new_tokens < 0 or (steps is not None and self.min_new_tokens > steps):
            raise ValueError(f"min_new_tokens must be in [0, max_new_tokens={steps}], "
                             f"got {self.min_new_tokens}")
        if self.num_beams is not None and self.num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {self.num_beams}")
        if self.no_repeat_ngram_size < 0:
            raise ValueError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.num_return_sequences < 1:
            raise ValueError(f"num_return_sequences must be at least 1, got {self.num_return_sequences}")
        beams = self.num_beams
        if self.do_sample and beams is not None and beams > 1:
            raise ValueError(
                f"do_sample=True draws one token per step: it takes num_beams=1 (or None), got {beams}"
            )
        if beams is not None and beams > 1 and self.num_return_sequences > beams:
            raise ValueError(
                f"num_return_sequences ({self.num_return_sequences}) cannot exceed num_beams ({beams})"
            )
        if not self.do_sample and beams == 1 and self.num_return_sequences > 1:
            raise ValueError(
                "greedy decoding returns one sequence per study: use num_beams >= "
                "num_return_sequences or do_sample=True"
            )
