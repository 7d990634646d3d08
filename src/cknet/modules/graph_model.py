"""`KnowledgeGraphModel`: the knowledge-graph stage (paper Section III.A), images in,
node embeddings and finding logits out.

A `Backbone` (its own CNN) gives each view's feature map; the `KnowledgeGraphEncoder`
turns the maps into node embeddings (summed over views) and per-node logits. It is
trained by `cknet.training.GraphPretrainer` on the training split's images and finding
labels, then frozen: CKNet queries its node embeddings per study
(``knowledge_source="image"``) or their mean over the training split, stored here as
``static_knowledge`` (``knowledge_source="static"``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cknet.graph import KnowledgeGraph
from cknet.modules.graph_encoder import GraphEncoding, KnowledgeGraphEncoder
from cknet.modules.visual import Backbone
from cknet.persistence.module_folder import read_json, read_module, save_module
from cknet.persistence.weights import load_state, load_weights

CONFIG_FILE = "graph_model.json"
WEIGHTS_FILE = "graph_model.safetensors"
GRAPH_FILE = "graph.json"
HISTORY_FILE = "history.json"


@dataclass(frozen=True)
class GraphModelConfig:
    """The architecture of a `KnowledgeGraphModel`, saved as ``graph_model.json``; the same
    names as `CKNetConfig` (``graph_backbone`` there is ``backbone`` here), so that a
    setting has one name wherever it is set.

    Attributes:
        backbone: the CNN (a torchvision model name or a registered backbone).
        d_knowledge: size of the node embeddings.
        num_gcn_layers: residual GCN layers.
    """

    backbone: str = "densenet121"
    d_knowledge: int = 512
    num_gcn_layers: int = 2

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphModelConfig:
        """A config from `to_dict`'s form.

        Args:
            data: exactly the fields.

        Returns:
            The config.

        Raises:
            ValueError: for missing or unknown keys (named).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        if set(data) != known:
            raise ValueError(f"a graph-model config holds {sorted(known)}, got {sorted(data)}")
        return cls(**data)


class KnowledgeGraphModel(nn.Module):
    """Backbone + GCN knowledge-graph encoder.

    Args:
        graph: the knowledge graph (N finding nodes).
        backbone: the CNN: a torchvision model name or a registered backbone.
        d_knowledge: size of the node embeddings.
        num_gcn_layers: residual GCN layers.
        backbone_weights: initial CNN weights (``None``, ``"imagenet"`` or a path).

    Shapes:
        input: images ``(B, V, 3, H, W)``.
        output: `GraphEncoding` with node embeddings ``(B, N + 1, d_knowledge)`` (row 0 the
        global node) and logits ``(B, N)``.

    Attributes:
        config: the `GraphModelConfig` (backbone, d_knowledge, num_gcn_layers).
        static_knowledge: ``(N + 1, d_knowledge)`` mean node embeddings over a training
            split, once `set_static_knowledge` (or `GraphPretrainer`) has computed them.
    """

    def __init__(
        self,
        graph: KnowledgeGraph,
        backbone: str = GraphModelConfig.backbone,
        d_knowledge: int = GraphModelConfig.d_knowledge,
        num_gcn_layers: int = GraphModelConfig.num_gcn_layers,
        backbone_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.graph = graph
        self.config = GraphModelConfig(backbone, d_knowledge, num_gcn_layers)
        self.backbone = Backbone(backbone, backbone_weights)
        self.encoder = KnowledgeGraphEncoder(graph, self.backbone.num_channels, d_knowledge, num_gcn_layers)
        self.register_buffer("static_knowledge", torch.zeros(graph.num_nodes + 1, d_knowledge))
        self.has_static_knowledge = False

    @property
    def d_knowledge(self) -> int:
        """Size of the node embeddings."""
        return self.config.d_knowledge

    def forward(self, images: torch.Tensor) -> GraphEncoding:
        return self.encoder(self.backbone(images))

    def set_static_knowledge(self, matrix: torch.Tensor) -> None:
        """Store the dataset-level knowledge matrix.

        Args:
            matrix: ``(N + 1, d_knowledge)``, e.g. mean node embeddings over a training split.

        Raises:
            ValueError: for another shape.
        """
        if tuple(matrix.shape) != tuple(self.static_knowledge.shape):
            raise ValueError(
                f"static knowledge must have shape {tuple(self.static_knowledge.shape)}, "
                f"got {tuple(matrix.shape)}"
            )
        self.static_knowledge.copy_(matrix.detach())
        self.has_static_knowledge = True

    def save_pretrained(self, directory: str | os.PathLike[str], overwrite: bool = False,
                        history: dict[str, Any] | None = None) -> None:
        """Save as one folder (kind ``"graph_model"``, written whole by `cknet.persistence.module_folder`):
        ``graph_model.json``, ``graph_model.safetensors``, ``graph.json`` and, when
        given, ``history.json``.

        Args:
            directory: the folder to write (created if needed).
            overwrite: replace a graph model saved there.
            history: how it was trained (epochs, validation AUCs), kept in ``history.json``.

        Raises:
            FileExistsError: if the folder holds a graph model and ``overwrite`` is False,
                or holds anything else.
        """
        config = {"type": "KnowledgeGraphModel", **self.config.to_dict(),
                  "has_static_knowledge": self.has_static_knowledge}

        json_files = {CONFIG_FILE: config, **({} if history is None else {HISTORY_FILE: history})}
        save_module(directory, "graph_model", self, WEIGHTS_FILE, json_files,
                    text_files={GRAPH_FILE: self.graph.to_json_string()}, overwrite=overwrite)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu"
    ) -> KnowledgeGraphModel:
        """Load a graph model written by `save_pretrained` (strict; no pickle).

        Args:
            directory: the folder `save_pretrained` wrote.
            map_location: the device to load the weights to.

        Returns:
            The graph model.

        Raises:
            FileNotFoundError: for a missing folder or file.
            ValueError: if the files do not describe a graph model or do not fit
                together (the message names the file).
        """
        folder = Path(directory)
        if not folder.is_dir():
            raise FileNotFoundError(f"no such graph-model folder: {folder}")
        required = (CONFIG_FILE, WEIGHTS_FILE, GRAPH_FILE)
        return read_module(folder, "graph_model", "saved KnowledgeGraphModel", required,
                           lambda f: _read(cls, f, map_location))


def _read(cls: type[KnowledgeGraphModel], folder: Path,
          map_location: str | torch.device) -> KnowledgeGraphModel:
    path = folder / CONFIG_FILE
    config = read_json(path, "a graph-model config")
    if not isinstance(config, dict) or config.pop("type", None) != "KnowledgeGraphModel":
        raise ValueError(f"{path} does not describe a KnowledgeGraphModel")
    has_static = bool(config.pop("has_static_knowledge", False))
    try:
        settings = GraphModelConfig.from_dict(config)
        model = cls(KnowledgeGraph.from_json(folder / GRAPH_FILE), **settings.to_dict())
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None
    load_state(model, load_weights(folder / WEIGHTS_FILE, map_location), folder / WEIGHTS_FILE)
    model.has_static_knowledge = has_static
    return model.to(map_location)
