"""`LengthGroupedBatches`: training batches of reports of similar length, padded less.

A batch is padded to its longest report, so with reports of varied length a shuffled
batch spends part of its compute on ``<pad>`` tokens: 37% of the token positions of
shuffled batches of 16 IU X-Ray training reports, 7% with ``group=8`` (30% and 6% for
the demo's batches of 32 synthetic reports; ``docs/performance.md``). Here the
epoch's order, as the sampler gives it (shuffled, balanced by finding, or one process's
share), is cut into runs of ``group`` batches' worth of studies; each run is ordered by
report length and cut into batches, and the batches are shuffled. Every study is seen
as often as the sampler says; only which studies share a batch changes (HuggingFace's
``group_by_length`` does the same with runs of 50 batches).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class LengthGroupedBatches(Sampler[list[int]]):
    """A batch sampler: the indices of ``sampler`` in batches of similar length.

    Args:
        sampler: the epoch's study indices, in the order drawn (a `Sampler` such as
            `RandomSampler`, or a list).
        lengths: the report length of every study, by index (tokens).
        batch_size: studies per batch; only the epoch's last run ends in a smaller one.
        group: batches per run sorted by length (1 sorts within each batch only, which
            pads as much as no grouping; larger pads less and mixes less).
        generator: shuffles the batches.

    Raises:
        ValueError: for a ``batch_size`` or ``group`` below 1.
    """

    def __init__(self, sampler: Sampler[int] | Sequence[int], lengths: Sequence[int], batch_size: int,
                 group: int, generator: torch.Generator) -> None:
        if batch_size < 1 or group < 1:
            raise ValueError(f"batch_size and group must be at least 1, got {batch_size} and {group}")
        self.sampler = sampler
        self.lengths = lengths
        self.batch_size = batch_size
        self.group = group
        self.generator = generator

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        run = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), run):
            by_length = sorted(order[start:start + run], key=lambda i: self.lengths[i])
            batches += [by_length[i:i + self.batch_size] for i in range(0, len(by_length), self.batch_size)]
        for position in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[position]

    def __len__(self) -> int:
        studies = len(self.sampler)  # type: ignore[arg-type]
        full_runs, rest = divmod(studies, self.batch_size * self.group)
        return full_runs * self.group + math.ceil(rest / self.batch_size)
