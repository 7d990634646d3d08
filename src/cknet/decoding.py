"""What the decoder needs from the images (`Encoding`), and what incremental decoding
keeps between steps (`DecodingState`).

`CKNet.encode` computes, once per study, the encoder memory over the knowledge-fused
patches (equation 10) and the knowledge matrix projected by W_k and W_g (equations 4
and 7). Generation decodes R rows (beams or samples of the studies): a
`DecodingState` holds the rows' knowledge and the decoder's key/value cache, and keeps
the two in step when rows finish (`select`) or beams move (`reorder`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from cknet.modules.cache import DecoderCache
from cknet.modules.knowledge_matrix import KnowledgeProjection


class Encoding(NamedTuple):
    """A batch of studies, encoded.

    Attributes:
        memory: ``(B, S, d_model)`` encoder output over the knowledge-fused patches
            (None once a primed `DecoderCache` holds its projections).
        projected_knowledge: the knowledge matrix G projected by W_k and W_g (per study
            or shared), or None without a knowledge matrix.
    """

    memory: torch.Tensor | None
    projected_knowledge: KnowledgeProjection | None

    def select(self, rows: torch.Tensor, with_memory: bool = True) -> Encoding:
        """Rows of the batch, e.g. each study repeated once per beam.

        Args:
            rows: ``(R,)`` row indices into the batch.
            with_memory: keep the memory rows too (False when a primed cache holds it).

        Returns:
            The encoding of the R rows.
        """
        knowledge = None if self.projected_knowledge is None else self.projected_knowledge.select(rows)
        memory = self.memory.index_select(0, rows) if with_memory and self.memory is not None else None
        return Encoding(memory, knowledge)


class DecodingState:
    """The rows being decoded: their knowledge and the decoder's cache.

    Args:
        encoding: the rows' encoding (its memory lives in ``cache``).
        cache: the decoder's key/value cache for the same rows.
    """

    def __init__(self, encoding: Encoding, cache: DecoderCache) -> None:
        self.encoding = encoding
        self.cache = cache

    @property
    def device(self) -> torch.device:
        """Where the cached tensors live."""
        return self.cache.memory_keys[0].device

    def select(self, rows: torch.Tensor) -> None:
        """Keep (and order) rows, e.g. drop finished reports.

        Args:
            rows: ``(R',)`` indices of the rows kept; with beams, whole groups in order.
        """
        self.encoding = self.encoding.select(rows, with_memory=False)
        self.cache.select(rows)

    def reorder(self, index: torch.Tensor) -> None:
        """Let row r continue the history of row ``index[r]`` (beams within a study).

        Args:
            index: ``(R,)``.
        """
        self.cache.reorder_tokens(index)
