"""Compute kernels: the top-k knowledge query."""

from cknet.kernels.topk_query import knowledge_query

__all__ = ["knowledge_query"]
