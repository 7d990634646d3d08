"""`StudyFeatures`: what a batch of studies brings to `CKNet.encode` instead of images.

With a frozen visual backbone (``TrainingConfig.cache_features``) the backbone's maps of
a study never change, nor does the frozen graph model's knowledge matrix G of that
study: `cknet.training.FeatureCache` computes both once (`CKNet.study_features`), and
training, validation and the self-critical stage encode from them. Whether G is per
study or shared is decided by the model's knowledge source in `CKNet.encode`, nowhere
else: features carry a per-study G when they have one, and a model with a shared G
ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class StudyFeatures:
    """Cached features of a batch of studies.

    Attributes:
        maps: ``(B, V, C, h, w)`` the visual backbone's maps of each view.
        knowledge_matrix: ``(B, M, d_knowledge)`` each study's knowledge matrix G from
            a per-study source (the frozen graph model), or None.
    """

    maps: torch.Tensor
    knowledge_matrix: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.maps.shape[0]

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> StudyFeatures:
        """The features on ``device`` as ``dtype`` (a cache stores them in float16 on the CPU).

        Args:
            device: where the model is.
            dtype: the model's floating type.

        Returns:
            The moved features.
        """
        knowledge = None if self.knowledge_matrix is None else self.knowledge_matrix.to(device, dtype)
        return StudyFeatures(self.maps.to(device, dtype), knowledge)


def encode_inputs(batch: dict, device: torch.device | str) -> dict[str, Any]:
    """The keyword arguments of `CKNet.encode` (and `CKNet.forward`) for a collated batch:
    ``{"features": StudyFeatures}`` for a batch of cached features, else
    ``{"images": tensor}``, on ``device``.

    Args:
        batch: from `cknet.data.collate_studies`: ``images``, or ``maps`` and
            ``knowledge_matrix``.
        device: where the model is.

    Returns:
        The arguments.
    """
    if "maps" in batch:
        return {"features": StudyFeatures(batch["maps"], batch.get("knowledge_matrix")).to(device)}
    return {"images": batch["images"].to(device)}
