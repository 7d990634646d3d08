"""Report generation from a `CKNet`: greedy, sampling and beam search with a key/value cache.

The images are encoded once per study (encoder memory, projected knowledge matrix and
the cross-attention keys/values of every decoder layer); beams and samples share them
through row indexing. Every step then feeds only the newest token through the
text-side knowledge query and the decoder, whose self-attention keys and values are
cached. All studies and beams advance together as one tensor; rows whose reports have
finished are dropped from the batch, and decoding stops once every report has ended.

Scores are summed token log-probabilities under the model (before any temperature or
top-k/top-p filtering), divided by ``length ** length_penalty`` where ``length`` counts
the generated tokens including ``<eos>`` (the Hugging Face convention). The paper's
setting, as in the R2Gen family, is ``length_penalty=0``: raw summed log-probabilities.

Beam search is exact in the sense that it stops only when no running beam can still
beat the worst of the ``num_beams`` finished hypotheses; with a beam as wide as the
search space it returns the same best sequence and score as exhaustive enumeration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from cknet.model import CKNet, ImageEncoding

NEG_INF = float("-inf")


@dataclass
class GenerationSettings:
    """Decoding options; `CKNet.generate` documents each at length.

    Attributes:
        max_new_tokens: most tokens to generate per report, ``<eos>`` included.
        min_new_tokens: ``<eos>`` is forbidden before this many tokens.
        num_beams: beam width (1: greedy or sampling).
        length_penalty: a hypothesis scores its summed log-probability divided by
            ``length ** length_penalty``.
        no_repeat_ngram_size: forbid repeating any n-gram of this size (0: off).
        do_sample: sample instead of taking the most likely token.
        temperature: divides the logits before sampling.
        top_k: sample among the k most likely tokens (0: all).
        top_p: nucleus sampling threshold (1: off).
        num_return_sequences: sequences returned per study.
    """

    max_new_tokens: int
    min_new_tokens: int = 0
    num_beams: int = 1
    length_penalty: float = 0.0
    no_repeat_ngram_size: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_return_sequences: int = 1

    def validate(self) -> None:
        """Raise `ValueError` naming the first invalid option."""
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens must be in [0, max_new_tokens={self.max_new_tokens}], "
                f"got {self.min_new_tokens}"
            )
        if self.num_beams < 1:
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
        if self.do_sample and self.num_beams > 1:
            raise ValueError("do_sample=True works with num_beams=1 (sampling, not beam search)")
        if self.num_beams > 1 and self.num_return_sequences > self.num_beams:
            raise ValueError(
                f"num_return_sequences ({self.num_return_sequences}) cannot exceed "
                f"num_beams ({self.num_beams})"
            )
        if not self.do_sample and self.num_beams == 1 and self.num_return_sequences > 1:
            raise ValueError(
                "greedy decoding returns one sequence per study: use num_beams >= "
                "num_return_sequences or do_sample=True"
            )


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


def _ban_repeated_ngrams(logprobs: torch.Tensor, tokens: torch.Tensor, size: int) -> torch.Tensor:
    """Set to -inf every token that would complete an n-gram already in ``tokens``.

    Args:
        logprobs: ``(R, V)`` scores of the next token.
        tokens: ``(R, t)`` the sequences so far.
        size: n, the n-gram size (0 disables).
    """
    if size <= 0 or tokens.shape[1] < size:
        return logprobs
    windows = tokens.unfold(1, size, 1)  # (R, t-n+1, n): every n-gram so far
    tail = tokens[:, tokens.shape[1] - size + 1:]  # (R, n-1): the prefix of the next n-gram
    repeats = (windows[:, :, :-1] == tail[:, None, :]).all(-1)  # (R, t-n+1)
    vocab = logprobs.shape[1]
    banned = windows[:, :, -1].masked_fill(~repeats, vocab)  # column V is a dummy
    penalty = torch.zeros(logprobs.shape[0], vocab + 1, dtype=logprobs.dtype, device=logprobs.device)
    penalty.scatter_(1, banned, NEG_INF)
    return logprobs + penalty[:, :vocab]


def _next_token_logprobs(
    model: CKNet, step_input: torch.Tensor, encoding: ImageEncoding, cache, tokens: torch.Tensor,
    settings: GenerationSettings, step: int, banned: torch.Tensor,
) -> torch.Tensor:
    """``(R, V)`` float32 log-probabilities of the next token, with bans applied; ``banned``
    holds the ids that never occur in a report (``<pad>``, ``<bos>``, other specials)."""
    logits = model.decode(step_input, encoding, cache)[:, -1].float()
    logprobs = logits.log_softmax(dim=-1).index_fill_(1, banned, NEG_INF)
    if step < settings.min_new_tokens:
        logprobs[:, model.tokenizer.eos_id] = NEG_INF
    return _ban_repeated_ngrams(logprobs, tokens, settings.no_repeat_ngram_size)


def _filter_for_sampling(logprobs: torch.Tensor, settings: GenerationSettings) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus) filtering of ``(R, V)`` log-probs."""
    scores = logprobs / settings.temperature
    if settings.top_k > 0 and settings.top_k < scores.shape[1]:
        kth = scores.topk(settings.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, NEG_INF)
    if settings.top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        outside = cumulative - sorted_scores.softmax(dim=-1) >= settings.top_p  # keep the first
        scores = scores.scatter(1, order, sorted_scores.masked_fill(outside, NEG_INF))
    return scores


def sample_search(
    model: CKNet,
    encoding: ImageEncoding,
    settings: GenerationSettings,
    generator: torch.Generator | None = None,
) -> Hypotheses:
    """Greedy decoding (``do_sample=False``) or ancestral sampling, one row per sequence.

    With sampling, each study is decoded ``num_return_sequences`` times and the samples
    are ordered by score.

    Args:
        model: the model, in eval mode.
        encoding: the encoded studies (B rows).
        settings: decoding options.
        generator: random generator for sampling.

    Returns:
        `Hypotheses` with ``(B, n, 1 + T)`` tokens.
    """
    tok = model.tokenizer
    batch = encoding.memory.shape[0]
    copies = settings.num_return_sequences if settings.do_sample else 1
    device = encoding.memory.device
    rows = torch.arange(batch, device=device).repeat_interleave(copies)
    encoding, cache = model.start_decoding(encoding, rows, settings.max_new_tokens)
    total = rows.numel()
    steps = settings.max_new_tokens
    out_tokens = torch.full((total, 1 + steps), tok.pad_id, dtype=torch.long, device=device)
    out_tokens[:, 0] = tok.bos_id
    out_scores = torch.zeros(total, device=device)
    out_lengths = torch.full((total,), steps, dtype=torch.long, device=device)
    active = torch.arange(total, device=device)  # which output rows are still decoding
    banned = torch.tensor(tok.non_report_ids, device=device)
    step_input = out_tokens[:, :1]
    for step in range(steps):
        history = out_tokens.index_select(0, active)[:, : step + 1] \
            if settings.no_repeat_ngram_size else step_input
        logprobs = _next_token_logprobs(model, step_input, encoding, cache, history, settings, step, banned)
        if settings.do_sample:
            probabilities = _filter_for_sampling(logprobs, settings).softmax(dim=-1)
            next_token = torch.multinomial(probabilities, 1, generator=generator)[:, 0]
        else:
            next_token = logprobs.argmax(dim=-1)
        out_tokens[active, step + 1] = next_token
        out_scores[active] += logprobs.gather(1, next_token[:, None])[:, 0]
        ended = next_token == tok.eos_id
        out_lengths[active[ended]] = step + 1
        step_input = next_token[:, None]
        if bool(ended.any()):
            keep = (~ended).nonzero()[:, 0]
            if keep.numel() == 0:
                break
            active, step_input = active.index_select(0, keep), step_input.index_select(0, keep)
            encoding = encoding.select(keep)
            cache.select(keep)
    scores = _normalise(out_scores, out_lengths, settings.length_penalty).view(batch, copies)
    tokens = out_tokens.view(batch, copies, -1)
    order = scores.argsort(dim=1, descending=True)
    tokens = tokens.gather(1, order[..., None].expand_as(tokens))
    return Hypotheses(_trim(tokens, tok.pad_id), scores.gather(1, order))


def beam_search(model: CKNet, encoding: ImageEncoding, settings: GenerationSettings) -> Hypotheses:
    """Batched beam search with a key/value cache.

    At each step every running beam proposes its tokens; the ``2 * num_beams`` best
    continuations per study are ranked, those ending in ``<eos>`` among the top
    ``num_beams`` join the study's finished hypotheses (kept as the ``num_beams`` best
    by normalised score), and the best ``num_beams`` others keep running. A study is
    done when it has ``num_beams`` finished hypotheses and no running beam can still
    beat the worst of them; it is then dropped from the batch.

    Args:
        model: the model, in eval mode.
        encoding: the encoded studies (B rows).
        settings: decoding options.

    Returns:
        `Hypotheses` with the ``num_return_sequences`` best of each study, best first.
    """
    tok = model.tokenizer
    beams, steps, penalty = settings.num_beams, settings.max_new_tokens, settings.length_penalty
    batch = encoding.memory.shape[0]
    device = encoding.memory.device
    rows = torch.arange(batch, device=device).repeat_interleave(beams)
    encoding, cache = model.start_decoding(encoding, rows, settings.max_new_tokens)
    cache.group = beams  # reordering beams rewrites an ancestry table, not the cache

    running = torch.full((batch, beams, 1), tok.bos_id, dtype=torch.long, device=device)
    running_scores = torch.full((batch, beams), NEG_INF, device=device)
    running_scores[:, 0] = 0.0  # all beams start identical: expand only the first
    finished = torch.full((batch, beams, 1 + steps), tok.pad_id, dtype=torch.long, device=device)
    finished_scores = torch.full((batch, beams), NEG_INF, device=device)
    active = torch.arange(batch, device=device)  # studies still searching
    candidates_per_study = 2 * beams
    positions = torch.arange(candidates_per_study, device=device)
    banned = torch.tensor(tok.non_report_ids, device=device)

    for step in range(steps):
        studies = active.numel()
        flat_tokens = running.flatten(0, 1)  # (S*K, t)
        logprobs = _next_token_logprobs(
            model, flat_tokens[:, -1:], encoding, cache, flat_tokens, settings, step, banned
        )
        vocab = logprobs.shape[1]
        totals = running_scores[:, :, None] + logprobs.view(studies, beams, vocab)
        top_scores, top_index = totals.flatten(1).topk(
            min(candidates_per_study, beams * vocab), dim=1
        )  # (S, 2K) best first
        source_beam, token = top_index // vocab, top_index % vocab
        candidates = torch.cat(
            [running.gather(1, source_beam[..., None].expand(-1, -1, running.shape[2])),
             token[..., None]], dim=2,
        )  # (S, 2K, t+1)

        # Hypotheses that end here and rank among the top K join the finished set.
        is_eos = token == tok.eos_id
        joins = is_eos & (positions[: token.shape[1]] < beams) & torch.isfinite(top_scores)
        eos_scores = _normalise(top_scores, step + 1, penalty).masked_fill(~joins, NEG_INF)
        padded = torch.nn.functional.pad(candidates, (0, steps - step - 1), value=tok.pad_id)
        pool_scores = torch.cat([finished_scores[active], eos_scores], dim=1)
        pool_tokens = torch.cat([finished[active], padded], dim=1)
        best_scores, best = pool_scores.topk(beams, dim=1)
        finished_scores[active] = best_scores
        finished[active] = pool_tokens.gather(1, best[..., None].expand(-1, -1, pool_tokens.shape[2]))

        # The best K continuations that do not end keep running.
        rank = is_eos.long() * candidates_per_study + positions[: token.shape[1]]
        keep = rank.argsort(dim=1)[:, :beams]  # (S, K)
        running = candidates.gather(1, keep[..., None].expand(-1, -1, candidates.shape[2]))
        running_scores = top_scores.gather(1, keep).masked_fill(is_eos.gather(1, keep), NEG_INF)
        parent = source_beam.gather(1, keep)  # (S, K) beam each continuation came from
        reorder = (torch.arange(studies, device=device)[:, None] * beams + parent).flatten()

        # A study is done when no running beam can beat its worst finished hypothesis.
        best_running = running_scores.max(dim=1).values
        if penalty > 0:
            bound = _normalise(best_running, steps, penalty)
        else:
            bound = _normalise(best_running, step + 1, penalty)
        worst_finished = finished_scores[active, -1]
        done = (worst_finished >= bound) | torch.isinf(best_running)
        if step == steps - 1 or bool(done.all()):
            break
        cache.reorder_tokens(reorder)  # beams move within their study
        if bool(done.any()):
            still = (~done).nonzero()[:, 0]
            active, running, running_scores = active[still], running[still], running_scores[still]
            rows = (still[:, None] * beams + torch.arange(beams, device=device)).flatten()
            encoding = encoding.select(rows)
            cache.select(rows)

    # Beams still running at the length limit compete with the finished ones.
    if step == steps - 1:
        pool_scores = torch.cat([finished_scores[active], _normalise(running_scores, steps, penalty)], 1)
        pool_tokens = torch.cat([finished[active], running], dim=1)
        best_scores, best = pool_scores.topk(beams, dim=1)
        finished_scores[active] = best_scores
        finished[active] = pool_tokens.gather(1, best[..., None].expand(-1, -1, pool_tokens.shape[2]))
    n = settings.num_return_sequences
    return Hypotheses(_trim(finished[:, :n], tok.pad_id), finished_scores[:, :n])


def _trim(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Drop trailing columns that are padding in every row."""
    used = (tokens != pad_id).flatten(0, -2).any(dim=0)
    last = int(used.nonzero().max()) + 1 if bool(used.any()) else 1
    return tokens[..., :last]
