"""The building blocks of CKNet, each a `torch.nn.Module` usable on its own."""

from cknet.modules.graph_encoder import GraphEncoding, KnowledgeGraphEncoder
from cknet.modules.knowledge_matrix import CrossModalKnowledgeMatrix, KnowledgeProjection
from cknet.modules.text import TokenEmbedding
from cknet.modules.transformer import CKNetTransformer, DecoderCache
from cknet.modules.visual import VisualExtractor, VisualFeatures

__all__ = [
    "CKNetTransformer",
    "CrossModalKnowledgeMatrix",
    "DecoderCache",
    "GraphEncoding",
    "KnowledgeGraphEncoder",
    "KnowledgeProjection",
    "TokenEmbedding",
    "VisualExtractor",
    "VisualFeatures",
]
