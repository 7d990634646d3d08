"""Training: the knowledge-graph stage."""

from cknet.training.graph_pretrain import EpochRecord, GraphPretrainer, PretrainResult

__all__ = ["EpochRecord", "GraphPretrainer", "PretrainResult"]
