"""Training: the knowledge-graph stage and CKNet runs.

- `config`: `TrainingConfig` and the paper's recipes;
- `trainer`: `Trainer`, the paper's recipe with resumable checkpoints and DDP;
- `feature_cache`: `FeatureCache`, a frozen backbone's maps computed once;
- `optimizer`: `adam`, Adam with torch's fused kernel where it runs;
- `run`: `train` and `resume` on an R2Gen-format folder;
- `graph_pretrain`: `GraphPretrainer` and the `pretrain_graph` run;
- `distributed`: rank and world size under ``torchrun``.
"""

from cknet.training.config import TrainingConfig, apply_overrides, load_recipe
from cknet.training.feature_cache import FeatureCache
from cknet.training.graph_pretrain import (
    EpochRecord,
    GraphPretrainer,
    GraphRun,
    PretrainResult,
    pretrain_graph,
)
from cknet.training.run import resume, train
from cknet.training.seeding import seed_everything
from cknet.training.trainer import Trainer, TrainResult

__all__ = [
    "EpochRecord",
    "FeatureCache",
    "GraphPretrainer",
    "GraphRun",
    "PretrainResult",
    "TrainResult",
    "Trainer",
    "TrainingConfig",
    "apply_overrides",
    "load_recipe",
    "pretrain_graph",
    "resume",
    "seed_everything",
    "train",
]
