"""Training: the knowledge-graph stage and CKNet runs.

- `config`: `TrainingConfig` and the paper's recipes;
- `trainer`: `Trainer`, the paper's recipe with resumable checkpoints and DDP;
- `feature_cache`: `FeatureCache`, a frozen backbone's maps computed once;
- `optimizer`: `adam`, Adam with torch's fused kernel where it runs;
- `pipeline`: `run_pipeline` and `resume_pipeline`, graph stage -> report model ->
  evaluation on any datasets of studies (`StudySplits`);
- `run`: `train` and `resume` on an R2Gen-format folder (the pipeline's data from
  ``annotation.json``);
- `graph_pretrain`: `GraphPretrainer`, the graph stage's training loop;
- `graph_stage`: `GraphStage` settings, `train_graph_stage`, and the `pretrain_graph`
  run (``cknet pretrain-graph``);
- `distributed`: rank and world size under ``torchrun``.
"""

from cknet.training.config import TrainingConfig, apply_overrides, load_recipe
from cknet.training.feature_cache import FeatureCache
from cknet.training.graph_pretrain import EpochRecord, GraphPretrainer, PretrainResult
from cknet.training.graph_stage import GraphRun, GraphStage, pretrain_graph, train_graph_stage
from cknet.training.pipeline import PipelineResult, StudySplits, resume_pipeline, run_pipeline
from cknet.training.run import resume, train
from cknet.training.seeding import seed_everything
from cknet.training.trainer import Trainer, TrainResult

__all__ = [
    "EpochRecord",
    "FeatureCache",
    "GraphPretrainer",
    "GraphRun",
    "GraphStage",
    "PipelineResult",
    "PretrainResult",
    "StudySplits",
    "TrainResult",
    "Trainer",
    "TrainingConfig",
    "apply_overrides",
    "load_recipe",
    "pretrain_graph",
    "resume",
    "resume_pipeline",
    "run_pipeline",
    "seed_everything",
    "train",
    "train_graph_stage",
]
