"""Building a `CKNet`'s parts and checking that they fit together: the config (its
vocabulary size filled in), the graph, the graph model, the knowledge source and the text
encoder. Each error names the part at fault and what was expected."""

from __future__ import annotations

import copy
import dataclasses
import os

from cknet.config import CKNetConfig
from cknet.graph import KnowledgeGraph
from cknet.inputs.checks import check_model_parts
from cknet.knowledge import (
    KNOWLEDGE_SOURCES,
    GraphModelKnowledge,
    KnowledgeSource,
    create_knowledge_source,
)
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.modules.language_model import PretrainedTextEncoder
from cknet.modules.text import TokenEmbedding
from cknet.tokenizers import ReportTokenizerBase


def checked_parts(
    config: CKNetConfig, tokenizer: ReportTokenizerBase, graph: KnowledgeGraph | None,
    graph_model: KnowledgeGraphModel | str | os.PathLike[str] | None, knowledge: KnowledgeSource | None,
) -> tuple[CKNetConfig, KnowledgeGraph, KnowledgeSource | None]:
    """The config (vocabulary size filled in, the source named), the graph and the
    knowledge source of a new CKNet, each checked against the others."""
    if not isinstance(config, CKNetConfig):
        raise ValueError(f"config must be a CKNetConfig, got {type(config).__name__}")
    config.validate()
    if config.vocab_size == 0:
        config = dataclasses.replace(config, vocab_size=tokenizer.vocab_size)
    check_model_parts(config, tokenizer)
    if isinstance(graph_model, (str, os.PathLike)):
        graph_model = KnowledgeGraphModel.from_pretrained(graph_model)
    if graph_model is not None:
        config, graph = _check_graph_model(graph_model, config, graph)
    graph = graph if graph is not None else KnowledgeGraph.openi40()
    if knowledge is None:
        knowledge = create_knowledge_source(config, graph, graph_model)
    else:
        config = _check_own_knowledge(knowledge, config, graph_model)
    if config.share_backbone and not (isinstance(knowledge, GraphModelKnowledge)
                                      and knowledge.graph_model.backbone.name == config.backbone):
        raise ValueError(f"config.share_backbone uses the graph model's CNN as the visual extractor's: it "
                         f"needs the 'image' knowledge source with a {config.backbone!r} graph model")
    if knowledge is not None and not 1 <= config.gamma <= knowledge.num_vectors:
        raise ValueError(f"config.gamma ({config.gamma}) must be in [1, {knowledge.num_vectors}], the "
                         f"knowledge vectors of the {knowledge.name!r} source")
    return config, graph, knowledge


def _check_graph_model(graph_model: KnowledgeGraphModel, config: CKNetConfig,
                       graph: KnowledgeGraph | None) -> tuple[CKNetConfig, KnowledgeGraph]:
    """The config recording the graph model's CNN and GCN depth (so that a saved model
    rebuilds it) and its graph, after checking that it fits the config and ``graph``."""
    backbone = graph_model.config.backbone
    source = KNOWLEDGE_SOURCES.get(config.knowledge_source)
    if source is None or not source.uses_graph_model:
        users = [name for name, cls in KNOWLEDGE_SOURCES.items() if cls.uses_graph_model]
        raise ValueError(f"a graph_model is used by the knowledge sources {users}, not "
                         f"{config.knowledge_source!r}")
    if graph is not None and graph != graph_model.graph:
        raise ValueError("graph differs from the graph the graph_model was trained on")
    if graph_model.d_knowledge != config.d_knowledge:
        raise ValueError(f"the graph_model's node embeddings have size {graph_model.d_knowledge} but "
                         f"config.d_knowledge is {config.d_knowledge}")
    if config.graph_backbone not in (None, backbone):
        raise ValueError(f"config.graph_backbone is {config.graph_backbone!r} but the graph_model's CNN is "
                         f"{backbone!r}; leave graph_backbone unset to take the graph model's")
    return dataclasses.replace(config, graph_backbone=None if backbone == config.backbone else backbone,
                               num_gcn_layers=graph_model.config.num_gcn_layers), graph_model.graph


def _check_own_knowledge(knowledge: KnowledgeSource, config: CKNetConfig,
                         graph_model: KnowledgeGraphModel | None) -> CKNetConfig:
    """The config naming a user's knowledge source, after checking that it fits."""
    if not isinstance(knowledge, KnowledgeSource):
        raise ValueError(f"knowledge must be a cknet.KnowledgeSource, got {type(knowledge).__name__}")
    if graph_model is not None:
        raise ValueError("pass either knowledge_source= (your own source) or graph_model=, not both")
    if knowledge.dim != config.d_knowledge:
        raise ValueError(f"the knowledge source's vectors have size {knowledge.dim} but config.d_knowledge "
                         f"is {config.d_knowledge}")
    # The config names the source; its class need not be registered to build the model
    # (only to load it again: saving warns when it is not), so the name is not validated.
    named = copy.copy(config)
    named.knowledge_source = knowledge.name
    return named


def text_encoder_for(config: CKNetConfig, tokenizer: ReportTokenizerBase,
                  encoder: PretrainedTextEncoder | None) -> TokenEmbedding | PretrainedTextEncoder:
    """The module giving v_t: a learned embedding, or a pretrained language model checked
    against the tokenizer and config."""
    if not config.pretrained_text_encoder:
        if encoder is not None:
            raise ValueError("a text_encoder module was given but config.text_encoder is 'embedding'")
        return TokenEmbedding(config.vocab_size, config.d_model, config.dropout, tokenizer.pad_id)
    if encoder is None:
        encoder = PretrainedTextEncoder.from_pretrained(config.text_encoder, config.d_model, config.dropout,
                                                        config.train_text_encoder)
    rows = encoder.language_model.config.vocab_size
    if tokenizer.vocab_size > rows:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids but the text encoder embeds {rows}: "
                         f"load both from the same language model ({config.text_encoder!r})")
    if encoder.max_positions and config.max_length > encoder.max_positions:
        raise ValueError(f"config.max_length ({config.max_length}) exceeds the text encoder's "
                         f"{encoder.max_positions} positions")
    if encoder.projection.out_features != config.d_model:
        raise ValueError(f"the text encoder projects to {encoder.projection.out_features} features but "
                         f"config.d_model is {config.d_model}")
    return encoder
