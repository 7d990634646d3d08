"""`FeatureCache`: a frozen backbone's maps (and a per-study knowledge matrix) computed
once per study, so that training and validation run the rest of the model only.

With the visual backbone frozen (``TrainingConfig.cache_features``), the backbone's maps
of a study never change, nor do the frozen graph model's node embeddings: computing them
once turns an epoch on a CPU from a CNN pass per study into the Transformer's work alone.
The cache holds one view of each study as the evaluation transform gives it (no random
crops), in float16 on the CPU by default. When the visual extractor's CNN is the graph
model's (``CKNetConfig.share_backbone``) or holds the very same weights (a copy of the
graph stage's CNN, frozen), each image goes through one backbone pass that feeds both.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from cknet.knowledge import GraphModelKnowledge


class FeatureCache(Dataset):
    """Studies with their backbone maps (and knowledge matrix) computed once.

    Args:
        model: the `CKNet` whose frozen backbone (and per-study knowledge source)
            computes the features.
        data: study dicts with ``images`` (evaluation transform), ``id`` and ``report``.
        batch_size: studies per forward pass while filling the cache.
        dtype: storage type of the cached tensors.
        progress: show a progress bar while filling the cache.

    Items are dicts: ``id``, ``report``, ``maps`` ``(V, C, h, w)`` and ``knowledge_matrix``
    (``(M, d)`` for a per-study source, else None).
    """

    def __init__(self, model: Any, data: Dataset, batch_size: int = 16,
                 dtype: torch.dtype = torch.float16, progress: bool = False) -> None:
        from tqdm.auto import tqdm

        self.items: list[dict] = []
        reuse_maps = same_backbone(model)  # one backbone pass for the maps and G
        loader = DataLoader(data, batch_size=batch_size, collate_fn=list)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for items in tqdm(loader, desc="caching features", disable=not progress, leave=False):
                    images = torch.stack([i["images"] for i in items]).to(model.device)
                    features = model.study_features(images, reuse_maps).to("cpu", dtype)
                    maps, knowledge = features.maps, features.knowledge_matrix
                    for row, item in enumerate(items):
                        self.items.append({"id": item["id"], "report": item["report"], "maps": maps[row],
                                           "knowledge_matrix": None if knowledge is None else knowledge[row]})
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


def same_backbone(model: Any) -> bool:
    """Whether the visual extractor's CNN computes exactly the graph model's maps: the
    same module (``share_backbone``), or the same architecture with equal weights.

    Args:
        model: a `CKNet`.
    """
    if not isinstance(model.knowledge_source, GraphModelKnowledge):
        return False
    visual, graph = model.visual_extractor.backbone, model.knowledge_source.graph_model.backbone
    if visual is graph:
        return True
    if visual.name != graph.name:
        return False
    ours, theirs = visual.state_dict(), graph.state_dict()
    return ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
