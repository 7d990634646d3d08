"""cknet: CKNet radiology report generation (Kang et al., BIBM 2023) in PyTorch.

The public names are imported lazily, so ``import cknet`` is fast and loads PyTorch
only when a model class is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "CKNetConfig": "cknet.config",
    "ReportTokenizer": "cknet.tokenizer",
    "PretrainedReportTokenizer": "cknet.pretrained_tokenizer",
    "KnowledgeGraph": "cknet.graph",
    "CKNet": "cknet.model",
    "CKNetOutput": "cknet.model",
    "VisualExtractor": "cknet.modules.visual",
    "KnowledgeGraphEncoder": "cknet.modules.graph_encoder",
    "CrossModalKnowledgeMatrix": "cknet.modules.knowledge_matrix",
    "CKNetTransformer": "cknet.modules.transformer",
    "TokenEmbedding": "cknet.modules.text",
    "PretrainedTextEncoder": "cknet.modules.language_model",
    "knowledge_query": "cknet.kernels.topk_query",
    "load_image": "cknet.data.images",
    "prepare_images": "cknet.data.images",
}

__all__ = [
    "CKNet",
    "CKNetConfig",
    "CKNetOutput",
    "CKNetTransformer",
    "CrossModalKnowledgeMatrix",
    "KnowledgeGraph",
    "KnowledgeGraphEncoder",
    "PretrainedReportTokenizer",
    "PretrainedTextEncoder",
    "ReportTokenizer",
    "TokenEmbedding",
    "VisualExtractor",
    "__version__",
    "knowledge_query",
    "load_image",
    "prepare_images",
]

if TYPE_CHECKING:
    from cknet.config import CKNetConfig
    from cknet.data.images import load_image, prepare_images
    from cknet.graph import KnowledgeGraph
    from cknet.kernels.topk_query import knowledge_query
    from cknet.model import CKNet, CKNetOutput
    from cknet.modules.graph_encoder import KnowledgeGraphEncoder
    from cknet.modules.knowledge_matrix import CrossModalKnowledgeMatrix
    from cknet.modules.language_model import PretrainedTextEncoder
    from cknet.modules.text import TokenEmbedding
    from cknet.modules.transformer import CKNetTransformer
    from cknet.modules.visual import VisualExtractor
    from cknet.pretrained_tokenizer import PretrainedReportTokenizer
    from cknet.tokenizer import ReportTokenizer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cknet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
