"""`FeatureCache`: a frozen backbone's maps (and a per-study knowledge matrix) computed
once per study, so that training and validation run the rest of the model only.

With the visual backbone frozen (``TrainingConfig.cache_features``), the backbone's maps
of a study never change, nor do the frozen graph model's node embeddings: computing them
once turns an epoch on a CPU from a CNN pass per study into the Transformer's work alone.
The cache holds one view of each study as the evaluation transform gives it (no random
crops), in float16 on the CPU by default.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


class FeatureCache(Dataset):
    """Studies with their backbone maps (and knowledge matrix) computed once.

    Args:
        model: the `CKNet` whose frozen backbone (and per-study knowledge source)
            computes the features.
        data: study dicts with ``images`` (evaluation transform), ``id`` and ``report``.
        batch_size: studies per forward pass while filling the cache.
        dtype: storage type of the cached tensors.
        progress: show a progress bar while filling the cache.

    Items are dicts: ``id``, ``report``, ``maps`` ``(V, C, h, w)`` and ``knowledge``
    (``(M, d)`` for a per-study source, else None).
    """

    def __init__(self, model: Any, data: Dataset, batch_size: int = 16,
                 dtype: torch.dtype = torch.float16, progress: bool = False) -> None:
        from tqdm.auto import tqdm

        self.items: list[dict] = []
        per_study = model.knowledge is not None and model.knowledge.per_study
        loader = DataLoader(data, batch_size=batch_size, collate_fn=list)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for items in tqdm(loader, desc="caching features", disable=not progress, leave=False):
                    images = torch.stack([i["images"] for i in items]).to(model.device)
                    maps = model.visual_extractor.maps(images).to("cpu", dtype)
                    knowledge = model.knowledge_matrix(images).to("cpu", dtype) if per_study else None
                    for row, item in enumerate(items):
                        self.items.append({"id": item["id"], "report": item["report"], "maps": maps[row],
                                           "knowledge": None if knowledge is None else knowledge[row]})
        finally:
            model.train(was_training)

    def reports(self) -> list[str]:
        """The studies' reports, in order."""
        return [item["report"] for item in self.items]

    def study_ids(self) -> list[str]:
        """The studies' ids, in order."""
        return [item["id"] for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]
