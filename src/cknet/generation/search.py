"""Search loops: greedy decoding, sampling and beam search over a small decoder protocol.

The loops know nothing of CKNet: they drive any `Decoder`, an object that starts the
incremental decoding of some rows of an encoded batch and scores the next token of
each running row. The encoded studies (encoder memory, knowledge projection,
cross-attention keys and values) are computed once per study; beams and samples share
them through row indexing. All studies and beams advance together as one tensor; rows
whose reports have finished leave the batch, and decoding stops once every report has
ended.

Scores are summed token log-probabilities under the model, after the processors
(banned tokens, minimum length, n-gram blocking, a user's own) and before any sampling
warper, divided by ``length ** length_penalty`` where ``length`` counts the generated
tokens including ``<eos>`` (the Hugging Face convention). The paper's setting, as in the
R2Gen family, is ``length_penalty=0``: raw summed log-probabilities.

Beam search is exact in the sense that it stops only when no running beam can still
beat the worst of the ``num_beams`` finished hypotheses; with a beam as wide as the
search space it returns the same best sequence and score as exhaustive enumeration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from cknet.generation.processors import NEG_INF, LogitsProcessor, apply


class SearchState(Protocol):
    """What a `Decoder` keeps between steps for R rows, on ``device``."""

    device: torch.device

    def select(self, rows: torch.Tensor) -> None:
        """Keep only some rows (whole groups of beams, in order).

        Args:
            rows: ``(R',)`` the rows kept.
        """

    def reorder(self, index: torch.Tensor) -> None:
        """Let row r continue the history of row ``index[r]`` (within its group).

        Args:
            index: ``(R,)``.
        """


class Decoder(Protocol):
    """What the search loops need from a model."""

    def start_decoding(self, encoding: Any, rows: torch.Tensor, capacity: int, group: int) -> SearchState:
        """Prepare the incremental decoding of some rows of an encoded batch.

        Args:
            encoding: the encoded studies.
            rows: ``(R,)`` the study of each sequence to decode.
            capacity: token slots to reserve.
            group: consecutive rows that are beams of one study.
        """

    def decode_step(self, tokens: torch.Tensor, state: SearchState) -> torch.Tensor:
        """``(R, V)`` next-token logits.

        Args:
            tokens: ``(R, 1)`` the newest token of each row.
            state: what `start_decoding` returned, advanced in place.
        """


@dataclass(frozen=True)
class Specials:
    """The ids the loops treat specially.

    Attributes:
        bos_id: every sequence starts with it.
        eos_id: a sequence ends with it.
        pad_id: fills the rest of a finished sequence.
    """

    bos_id: int
    eos_id: int
    pad_id: int


@dataclass
class Hypotheses:
    """Generated sequences, best first.

    Attributes:
        tokens: ``(B, n, 1 + T)`` ids starting with ``<bos>``, ending with ``<eos>`` (unless
            cut at ``max_new_tokens``), then ``<pad>``.
        scores: ``(B, n)`` length-normalised summed log-probabilities.
    """

    tokens: torch.Tensor
    scores: torch.Tensor


def _normalise(scores: torch.Tensor, lengths: torch.Tensor | int, length_penalty: float) -> torch.Tensor:
    if length_penalty == 0.0:
        return scores
    lengths = torch.as_tensor(lengths, dtype=scores.dtype, device=scores.device)
    return scores / lengths.pow(length_penalty)


def _logprobs(decoder: Decoder, step_input: torch.Tensor, state: SearchState, tokens: torch.Tensor,
              processors: Sequence[LogitsProcessor], step: int) -> torch.Tensor:
    """``(R, V)`` float32 processed log-probabilities of the next token.

    Raises:
        ValueError: when the model's scores hold NaN or infinite values.
    """
    logits = decoder.decode_step(step_input, state).float()
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(
            f"the model's scores of token {step + 1} hold NaN or infinite values: its weights or its "
            f"input hold NaN or infinite values, or its computation overflowed (in a low precision, "
            f"try float32)"
        )
    return apply(processors, logits.log_softmax(dim=-1), tokens, step)


def sample_search(
    decoder: Decoder,
    encoding: Any,
    num_studies: int,
    specials: Specials,
    max_new_tokens: int,
    processors: Sequence[LogitsProcessor] = (),
    warpers: Sequence[LogitsProcessor] | None = None,
    num_return_sequences: int = 1,
    length_penalty: float = 0.0,
    generator: torch.Generator | None = None,
) -> Hypotheses:
    """Greedy decoding (``warpers=None``) or ancestral sampling, one row per sequence.

    With sampling, each study is decoded ``num_return_sequences`` times and the samples
    are ordered by score.

    Args:
        decoder: the model.
        encoding: the encoded studies, as the decoder's `Decoder.start_decoding` takes them.
        num_studies: B, the studies in ``encoding``.
        specials: the special ids.
        max_new_tokens: tokens after ``<bos>`` at most.
        processors: applied to the log-probabilities every step.
        warpers: None for greedy decoding; else sampling, from the processed
            log-probabilities passed through these (temperature, top-k, top-p).
        num_return_sequences: samples per study (1 for greedy).
        length_penalty: as in the module docstring.
        generator: random generator for sampling.

    Returns:
        `Hypotheses` with ``(B, n, 1 + T)`` tokens.
    """
    sampling = warpers is not None
    copies = num_return_sequences if sampling else 1
    rows = torch.arange(num_studies).repeat_interleave(copies)
    state = decoder.start_decoding(encoding, rows, max_new_tokens, 1)
    total, steps, device = rows.numel(), max_new_tokens, state.device
    out_tokens = torch.full((total, 1 + steps), specials.pad_id, dtype=torch.long, device=device)
    out_tokens[:, 0] = specials.bos_id
    out_scores = torch.zeros(total, device=device)
    out_lengths = torch.full((total,), steps, dtype=torch.long, device=device)
    active = torch.arange(total, device=device)  # which output rows are still decoding
    step_input = out_tokens[:, :1]
    for step in range(steps):
        history = out_tokens.index_select(0, active)[:, : step + 1]
        logprobs = _logprobs(decoder, step_input, state, history, processors, step)
        if sampling:
            probabilities = apply(warpers, logprobs, history, step).softmax(dim=-1)
            next_token = torch.multinomial(probabilities, 1, generator=generator)[:, 0]
        else:
            next_token = logprobs.argmax(dim=-1)
        out_tokens[active, step + 1] = next_token
        out_scores[active] += logprobs.gather(1, next_token[:, None])[:, 0]
        ended = next_token == specials.eos_id
        out_lengths[active[ended]] = step + 1
        step_input = next_token[:, None]
        if bool(ended.any()):
            keep = (~ended).nonzero()[:, 0]
            if keep.numel() == 0:
                break
            active, step_input = active.index_select(0, keep), step_input.index_select(0, keep)
            state.select(keep)
    scores = _normalise(out_scores, out_lengths, length_penalty).view(num_studies, copies)
    tokens = out_tokens.view(num_studies, copies, -1)
    order = scores.argsort(dim=1, descending=True)
    tokens = tokens.gather(1, order[..., None].expand_as(tokens))
    return Hypotheses(_trim(tokens, specials.pad_id), scores.gather(1, order))


def _continuations(running: torch.Tensor, running_scores: torch.Tensor, logprobs: torch.Tensor,
                   count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``count`` best one-token continuations of each study's running beams.

    Args:
        running: ``(S, K, t)`` the running beams' tokens.
        running_scores: ``(S, K)`` their summed log-probabilities.
        logprobs: ``(S*K, V)`` the next token's log-probabilities per beam.
        count: continuations per study (``2K``; fewer when ``K * V`` is smaller).

    Returns:
        Their scores ``(S, C)`` best first, source beams ``(S, C)``, tokens ``(S, C)`` and
        token sequences ``(S, C, t+1)``.
    """
    studies, beams = running_scores.shape
    vocab = logprobs.shape[1]
    totals = running_scores[:, :, None] + logprobs.view(studies, beams, vocab)
    top_scores, top_index = totals.flatten(1).topk(min(count, beams * vocab), dim=1)
    source_beam, token = top_index // vocab, top_index % vocab
    candidates = torch.cat(
        [running.gather(1, source_beam[..., None].expand(-1, -1, running.shape[2])), token[..., None]], dim=2
    )
    return top_scores, source_beam, token, candidates


def _keep_running(candidates: torch.Tensor, top_scores: torch.Tensor, source_beam: torch.Tensor,
                  is_eos: torch.Tensor, beams: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best K continuations that do not end: they keep running.

    Args:
        candidates: ``(S, C, t+1)`` the continuations, best first.
        top_scores: ``(S, C)`` their summed log-probabilities.
        source_beam: ``(S, C)`` the beam each came from.
        is_eos: ``(S, C)`` whether each ends with ``<eos>``.
        beams: K.

    Returns:
        The running tokens ``(S, K, t+1)``, their scores ``(S, K)`` (-inf for an ending
        one, when fewer than K do not end) and the beam each came from ``(S, K)``.
    """
    count = candidates.shape[1]
    rank = is_eos.long() * count + torch.arange(count, device=candidates.device)
    keep = rank.argsort(dim=1)[:, :beams]
    running = candidates.gather(1, keep[..., None].expand(-1, -1, candidates.shape[2]))
    running_scores = top_scores.gather(1, keep).masked_fill(is_eos.gather(1, keep), NEG_INF)
    return running, running_scores, source_beam.gather(1, keep)


def _keep_best_finished(finished: torch.Tensor, finished_scores: torch.Tensor, active: torch.Tensor,
                        scores: torch.Tensor, tokens: torch.Tensor) -> None:
    """Merge new hypotheses into the active studies' finished sets, keeping the K best
    (in place).

    Args:
        finished: ``(B, K, L)`` every study's finished hypotheses.
        finished_scores: ``(B, K)`` their normalised scores (-inf: an empty slot).
        active: ``(S,)`` the studies the new hypotheses belong to.
        scores: ``(S, C)`` the new hypotheses' normalised scores (-inf: not a hypothesis).
        tokens: ``(S, C, L)`` their tokens, padded to ``L``.
    """
    beams = finished_scores.shape[1]
    pool_scores = torch.cat([finished_scores[active], scores], dim=1)
    pool_tokens = torch.cat([finished[active], tokens], dim=1)
    best_scores, best = pool_scores.topk(beams, dim=1)
    finished_scores[active] = best_scores
    finished[active] = pool_tokens.gather(1, best[..., None].expand(-1, -1, pool_tokens.shape[2]))


def beam_search(
    decoder: Decoder,
    encoding: Any,
    num_studies: int,
    specials: Specials,
    max_new_tokens: int,
    num_beams: int,
    processors: Sequence[LogitsProcessor] = (),
    num_return_sequences: int = 1,
    length_penalty: float = 0.0,
) -> Hypotheses:
    """Batched beam search with a key/value cache.

    At each step every running beam proposes its tokens; the ``2 * num_beams`` best
    continuations per study are ranked, those ending in ``<eos>`` among the top
    ``num_beams`` join the study's finished hypotheses (kept as the ``num_beams`` best
    by normalised score), and the best ``num_beams`` others keep running. A study is
    done when it has ``num_beams`` finished hypotheses and no running beam can still
    beat the worst of them; it is then dropped from the batch.

    Args:
        decoder: the model.
        encoding: the encoded studies.
        num_studies: B, the studies in ``encoding``.
        specials: the special ids.
        max_new_tokens: tokens after ``<bos>`` at most.
        num_beams: K, the beam width.
        processors: applied to the log-probabilities every step.
        num_return_sequences: hypotheses returned per study (at most K).
        length_penalty: as in the module docstring.

    Returns:
        `Hypotheses` with the ``num_return_sequences`` best of each study, best first.
    """
    beams, steps, penalty = num_beams, max_new_tokens, length_penalty
    rows = torch.arange(num_studies).repeat_interleave(beams)
    state = decoder.start_decoding(encoding, rows, steps, beams)
    device = state.device
    running = torch.full((num_studies, beams, 1), specials.bos_id, dtype=torch.long, device=device)
    running_scores = torch.full((num_studies, beams), NEG_INF, device=device)
    running_scores[:, 0] = 0.0  # all beams start identical: expand only the first
    finished = torch.full((num_studies, beams, 1 + steps), specials.pad_id, dtype=torch.long, device=device)
    finished_scores = torch.full((num_studies, beams), NEG_INF, device=device)
    active = torch.arange(num_studies, device=device)  # studies still searching
    candidates_per_study = 2 * beams
    positions = torch.arange(candidates_per_study, device=device)

    for step in range(steps):
        studies = active.numel()
        flat_tokens = running.flatten(0, 1)  # (S*K, t)
        logprobs = _logprobs(decoder, flat_tokens[:, -1:], state, flat_tokens, processors, step)
        top_scores, source_beam, token, candidates = _continuations(running, running_scores, logprobs,
                                                                    candidates_per_study)

        # Hypotheses that end here and rank among the top K join the finished set.
        is_eos = token == specials.eos_id
        joins = is_eos & (positions[: token.shape[1]] < beams) & torch.isfinite(top_scores)
        eos_scores = _normalise(top_scores, step + 1, penalty).masked_fill(~joins, NEG_INF)
        padded = torch.nn.functional.pad(candidates, (0, steps - step - 1), value=specials.pad_id)
        _keep_best_finished(finished, finished_scores, active, eos_scores, padded)

        running, running_scores, parent = _keep_running(candidates, top_scores, source_beam, is_eos, beams)
        reorder = (torch.arange(studies, device=device)[:, None] * beams + parent).flatten()
        # A study is done when no running beam can beat its worst finished hypothesis.
        best_running = running_scores.max(dim=1).values
        bound = _normalise(best_running, steps if penalty > 0 else step + 1, penalty)
        done = (finished_scores[active, -1] >= bound) | torch.isinf(best_running)
        if step == steps - 1 or bool(done.all()):
            break
        state.reorder(reorder)  # beams move within their study
        if bool(done.any()):
            still = (~done).nonzero()[:, 0]
            active, running, running_scores = active[still], running[still], running_scores[still]
            state.select((still[:, None] * beams + torch.arange(beams, device=device)).flatten())

    # Beams still running at the length limit compete with the finished ones.
    if step == steps - 1:
        last_scores = _normalise(running_scores, steps, penalty)
        _keep_best_finished(finished, finished_scores, active, last_scores, running)
    n = num_return_sequences
    return Hypotheses(_trim(finished[:, :n], specials.pad_id), finished_scores[:, :n])


def _trim(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Drop trailing columns that are padding in every row."""
    used = (tokens != pad_id).flatten(0, -2).any(dim=0)
    last = int(used.nonzero().max()) + 1 if bool(used.any()) else 1
    return tokens[..., :last]
