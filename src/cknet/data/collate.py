"""`collate_studies`: batches of study dicts, reports encoded by the model's tokenizer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def collate_studies(tokenizer: Any) -> Callable[[Sequence[dict]], dict]:
    """A collate function: stacks images (or cached features) and encodes the reports.

    Args:
        tokenizer: the report tokenizer (its ``encode_batch``).

    Returns:
        A function from a list of study dicts to a batch dict: ``ids``, ``reports``,
        ``input_ids`` ``(B, T)``, and ``images``, or ``maps`` and ``knowledge_matrix``, or
        ``labels``, stacked, where the studies have them.
    """

    def collate(items: Sequence[dict]) -> dict:
        batch: dict[str, Any] = {"ids": [i["id"] for i in items], "reports": [i["report"] for i in items]}
        batch["input_ids"], _ = tokenizer.encode_batch(batch["reports"])
        for key in ("images", "maps", "knowledge_matrix", "labels"):
            if key in items[0] and items[0][key] is not None:
                batch[key] = torch.stack([i[key] for i in items])
        return batch

    return collate
