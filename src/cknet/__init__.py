"""cknet: CKNet radiology report generation (Kang et al., BIBM 2023) in PyTorch.

The public names are imported lazily, so ``import cknet`` is fast and loads PyTorch
only when a model class is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cknet.version import __version__

_EXPORTS = {
    "CKNetConfig": "cknet.config",
    "ReportTokenizer": "cknet.tokenizers",
    "PretrainedReportTokenizer": "cknet.tokenizers",
    "KnowledgeGraph": "cknet.graph",
    "CKNet": "cknet.model",
    "CKNetOutput": "cknet.model",
    "KnowledgeSource": "cknet.knowledge",
    "register_knowledge_source": "cknet.knowledge",
    "GenerationConfig": "cknet.generation",
    "GeneratedReport": "cknet.generation",
    "LogitsProcessor": "cknet.generation",
    "VisualExtractor": "cknet.modules.visual",
    "KnowledgeGraphEncoder": "cknet.modules.graph_encoder",
    "CrossModalKnowledgeMatrix": "cknet.modules.knowledge_matrix",
    "CKNetTransformer": "cknet.modules.transformer",
    "TokenEmbedding": "cknet.modules.text",
    "PretrainedTextEncoder": "cknet.modules.language_model",
    "knowledge_query": "cknet.kernels",
    "load_image": "cknet.data.images",
    "prepare_images": "cknet.data.images",
}

__all__ = [
    "CKNet",
    "CKNetConfig",
    "CKNetOutput",
    "CKNetTransformer",
    "CrossModalKnowledgeMatrix",
    "GeneratedReport",
    "GenerationConfig",
    "KnowledgeGraph",
    "KnowledgeGraphEncoder",
    "KnowledgeSource",
    "LogitsProcessor",
    "PretrainedReportTokenizer",
    "PretrainedTextEncoder",
    "ReportTokenizer",
    "TokenEmbedding",
    "VisualExtractor",
    "__version__",
    "knowledge_query",
    "load_image",
    "prepare_images",
    "register_knowledge_source",
]

if TYPE_CHECKING:
    from cknet.config import CKNetConfig
    from cknet.data.images import load_image, prepare_images
    from cknet.generation import GeneratedReport, GenerationConfig, LogitsProcessor
    from cknet.graph import KnowledgeGraph
    from cknet.kernels import knowledge_query
    from cknet.knowledge import KnowledgeSource, register_knowledge_source
    from cknet.model import CKNet, CKNetOutput
    from cknet.modules.graph_encoder import KnowledgeGraphEncoder
    from cknet.modules.knowledge_matrix import CrossModalKnowledgeMatrix
    from cknet.modules.language_model import PretrainedTextEncoder
    from cknet.modules.text import TokenEmbedding
    from cknet.modules.transformer import CKNetTransformer
    from cknet.modules.visual import VisualExtractor
    from cknet.tokenizers import PretrainedReportTokenizer, ReportTokenizer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cknet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
