"""Training: the knowledge-graph stage and CKNet runs."""

from cknet.training.config import TrainingConfig, apply_overrides, load_recipe
from cknet.training.graph_pretrain import EpochRecord, GraphPretrainer, PretrainResult
from cknet.training.run import resume, train
from cknet.training.trainer import FeatureCache, Trainer, TrainResult

__all__ = [
    "EpochRecord",
    "FeatureCache",
    "GraphPretrainer",
    "PretrainResult",
    "TrainResult",
    "Trainer",
    "TrainingConfig",
    "apply_overrides",
    "load_recipe",
    "resume",
    "train",
]
