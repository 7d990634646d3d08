"""Knowledge sources: what gives CKNet its knowledge matrix G for a batch of studies.

The paper (Section III.A) embeds a knowledge graph with a GCN that reads the image, and
uses the node embeddings G = {g_1, ..., g_N}, frozen, as the matrix that image patches
and report tokens query (equations 4-9). A `KnowledgeSource` is the module that hands
G to `CKNet`; the config's ``knowledge_source`` names one:

| name | G | paper |
| --- | --- | --- |
| ``"image"`` | node embeddings of the frozen graph model, per study, ``(B, M, d)`` | CKNet |
| ``"static"`` | their mean over the training split, one ``(M, d)`` buffer | CKNet, read literally |
| ``"random"`` | a trainable random ``(M, d)`` matrix | +MEN ablation |
| ``"none"`` | no knowledge matrix (`create_knowledge_source` returns None) | Base ablation |

M is N + 1: the graph's N finding nodes and the global node (row 0).

Sources are a registry, as timm's models are: `register_knowledge_source` makes a
subclass known by its ``name``, and `create_knowledge_source` builds the one a config
names through the class's `KnowledgeSource.create`, built-in or yours alike. Your own
source (a matrix built from a text knowledge base, a different graph model, ...) is a
registered subclass: name it in the config, or pass an instance as
``CKNet(..., knowledge_source=...)``; `CKNet.from_pretrained` rebuilds it by name (see
``docs/extending.md``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from cknet.config import KNOWLEDGE_SOURCES, CKNetConfig
from cknet.modules.graph_model import KnowledgeGraphModel

if TYPE_CHECKING:
    from cknet.graph import KnowledgeGraph

logger = logging.getLogger(__name__)

class KnowledgeSource(nn.Module, ABC):
    """Gives the knowledge matrix G.

    Subclasses set ``name`` (the value of ``CKNetConfig.knowledge_source`` they stand
    for) and ``per_study``, and implement `forward`. G is ``(B, M, d)`` for a source
    that reads each study's images (``per_study = True``) and ``(M, d)`` for one shared
    by every study, which is then called without images.

    Attributes:
        num_vectors: M, the rows of G (what ``CKNetConfig.gamma`` selects among).
        dim: d, the size of each knowledge vector (``CKNetConfig.d_knowledge``).
    """

    name: ClassVar[str]
    per_study: ClassVar[bool] = False
    uses_graph_model: ClassVar[bool] = False  # built from CKNet(..., graph_model=...)

    def __init__(self, num_vectors: int, dim: int) -> None:
        super().__init__()
        if num_vectors < 1 or dim < 1:
            raise ValueError(f"a knowledge matrix needs rows and columns, got {num_vectors} x {dim}")
        self.num_vectors = int(num_vectors)
        self.dim = int(dim)

    @abstractmethod
    def forward(self, images: torch.Tensor | None = None) -> torch.Tensor:
        """G for a batch.

        Args:
            images: ``(B, V, 3, S, S)`` preprocessed images; sources with ``per_study =
                False`` ignore them and may be called without.

        Returns:
            ``(B, M, d)`` or, shared by the batch, ``(M, d)``.
        """

    @classmethod
    def for_loading(cls, config: CKNetConfig, graph: KnowledgeGraph,
                    shapes: Mapping[str, tuple[int, ...]]) -> KnowledgeSource:
        """An instance of the right shape whose tensors `CKNet.from_pretrained` then
        replaces with the saved ones (nothing is downloaded or trained here).

        Args:
            config: the saved model's config.
            graph: the saved model's graph.
            shapes: the saved shapes of this source's own tensors, by name (e.g.
                ``{"matrix": (41, 512)}``).

        Returns:
            The source (by default ``cls(N + 1, d_knowledge)``).
        """
        return cls(graph.num_nodes + 1, config.d_knowledge)

    @classmethod
    def create(cls, config: CKNetConfig, graph: KnowledgeGraph,
               graph_model: KnowledgeGraphModel | None) -> KnowledgeSource:
        """The source for a new model whose config names this class
        (`create_knowledge_source` calls it). Override it to build yours from the config;
        by default it is `for_loading` with no saved shapes.

        Args:
            config: the new model's config.
            graph: its knowledge graph.
            graph_model: the pretrained graph stage, for a source with
                ``uses_graph_model`` (never None for such a source: without one,
                `create_knowledge_source` builds it with `for_loading`); else None.

        Returns:
            The source.
        """
        return cls.for_loading(config, graph, {})


class GraphModelKnowledge(KnowledgeSource):
    """``"image"``: the frozen, pretrained graph model's node embeddings of each study
    (Section III.A). The graph model stays in evaluation mode and gets no gradient.

    Args:
        graph_model: the pretrained `KnowledgeGraphModel`.
    """

    name = "image"
    per_study = True
    uses_graph_model = True

    def __init__(self, graph_model: KnowledgeGraphModel) -> None:
        super().__init__(graph_model.graph.num_nodes + 1, graph_model.d_knowledge)
        self.graph_model = graph_model.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> GraphModelKnowledge:
        """Keep the frozen graph model in evaluation mode whatever ``mode``.

        Args:
            mode: ignored for the graph model.

        Returns:
            The source.
        """
        super().train(mode)
        self.graph_model.eval()
        return self

    def forward(self, images: torch.Tensor | None = None) -> torch.Tensor:
        if images is None:
            raise ValueError("the 'image' knowledge source reads each study's images: pass them")
        with torch.no_grad():
            return self.graph_model(images).node_embeddings

    def from_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """G from backbone maps already computed by the graph model's own CNN.

        Args:
            maps: ``(B, V, C, h, w)``.

        Returns:
            ``(B, M, d)``.
        """
        with torch.no_grad():
            return self.graph_model.encoder(maps).node_embeddings

    @classmethod
    def for_loading(cls, config: CKNetConfig, graph: KnowledgeGraph,
                    shapes: Mapping[str, tuple[int, ...]]) -> GraphModelKnowledge:
        """An untrained graph model of the config's architecture (see `KnowledgeSource.for_loading`).

        Args:
            config: the saved model's config.
            graph: the saved model's graph.
            shapes: unused (the architecture follows from the config).
        """
        return cls(KnowledgeGraphModel(graph, config.graph_backbone or config.backbone, config.d_knowledge,
                                       config.num_gcn_layers))

    @classmethod
    def create(cls, config: CKNetConfig, graph: KnowledgeGraph,
               graph_model: KnowledgeGraphModel | None) -> GraphModelKnowledge:
        """The frozen graph model's source (see `KnowledgeSource.create`).

        Args:
            config: the new model's config.
            graph: its knowledge graph.
            graph_model: the pretrained graph stage.
        """
        return cls(graph_model)


class StaticKnowledge(KnowledgeSource):
    """``"static"``: one frozen matrix for the whole dataset, e.g. the graph model's mean
    node embeddings over the training split (the paper's "shared knowledge matrix" read
    literally). Saved with the model as a buffer.

    Args:
        matrix: ``(M, d)``.
    """

    name = "static"
    uses_graph_model = True

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.dim() != 2:
            raise ValueError(f"a static knowledge matrix is (M, d), got shape {tuple(matrix.shape)}")
        super().__init__(*matrix.shape)
        self.register_buffer("matrix", matrix.detach().clone())

    def forward(self, images: torch.Tensor | None = None) -> torch.Tensor:
        return self.matrix

    @classmethod
    def from_graph_model(cls, graph_model: KnowledgeGraphModel) -> StaticKnowledge:
        """The graph model's stored mean node embeddings.

        Args:
            graph_model: a `KnowledgeGraphModel` whose static knowledge was computed
                (`GraphPretrainer` does it).

        Returns:
            The source.

        Raises:
            ValueError: if the graph model has no static knowledge matrix.
        """
        if not graph_model.has_static_knowledge:
            raise ValueError(
                "the graph_model has no static knowledge matrix: compute it with GraphPretrainer "
                "(or KnowledgeGraphModel.set_static_knowledge)"
            )
        return cls(graph_model.static_knowledge)

    @classmethod
    def for_loading(cls, config: CKNetConfig, graph: KnowledgeGraph,
                    shapes: Mapping[str, tuple[int, ...]]) -> StaticKnowledge:
        """A zero matrix of the saved one's shape (see `KnowledgeSource.for_loading`).

        Args:
            config: the saved model's config.
            graph: the saved model's graph.
            shapes: the saved shapes; ``"matrix"`` gives the matrix's.
        """
        return cls(torch.zeros(shapes.get("matrix", (graph.num_nodes + 1, config.d_knowledge))))

    @classmethod
    def create(cls, config: CKNetConfig, graph: KnowledgeGraph,
               graph_model: KnowledgeGraphModel | None) -> StaticKnowledge:
        """The graph model's mean node embeddings (see `KnowledgeSource.create`).

        Args:
            config: the new model's config.
            graph: its knowledge graph.
            graph_model: the pretrained graph stage.
        """
        return cls.from_graph_model(graph_model)


class RandomKnowledge(KnowledgeSource):
    """``"random"``: a trainable matrix of G's shape, randomly initialised, without
    knowledge: the paper's +MEN ablation (Section IV.F).

    Args:
        num_vectors: M.
        dim: d.
    """

    name = "random"

    def __init__(self, num_vectors: int, dim: int) -> None:
        super().__init__(num_vectors, dim)
        self.matrix = nn.Parameter(torch.randn(num_vectors, dim) * dim**-0.5)

    def forward(self, images: torch.Tensor | None = None) -> torch.Tensor:
        return self.matrix


KNOWLEDGE_SOURCES.register(GraphModelKnowledge.name, GraphModelKnowledge, built_in=True)
KNOWLEDGE_SOURCES.register(StaticKnowledge.name, StaticKnowledge, built_in=True)
KNOWLEDGE_SOURCES.register(RandomKnowledge.name, RandomKnowledge, built_in=True)


def register_knowledge_source(source: type[KnowledgeSource]) -> type[KnowledgeSource]:
    """Make a `KnowledgeSource` subclass known by its ``name`` (usable as a decorator), so
    that ``CKNetConfig(knowledge_source=name)`` builds it and a model saved with it loads
    with `CKNet.from_pretrained`. Building a model with an instance does not register its
    class: register it where it is defined, so that every process that imports it can
    load the models saved with it.

    Args:
        source: the class.

    Returns:
        The class.

    Raises:
        ValueError: for a class without a ``name``, or a built-in source's name.
    """
    name = getattr(source, "name", None)
    if not isinstance(name, str) or not name or name == "none":
        raise ValueError(f"{source.__name__} needs a class attribute `name` (not 'none') to be registered")
    return KNOWLEDGE_SOURCES.register(name, source)


def create_knowledge_source(
    config: CKNetConfig, graph: KnowledgeGraph, graph_model: KnowledgeGraphModel | None
) -> KnowledgeSource | None:
    """The source that ``config.knowledge_source`` names, built by its registered class's
    `KnowledgeSource.create` (the built-in ones and those of `register_knowledge_source`).

    Args:
        config: the model config.
        graph: the knowledge graph (its N + 1 rows size the ``"random"`` matrix).
        graph_model: the pretrained graph stage, for ``"image"`` and ``"static"``.

    Returns:
        The source, or None for ``"none"``.

    Without a graph model the ``"image"`` and ``"static"`` sources start from an untrained
    graph stage (a warning says so): only for tests, or before loading saved weights.

    Raises:
        ValueError: for a name no class is registered under.
    """
    name = config.knowledge_source
    if name == "none":
        return None
    if name not in KNOWLEDGE_SOURCES:
        raise ValueError(
            f"config.knowledge_source {name!r} is not registered "
            f"({', '.join(['none', *KNOWLEDGE_SOURCES])}): "
            f"register your KnowledgeSource class with cknet.register_knowledge_source, or pass an "
            f"instance as CKNet(..., knowledge_source=...)"
        )
    source = KNOWLEDGE_SOURCES[name]
    if source.uses_graph_model and graph_model is None:  # an untrained graph stage, for tests or loading
        _warn_untrained()
        return source.for_loading(config, graph, {})
    return source.create(config, graph, graph_model)


def _warn_untrained() -> None:
    logger.warning(
        "CKNet is built without a pretrained graph_model: its knowledge matrix comes from an "
        "untrained knowledge-graph stage. Pretrain one with cknet.training.GraphPretrainer (or "
        "`cknet pretrain-graph`) and pass it as graph_model."
    )
