"""cknet: CKNet radiology report generation (Kang et al., BIBM 2023) in PyTorch.

The public names are imported lazily, so ``import cknet`` is fast and loads PyTorch
only when a model class is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cknet.version import __version__

# Each public name and the module that defines it: imported on first use. The names
# below under TYPE_CHECKING are the same list, for type checkers and editors (a test
# keeps the two equal).
_EXPORTS = {
    "CKNetConfig": "cknet.config",
    "ReportTokenizer": "cknet.tokenizers",
    "PretrainedReportTokenizer": "cknet.tokenizers",
    "KnowledgeGraph": "cknet.graph",
    "KnowledgeGraphModel": "cknet.modules.graph_model",
    "CKNet": "cknet.model",
    "CKNetOutput": "cknet.model",
    "StudyFeatures": "cknet.inputs.features",
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
    "Trainer": "cknet.training",
    "TrainingConfig": "cknet.training",
    "evaluate": "cknet.evaluation",
    "register_dataset": "cknet.presets",
    "register_graph": "cknet.graph",
    "register_backbone": "cknet.modules.visual",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from cknet.config import CKNetConfig as CKNetConfig
    from cknet.data.images import load_image as load_image
    from cknet.data.images import prepare_images as prepare_images
    from cknet.evaluation import evaluate as evaluate
    from cknet.generation import GeneratedReport as GeneratedReport
    from cknet.generation import GenerationConfig as GenerationConfig
    from cknet.generation import LogitsProcessor as LogitsProcessor
    from cknet.graph import KnowledgeGraph as KnowledgeGraph
    from cknet.graph import register_graph as register_graph
    from cknet.inputs.features import StudyFeatures as StudyFeatures
    from cknet.kernels import knowledge_query as knowledge_query
    from cknet.knowledge import KnowledgeSource as KnowledgeSource
    from cknet.knowledge import register_knowledge_source as register_knowledge_source
    from cknet.model import CKNet as CKNet
    from cknet.model import CKNetOutput as CKNetOutput
    from cknet.modules.graph_encoder import KnowledgeGraphEncoder as KnowledgeGraphEncoder
    from cknet.modules.graph_model import KnowledgeGraphModel as KnowledgeGraphModel
    from cknet.modules.knowledge_matrix import CrossModalKnowledgeMatrix as CrossModalKnowledgeMatrix
    from cknet.modules.language_model import PretrainedTextEncoder as PretrainedTextEncoder
    from cknet.modules.text import TokenEmbedding as TokenEmbedding
    from cknet.modules.transformer import CKNetTransformer as CKNetTransformer
    from cknet.modules.visual import VisualExtractor as VisualExtractor
    from cknet.modules.visual import register_backbone as register_backbone
    from cknet.presets import register_dataset as register_dataset
    from cknet.tokenizers import PretrainedReportTokenizer as PretrainedReportTokenizer
    from cknet.tokenizers import ReportTokenizer as ReportTokenizer
    from cknet.training import Trainer as Trainer
    from cknet.training import TrainingConfig as TrainingConfig


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cknet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
