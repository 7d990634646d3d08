"""`GraphPretrainer`: train the knowledge-graph stage on images and finding labels.

Paper Section III.A and IV.C: the graph is embedded by a GCN that takes the images as
input and ends in a multi-label classifier, trained on the training split only; its
node embeddings then serve, frozen, as CKNet's knowledge matrix. The loss is binary
cross-entropy over the N nodes with per-node positive weights (negatives / positives
in the training labels, capped), so that rare findings are not ignored. After every
epoch the per-node ROC AUC on the validation split is computed; the epoch with the
best mean AUC (over nodes with both classes present) is kept. Finally the static
knowledge matrix (mean node embeddings over the training images) is stored in the
model for ``knowledge_source="static"`` (skipped with ``fit(..., static_knowledge=False)``
for a model that serves ``"image"`` only: one pass over the training split fewer).

`cknet.training.graph_stage` builds a graph model from settings and trains it with this
class (the pipeline's first stage, and ``cknet pretrain-graph``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cknet.devices import resolve_device
from cknet.metrics import roc_auc
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.training.optimizer import adam


def _pair(item: Any) -> tuple[Any, Any]:
    """``(images, labels)`` of a dataset item or batch, a pair or a dict."""
    if isinstance(item, dict):
        return item["images"], item["labels"]
    return item[0], item[1]


@dataclass
class EpochRecord:
    """Metrics of one epoch.

    Attributes:
        epoch: its number, from 1.
        train_loss: mean training loss.
        val_loss: validation loss.
        node_auc: per-node validation ROC AUC (NaN where a node has one class only).
        mean_auc: their mean over the defined ones.
    """

    epoch: int
    train_loss: float
    val_loss: float
    node_auc: list[float]
    mean_auc: float


@dataclass
class PretrainResult:
    """What `GraphPretrainer.fit` returns.

    Attributes:
        history: every epoch's `EpochRecord`.
        best_epoch: the epoch kept.
    """

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0

    @property
    def best(self) -> EpochRecord:
        """The record of the kept epoch."""
        return self.history[self.best_epoch - 1]


class GraphPretrainer:
    """Train a `KnowledgeGraphModel` with multi-label BCE and keep its best epoch.

    Args:
        model: the graph model to train (in place).
        epochs: passes over the training data.
        batch_size: studies per step.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        max_positive_weight: cap of the per-node positive weight negatives / positives.
        device: where to train (default: CUDA when available).
        seed: seeds the initial shuffle order and the data-loader workers.
        num_workers: data-loader worker processes.
        progress: show tqdm progress bars.

    Datasets yield ``(images, labels)`` pairs, or dicts with ``"images"`` and
    ``"labels"`` (as `cknet.data.AnnotationDataset` does): ``(V, 3, H, W)`` float images
    and ``(N,)`` 0/1 labels of the graph's nodes.
    """

    def __init__(
        self,
        model: KnowledgeGraphModel,
        epochs: int = 10,
        batch_size: int = 16,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        max_positive_weight: float = 50.0,
        device: str | torch.device | None = None,
        seed: int = 0,
        num_workers: int = 0,
        progress: bool = False,
    ) -> None:
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_positive_weight = max_positive_weight
        self.device = resolve_device(device)
        self.seed = seed
        self.num_workers = num_workers
        self.progress = progress

    def _loader(self, data: Dataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, generator=generator,
                          num_workers=self.num_workers)

    def _labels(self, data: Dataset) -> np.ndarray:
        if hasattr(data, "label_matrix"):  # e.g. AnnotationDataset: no need to read images
            labels = np.asarray(data.label_matrix(), dtype=float)
        else:
            labels = np.stack([np.asarray(_pair(data[i])[1], dtype=float) for i in range(len(data))])
        if labels.ndim != 2 or labels.shape[1] != self.model.graph.num_nodes:
            raise ValueError(
                f"labels must have one column per graph node ({self.model.graph.num_nodes}), "
                f"got shape {labels.shape}"
            )
        if not np.isin(labels, (0.0, 1.0)).all():
            raise ValueError("labels must be 0 or 1 (binarize uncertain and missing labels first)")
        return labels

    def positive_weights(self, labels: np.ndarray) -> torch.Tensor:
        """Per-node BCE positive weights.

        Args:
            labels: ``(num_studies, N)`` 0/1 training labels.

        Returns:
            ``(N,)`` negatives / positives, clipped to [1, max_positive_weight].
        """
        positives = labels.sum(axis=0)
        negatives = len(labels) - positives
        weights = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
        return torch.tensor(np.clip(weights, 1.0, self.max_positive_weight), dtype=torch.float32)

    @torch.no_grad()
    def evaluate(self, data: Dataset, criterion: nn.Module | None = None) -> tuple[float, np.ndarray]:
        """Loss and per-node AUC on a split.

        Args:
            data: the studies.
            criterion: the loss (None: the loss is NaN).

        Returns:
            The mean loss and the ``(N,)`` per-node ROC AUC.
        """
        self.model.eval()
        logits, labels, losses = [], [], []
        for batch in self._loader(data, shuffle=False):
            images, target = _pair(batch)
            out = self.model(images.to(self.device)).logits
            target = target.to(self.device, torch.float32)
            if criterion is not None:
                losses.append(float(criterion(out, target)) * len(target))
            logits.append(out.float().cpu())
            labels.append(target.cpu())
        scores, truth = torch.cat(logits).numpy(), torch.cat(labels).numpy()
        loss = sum(losses) / len(truth) if losses else float("nan")
        return loss, roc_auc(truth, scores)

    @torch.no_grad()
    def static_knowledge(self, data: Dataset) -> torch.Tensor:
        """Mean node embeddings over a set of studies.

        Args:
            data: the studies.

        Returns:
            ``(N + 1, d_knowledge)``.
        """
        self.model.eval()
        total, count = None, 0
        for batch in self._loader(data, shuffle=False):
            images = _pair(batch)[0]
            embeddings = self.model(images.to(self.device)).node_embeddings.float()
            batch_sum = embeddings.sum(dim=0)
            total = batch_sum if total is None else total + batch_sum
            count += embeddings.shape[0]
        return total / count

    def fit(self, train: Dataset, val: Dataset, static_data: Dataset | None = None,
            static_knowledge: bool = True) -> PretrainResult:
        """Train, keep the epoch with the best mean validation AUC, store the static
        knowledge matrix (over ``static_data``, default ``train``; give the training
        split with the evaluation transform when ``train`` augments).

        Args:
            train: the training studies.
            val: the validation studies.
            static_data: the studies the static knowledge matrix is averaged over.
            static_knowledge: compute and store the static knowledge matrix (one more
                pass over ``static_data``); False when the model only serves
                ``knowledge_source="image"``, which reads each study's own nodes.

        Returns:
            The history and the epoch kept (the model holds its weights).

        Raises:
            ValueError: for labels that are not 0/1 or do not match the graph.
        """
        from tqdm.auto import tqdm

        torch.manual_seed(self.seed)
        model = self.model.to(self.device)
        weights = self.positive_weights(self._labels(train)).to(self.device)
        criterion = nn.BCEWithLogitsLoss(pos_weight=weights)
        optimizer = adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        result = PretrainResult()
        best_state, best_auc = None, -math.inf
        for epoch in range(1, self.epochs + 1):
            model.train()
            total, seen = 0.0, 0
            batches = tqdm(self._loader(train, shuffle=True), desc=f"graph epoch {epoch}/{self.epochs}",
                           disable=not self.progress, leave=False)
            for batch in batches:
                images, target = _pair(batch)
                optimizer.zero_grad()
                loss = criterion(model(images.to(self.device)).logits, target.to(self.device, torch.float32))
                loss.backward()
                optimizer.step()
                total += loss.item() * len(target)
                seen += len(target)
                batches.set_postfix(loss=f"{total / seen:.4f}")
            val_loss, node_auc = self.evaluate(val, criterion)
            defined = node_auc[~np.isnan(node_auc)]
            mean_auc = float(defined.mean()) if len(defined) else float("nan")
            result.history.append(EpochRecord(epoch, total / seen, val_loss, node_auc.tolist(), mean_auc))
            if best_state is None or mean_auc > best_auc:
                best_auc, result.best_epoch = mean_auc, epoch
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        model.load_state_dict(best_state)
        if static_knowledge:
            model.set_static_knowledge(self.static_knowledge(train if static_data is None else static_data))
        return result
