"""Report generation: `generate`, its options (`GenerationConfig`) and logits processors.

`generate` takes studies in any form, encodes each once and runs greedy decoding,
sampling or beam search (`cknet.generation.search`) over the model's decoder with a
key/value cache. It drives any model that follows `ReportGenerator` (CKNet does);
nothing here imports the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from cknet.generation.config import GenerationConfig
from cknet.generation.processors import (
    BanTokens,
    LogitsProcessor,
    MinNewTokens,
    NoRepeatNGram,
    Temperature,
    TopK,
    TopP,
)
from cknet.generation.search import Decoder, Hypotheses, Specials, beam_search, sample_search
from cknet.report_text import readable_report

__all__ = [
    "BanTokens",
    "GeneratedReport",
    "GenerationConfig",
    "Hypotheses",
    "LogitsProcessor",
    "MinNewTokens",
    "NoRepeatNGram",
    "Temperature",
    "TopK",
    "TopP",
    "generate",
    "run_search",
]


@dataclass
class GeneratedReport:
    """One generated report.

    Attributes:
        text: the report as asked for: readable (the default, see
            `cknet.report_text.readable_report`) or tokenised.
        token_ids: its ids without ``<bos>``, up to and including ``<eos>``.
        score: summed log-probability divided by ``length ** length_penalty``.
        tokenized: the words joined by spaces, as the tokenizer decodes them: the form
            the metrics compare with the field's tokenised references.
    """

    text: str
    token_ids: list[int]
    score: float
    tokenized: str


class ReportGenerator(Decoder, Protocol):
    """What `generate` needs from a model besides the `Decoder` steps: its config
    (``max_length``, views and image size), its default decoding options, its tokenizer,
    and `encode`."""

    config: Any
    generation_config: GenerationConfig
    tokenizer: Any

    def encode(self, images: torch.Tensor) -> Any:
        """Encode ``(B, V, 3, S, S)`` images once per study."""

    def parameters(self) -> Any:
        """The model's parameters (their device and dtype are used)."""


def run_search(
    model: Decoder,
    encoding: Any,
    num_studies: int,
    tokenizer: Any,
    options: GenerationConfig,
    logits_processors: Sequence[LogitsProcessor] = (),
    generator: torch.Generator | None = None,
) -> Hypotheses:
    """The search `options` ask for, over already encoded studies.

    Args:
        model: the decoder.
        encoding: what the model's ``encode`` returned.
        num_studies: the studies in ``encoding``.
        tokenizer: gives the special ids and ``non_report_ids`` (never generated).
        options: a resolved `GenerationConfig` (see `GenerationConfig.resolve`).
        logits_processors: processors applied after the built-in ones.
        generator: random generator for sampling.

    Returns:
        The hypotheses, best first.
    """
    processors: list[LogitsProcessor] = [BanTokens(tokenizer.non_report_ids)]
    if options.min_new_tokens:
        processors.append(MinNewTokens(tokenizer.eos_id, options.min_new_tokens))
    if options.no_repeat_ngram_size:
        processors.append(NoRepeatNGram(options.no_repeat_ngram_size))
    processors += list(logits_processors)
    specials = Specials(tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id)
    if options.num_beams > 1:
        return beam_search(model, encoding, num_studies, specials, options.max_new_tokens, options.num_beams,
                           processors, options.num_return_sequences, options.length_penalty)
    warpers = None
    if options.do_sample:
        warpers = [Temperature(options.temperature)]
        warpers += [TopK(options.top_k)] if options.top_k else []
        warpers += [TopP(options.top_p)] if options.top_p < 1 else []
    return sample_search(model, encoding, num_studies, specials, options.max_new_tokens, processors, warpers,
                         options.num_return_sequences, options.length_penalty, generator)


def generate(
    model: ReportGenerator,
    images: Any,
    options: GenerationConfig | None = None,
    logits_processors: Sequence[LogitsProcessor] = (),
    batch_size: int | None = None,
    progress: bool = False,
    repeat_single_view: bool = False,
    generator: torch.Generator | None = None,
) -> list[list[GeneratedReport]]:
    """Write reports for studies.

    Args:
        model: the model (evaluation mode is set for the call and restored after).
        images: a ``(B, V, 3, S, S)`` preprocessed tensor, or studies in any form
            `cknet.data.prepare_images` accepts.
        options: decoding options (default: the model's ``generation_config``).
        logits_processors: your own processors, applied after the built-in ones.
        batch_size: studies per forward pass (default: all at once).
        progress: show a progress bar over the studies.
        repeat_single_view: let a lone image fill every view of a multi-view model.
        generator: random generator used when sampling.

    Returns:
        Per study, its ``num_return_sequences`` reports, best first.

    Raises:
        ValueError: for invalid options or images.
    """
    from tqdm.auto import tqdm

    from cknet.data.images import prepare_images
    from cknet.inputs.checks import check_images

    resolved = (options or model.generation_config).resolve(model.config.max_length)
    if not isinstance(images, torch.Tensor):
        images = prepare_images(images, model.config, repeat_single_view)
    images = check_images(images, model.config, finite=False)  # the values: in model.encode, once
    size = images.shape[0] if batch_size is None else int(batch_size)
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    parameter = next(model.parameters())
    tokenizer = model.tokenizer
    results: list[list[GeneratedReport]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=images.shape[0], desc="generating", unit="study",
                                          disable=not progress) as bar:
            for chunk in images.split(size):
                encoding = model.encode(chunk.to(parameter.device, parameter.dtype))
                try:
                    found = run_search(model, encoding, chunk.shape[0], tokenizer, resolved,
                                       logits_processors, generator)
                except (torch.OutOfMemoryError, RuntimeError) as err:
                    if not isinstance(err, torch.OutOfMemoryError) and "allocate" not in str(err):
                        raise
                    raise MemoryError(
                        f"decoding {chunk.shape[0]} studies with num_beams={resolved.num_beams} needs more "
                        f"memory than this {chunk.device.type} has ({str(err).splitlines()[0][:120]}); lower "
                        f"num_beams or batch_size (the paper decodes with 3 beams)") from None
                for tokens, scores in zip(found.tokens.tolist(), found.scores.tolist()):
                    results.append([_report(tokenizer, t, s, resolved) for t, s in zip(tokens, scores)])
                bar.update(chunk.shape[0])
    finally:
        model.train(was_training)
    return results


def _report(tokenizer: Any, ids: list[int], score: float, options: GenerationConfig) -> GeneratedReport:
    """One search result as a `GeneratedReport`, its text in the form ``options`` ask for."""
    tokenized = tokenizer.decode(ids)
    text = readable_report(tokenized, options.trim_incomplete) if options.readable else tokenized
    return GeneratedReport(text, _report_ids(ids, tokenizer.eos_id), score, tokenized)


def _report_ids(ids: list[int], eos_id: int) -> list[int]:
    """Ids after ``<bos>`` up to and including the first ``<eos>``."""
    body = ids[1:]
    return body[: body.index(eos_id) + 1] if eos_id in body else body
