"""`CrossModalKnowledgeMatrix`: knowledge distillation and preservation (Section III.C).

One instance serves both modalities: image patch features v_s and report token features
v_t query the same knowledge matrix G (the frozen graph node embeddings) with the same
weights, which is what ties the two modalities together. For an input row v:

    q = v W_q,   k_j = g_j W_k                     (4)
    D_j = q . k_j / sqrt(d)                        (5)  per head, d the head size
    w = normalise(top-gamma of D)                  (6)  "softmax" or "sum" weighting
    g'_j = g_j W_g                                 (7)
    r = sum_{j in top-gamma} w_j g'_j              (8)  heads concatenated
    k = FCN(Concat(v, r))                          (9)

Equation (9) is the ``"concat"`` fusion. Its FCN is a randomly initialised linear map of
both inputs, so at the start of training nothing keeps the patch features v, and a model
can learn to route every finding through G and drop the patches (docs/reproducing.md,
"The knowledge path must add"). Two fusions keep v by construction:

    k = v + FCN(Concat(v, r))                      "residual"
    k = v + a * (r W_r)                            "gated": a, per channel, starts at 0

The gated fusion is the model without knowledge (Base) at initialisation; training opens
the gate as far as r helps.

Equations (5), (6) and (8) run in `cknet.kernels.knowledge_query` (PyTorch or Triton).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from cknet.kernels import BACKENDS, WEIGHTINGS, knowledge_query, knowledge_weights

# How the preserved knowledge r is fused into the input features v: equation (9) and the
# two fusions that keep v (the module docstring).
FUSIONS = ("concat", "residual", "gated")


class KnowledgeProjection(NamedTuple):
    """The knowledge matrix projected once by W_k and W_g, split into heads.

    Attributes:
        keys: ``(B, H, M, d_head)`` or ``(H, M, d_head)`` for a matrix shared by the batch.
        values: same shape as ``keys``.
    """

    keys: torch.Tensor
    values: torch.Tensor

    def drop_studies(self, keep: torch.Tensor) -> KnowledgeProjection:
        """Knowledge dropout: the studies where ``keep`` is False retrieve nothing (r = 0
        for their patches and tokens, since r is a weighted sum of the values, eq. 8).

        Args:
            keep: ``(B,)`` booleans, one per study.

        Returns:
            A per-study projection whose dropped studies have zero values.
        """
        values = self.values if self.values.dim() == 4 else self.values.expand(len(keep), *self.values.shape)
        keys = self.keys if self.keys.dim() == 4 else self.keys.expand(len(keep), *self.keys.shape)
        return KnowledgeProjection(keys, values * keep.to(values.dtype).view(-1, 1, 1, 1))

    def dropout(self, rate: float, batch: int) -> KnowledgeProjection:
        """Knowledge dropout in training: each of the ``batch`` studies is dropped
        (`drop_studies`) with probability ``rate``; 0 returns the projection as is.

        Args:
            rate: the fraction of studies dropped, in [0, 1).
            batch: the number of studies B.
        """
        if rate <= 0:
            return self
        return self.drop_studies(torch.rand(batch, device=self.values.device) >= rate)

    def select(self, rows: torch.Tensor) -> KnowledgeProjection:
        """Rows of a per-study projection (e.g. each study once per beam); a shared one
        is returned as is.

        Args:
            rows: ``(R,)`` batch rows.

        Returns:
            The projection of the R rows.
        """
        if self.keys.dim() == 3:
            return self
        return KnowledgeProjection(self.keys.index_select(0, rows), self.values.index_select(0, rows))


class CrossModalKnowledgeMatrix(nn.Module):
    """Top-gamma multi-head query of a knowledge matrix, fused into the input features.

    Args:
        d_model: size of the input features v and of the output k.
        d_knowledge: size of the knowledge vectors g.
        num_heads: heads of the query; ``d_model`` must be divisible by it.
        gamma: γ, the number of knowledge vectors kept per query and head (top-γ, eq. 6).
        weighting: ``"softmax"`` (over the selected scores, as R2GenCMN) or ``"sum"``
            (equation 6 literally: each selected score over their sum).
        backend: ``"auto"``, ``"torch"`` or ``"triton"``: the path of
            `cknet.kernels.knowledge_query` (the fused Triton kernel on CUDA).
        fusion: ``"concat"`` (equation 9, the paper's), ``"residual"`` or ``"gated"``
            (both keep the input features; see the module docstring).

    Shapes:
        input: features ``(B, L, d_model)``; knowledge ``(B, M, d_knowledge)`` (one matrix
        per study), ``(M, d_knowledge)`` (shared) or a `KnowledgeProjection`.
        output: ``(B, L, d_model)``.
    """

    def __init__(
        self,
        d_model: int = 512,
        d_knowledge: int = 512,
        num_heads: int = 8,
        gamma: int = 8,
        weighting: str = "softmax",
        backend: str = "auto",
        fusion: str = "concat",
    ) -> None:
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be 'softmax' or 'sum', got {weighting!r}")
        if gamma < 1:
            raise ValueError(f"gamma must be at least 1, got {gamma}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.num_heads = num_heads
        self.gamma = gamma
        self.weighting = weighting
        self.backend = backend
        self.fusion = fusion
        self.query_proj = nn.Linear(d_model, d_model, bias=False)  # W_q, eq. (4)
        self.key_proj = nn.Linear(d_knowledge, d_model, bias=False)  # W_k, eq. (4)
        self.value_proj = nn.Linear(d_knowledge, d_model, bias=False)  # W_g, eq. (7)
        if fusion == "gated":
            self.fuse = nn.Linear(d_model, d_model)  # W_r
            self.gate = nn.Parameter(torch.zeros(d_model))  # a, closed at initialisation
        else:
            self.fuse = nn.Linear(2 * d_model, d_model)  # FCN, eq. (9)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., L, d_model)`` -> ``(..., H, L, d_head)``."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(-3, -2)

    def project_knowledge(self, knowledge: torch.Tensor) -> KnowledgeProjection:
        """Apply W_k and W_g to the knowledge matrix once; reuse the result for many queries.

        Args:
            knowledge: ``(B, M, d_knowledge)`` or ``(M, d_knowledge)``.
        """
        if knowledge.dim() not in (2, 3):
            raise ValueError(
                f"knowledge must have shape (B, M, d_knowledge) or (M, d_knowledge), "
                f"got {tuple(knowledge.shape)}"
            )
        return KnowledgeProjection(
            self._split_heads(self.key_proj(knowledge)),  # k_j = g_j W_k, eq. (4)
            self._split_heads(self.value_proj(knowledge)),  # g'_j = g_j W_g, eq. (7)
        )

    def forward(
        self, features: torch.Tensor, knowledge: torch.Tensor | KnowledgeProjection
    ) -> torch.Tensor:
        if features.dim() != 3:
            raise ValueError(f"features must have shape (B, L, d_model), got {tuple(features.shape)}")
        if not isinstance(knowledge, KnowledgeProjection):
            knowledge = self.project_knowledge(knowledge)
        queries = self._split_heads(self.query_proj(features))  # q = v W_q, eq. (4); (B, H, L, d_head)
        preserved = knowledge_query(
            queries, knowledge.keys, knowledge.values, self.gamma, self.weighting, self.backend
        )  # r per head, eqs. (5), (6), (8); (B, H, L, d_head)
        preserved = preserved.transpose(1, 2).flatten(2)  # heads concatenated, (B, L, d_model)
        return self.fused(features, preserved)

    def fused(self, features: torch.Tensor, preserved: torch.Tensor) -> torch.Tensor:
        """k from the input features v and the preserved knowledge r (the fusion's equation).

        Args:
            features: v, ``(B, L, d_model)``.
            preserved: r, ``(B, L, d_model)``, heads concatenated.
        """
        if self.fusion == "gated":
            return features + self.gate * self.fuse(preserved)  # k = v + a * (r W_r)
        fused = self.fuse(torch.cat([features, preserved], dim=-1))  # k = FCN(Concat(v, r)), eq. (9)
        return features + fused if self.fusion == "residual" else fused

    def attention(
        self, features: torch.Tensor, knowledge: torch.Tensor | KnowledgeProjection
    ) -> torch.Tensor:
        """How much each input row draws on each knowledge vector.

        Args:
            features: ``(B, L, d_model)`` patches or tokens.
            knowledge: ``(B, M, d_knowledge)`` or ``(M, d_knowledge)``, or its projection.

        Returns:
            ``(B, H, L, M)``: the top-gamma weights of equation (6), zero outside each
            row's top gamma.
        """
        if not isinstance(knowledge, KnowledgeProjection):
            knowledge = self.project_knowledge(knowledge)
        queries = self._split_heads(self.query_proj(features))  # eq. (4)
        return knowledge_weights(queries, knowledge.keys, self.gamma, self.weighting)  # eqs. (5), (6)
