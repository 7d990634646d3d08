"""Logits processors: composable changes to the next-token scores during decoding.

A processor takes the ``(R, V)`` log-probabilities of the next token of R running
sequences, the ``(R, t)`` tokens so far (``<bos>`` first) and the step (0 for the first
new token), and returns new scores. Two lists are applied:

- *processors* change what the search ranks and what the returned scores sum: the
  tokens a report never holds, the minimum length, n-gram blocking, and any processor
  a user passes to ``generate(..., logits_processors=[...])``;
- *sampling warpers* (temperature, top-k, top-p) change only the distribution a token
  is drawn from when sampling; the score of the drawn token stays its log-probability
  under the model (after the processors), as in Hugging Face's generation.

A processor that forbids a token sets its score to -inf.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

NEG_INF = float("-inf")


class LogitsProcessor(ABC):
    """Changes the next-token scores; subclass it and implement ``__call__``."""

    @abstractmethod
    def __call__(self, scores: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor:
        """Process the scores of one step.

        Args:
            scores: ``(R, V)`` float log-probabilities (possibly already processed).
            tokens: ``(R, t)`` each sequence's tokens so far, ``<bos>`` first.
            step: index of the token being chosen (0 for the first after ``<bos>``).

        Returns:
            ``(R, V)`` the new scores (the input may be changed in place).
        """


class BanTokens(LogitsProcessor):
    """Forbid token ids at every step (e.g. ``<pad>`` and ``<bos>``, which never occur
    inside a report).

    Args:
        ids: the forbidden ids.
    """

    def __init__(self, ids: Sequence[int]) -> None:
        self.ids = [int(i) for i in ids]
        self._index: torch.Tensor | None = None

    def __call__(self, scores: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor:
        if self._index is None or self._index.device != scores.device:
            self._index = torch.tensor(self.ids, dtype=torch.long, device=scores.device)
        return scores.index_fill_(1, self._index, NEG_INF)


class MinNewTokens(LogitsProcessor):
    """Forbid the end token while fewer than ``min_new_tokens`` tokens have been
    generated (as Hugging Face's option: ``min_new_tokens = max_new_tokens`` forces the
    full length).

    Args:
        eos_id: the end-of-report id.
        min_new_tokens: the tokens generated before ``<eos>`` may come.
    """

    def __init__(self, eos_id: int, min_new_tokens: int) -> None:
        self.eos_id = int(eos_id)
        self.min_new_tokens = int(min_new_tokens)

    def __call__(self, scores: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor:
        if step < self.min_new_tokens:
            scores[:, self.eos_id] = NEG_INF
        return scores


class NoRepeatNGram(LogitsProcessor):
    """Forbid every token that would complete an n-gram already in the sequence.

    Args:
        size: n.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"the n-gram size must be at least 1, got {size}")
        self.size = int(size)

    def __call__(self, scores: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor:
        n = self.size
        if tokens.shape[1] < n:
            return scores
        windows = tokens.unfold(1, n, 1)  # (R, t-n+1, n): every n-gram so far
        tail = tokens[:, tokens.shape[1] - n + 1:]  # (R, n-1): the prefix of the next one
        repeats = (windows[:, :, :-1] == tail[:, None, :]).all(-1)  # (R, t-n+1)
        vocab = scores.shape[1]
        banned = windows[:, :, -1].masked_fill(~repeats, vocab)  # column V is a dummy
        penalty = torch.zeros(scores.shape[0], vocab + 1, dtype=scores.dtype, device=scores.device)
        penalty.scatter_(1, banned, NEG_INF)
        return scores + penalty[:, :vocab]


class Temperature(LogitsProcessor):
    """Divide the scores by a temperature (a sampling warper).

    Args:
        temperature: > 0; below 1 sharpens, above 1 flattens.
    """

    def __init__(self, temperature: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def __call__(self, scores: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor:
        return scores / self.temperature


class TopK(LogitsProcessor):
    """Keep the k best tokens (a sampling warper).

    Args:
        k: how many.
    """

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"top_k must be at least 1, got {k}")
        self.k = int(k)

    def __call__(self, scores: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor:
        if self.k >= scores.shape[1]:
            return scores
        kth = scores.topk(self.k, dim=-1).values[:, -1:]
        return scores.masked_fill(scores < kth, NEG_INF)


class TopP(LogitsProcessor):
    """Keep the smallest set of best tokens whose probability reaches p (nucleus
    sampling; a sampling warper).

    Args:
        p: in (0, 1].
    """

    def __init__(self, p: float) -> None:
        if not 0.0 < p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {p}")
        self.p = float(p)

    def __call__(self, scores: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor:
        if self.p >= 1.0:
            return scores
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        probabilities = sorted_scores.softmax(dim=-1)
        outside = probabilities.cumsum(dim=-1) - probabilities >= self.p  # the first always stays
        return scores.scatter(1, order, sorted_scores.masked_fill(outside, NEG_INF))


def apply(processors: Sequence[LogitsProcessor], scores: torch.Tensor, tokens: torch.Tensor,
          step: int) -> torch.Tensor:
    """Apply processors in order.

    Args:
        processors: the processors.
        scores: ``(R, V)``.
        tokens: ``(R, t)``.
        step: the step.

    Returns:
        ``(R, V)``.
    """
    for processor in processors:
        scores = processor(scores, tokens, step)
    return scores
