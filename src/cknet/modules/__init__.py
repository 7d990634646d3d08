"""The building blocks of CKNet, each a `torch.nn.Module` usable on its own.

- `visual`: `VisualExtractor`, patch features v_s (equation 1);
- `graph_encoder`, `graph_model`: the knowledge-graph stage (Section III.A);
- `knowledge_matrix`: `CrossModalKnowledgeMatrix`, equations (4)-(9);
- `text`, `language_model`: the textual features v_t (Section III.B);
- `attention`, `cache`, `transformer`: the encoder-decoder, equations (2), (3), (10), (11).
"""

from cknet.modules.cache import DecoderCache
from cknet.modules.graph_encoder import GraphEncoding, KnowledgeGraphEncoder
from cknet.modules.knowledge_matrix import CrossModalKnowledgeMatrix, KnowledgeProjection
from cknet.modules.text import TokenEmbedding
from cknet.modules.transformer import CKNetTransformer
from cknet.modules.visual import VisualExtractor

__all__ = [
    "CKNetTransformer",
    "CrossModalKnowledgeMatrix",
    "DecoderCache",
    "GraphEncoding",
    "KnowledgeGraphEncoder",
    "KnowledgeProjection",
    "TokenEmbedding",
    "VisualExtractor",
]
