"""Training runs from an R2Gen-format folder: `train` starts one, `resume` continues it.

A run folder holds ``run.json`` (both configs and where the data is), ``tokenizer.json``
(built once, from the train split; with a pretrained text encoder, the language model's
tokenizer, its files in ``text_encoder/``) and ``graph.json``, ``checkpoint.pt`` (every epoch),
``metrics.json`` / ``metrics.csv`` (one row per epoch), ``best/`` (the model with the
best validation BLEU-4, loadable with `CKNet.from_pretrained`) and, at the end,
``test_metrics.json`` and ``test_predictions.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cknet.config import CKNetConfig
from cknet.data.annotation import AnnotationDataset, read_annotation
from cknet.graph import KnowledgeGraph
from cknet.io import write_text_atomic
from cknet.model import CKNet
from cknet.pretrained_tokenizer import PretrainedReportTokenizer
from cknet.tokenizer import ReportTokenizer, ReportTokenizerBase, load_tokenizer
from cknet.training.config import TrainingConfig
from cknet.training.trainer import CHECKPOINT, Trainer, TrainResult, _rank, seed_everything


def _build(run_dir: Path, settings: dict[str, Any], device: str | None, progress: bool) -> Trainer:
    model_config = CKNetConfig.from_dict(settings["model"])
    training = TrainingConfig.from_dict(settings["training"])
    data = settings["data"]
    seed_everything(training.seed)
    annotation = read_annotation(data["annotation"])
    tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    graph = KnowledgeGraph.from_json(run_dir / "graph.json")
    model = CKNet(model_config, tokenizer, graph, graph_model=data.get("graph_model"))

    def split(name: str, train: bool) -> AnnotationDataset | None:
        if name not in annotation:
            return None
        dataset = AnnotationDataset(annotation, data["image_dir"], name, model_config,
                                    train=train, flip=training.flip, skip_invalid=training.skip_invalid)
        if dataset.skipped and _rank() == 0:
            print(f"skipped {len(dataset.skipped)} {name} studies with missing or unreadable images")
        return dataset

    train_data = split("train", train=not training.cache_features)
    return Trainer(model, training, train_data, split("val", False), run_dir,
                   test_data=split("test", False), device=device, progress=progress)


def train(
    model_config: CKNetConfig,
    training: TrainingConfig,
    annotation: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    image_dir: str | os.PathLike[str] | None = None,
    graph: KnowledgeGraph | None = None,
    graph_model: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Start a training run in a new (or empty) ``run_dir``.

    The tokenizer is built from the train split (R2Gen rules and threshold), or is the
    language model's own with a pretrained ``model_config.text_encoder``; the graph is
    the graph model's, the given one, or openi40.

    Args:
        model_config: the model config.
        training: the training config.
        annotation: the R2Gen ``annotation.json``.
        run_dir: the run folder.
        image_dir: the image root (default: ``images/`` beside the annotation).
        graph: the knowledge graph (default: the graph model's, else openi40).
        graph_model: a pretrained graph stage's folder (`cknet pretrain-graph`).
        device: default CUDA when available.
        progress: show progress bars.

    Returns:
        The `TrainResult`.

    Raises:
        FileExistsError: if ``run_dir`` already holds a run (use `resume`).
    """
    run_dir = Path(run_dir)
    existed = (run_dir / "run.json").exists()
    _barrier()  # every process looks before rank 0 writes run.json below
    if existed:
        raise FileExistsError(f"{run_dir} already holds a run: resume it or choose another folder")
    annotation = Path(annotation)
    image_dir = Path(image_dir) if image_dir is not None else annotation.parent / "images"
    if graph_model is not None:
        from cknet.modules.graph_model import KnowledgeGraphModel

        graph = KnowledgeGraphModel.from_pretrained(graph_model).graph
    graph = graph if graph is not None else KnowledgeGraph.openi40()
    if _rank() == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        tokenizer: ReportTokenizerBase
        if model_config.pretrained_text_encoder:
            tokenizer = PretrainedReportTokenizer.from_pretrained(
                model_config.text_encoder, model_config.dataset, model_config.max_length
            )
        else:
            tokenizer = ReportTokenizer.from_annotation(annotation, model_config.dataset,
                                                        max_length=model_config.max_length)
        tokenizer.save(run_dir / "tokenizer.json")
        graph.to_json(run_dir / "graph.json")
        data = {"annotation": str(annotation.resolve()), "image_dir": str(image_dir.resolve()),
                "graph_model": None if graph_model is None else str(Path(graph_model).resolve())}
        settings = {"model": model_config.to_dict(), "training": training.to_dict(), "data": data}
        write_text_atomic(run_dir / "run.json", json.dumps(settings, indent=1) + "\n")
    _barrier()
    settings = json.loads((run_dir / "run.json").read_text())
    return _build(run_dir, settings, device, progress).fit()


def resume(
    run_dir: str | os.PathLike[str],
    overrides: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Continue a run from its last checkpoint (``overrides`` may change training
    fields such as ``epochs``).

    Args:
        run_dir: the run folder.
        overrides: training fields to change, e.g. ``{"epochs": 150}``.
        device: default CUDA when available.
        progress: show progress bars.

    Returns:
        The `TrainResult`.

    Raises:
        FileNotFoundError: if the folder holds no run or no checkpoint.
    """
    run_dir = Path(run_dir)
    for name in ("run.json", CHECKPOINT):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir} holds no {name}: nothing to resume")
    settings = json.loads((run_dir / "run.json").read_text())
    if overrides:
        settings["training"] = TrainingConfig.from_dict({**settings["training"], **overrides}).to_dict()
        if _rank() == 0:
            write_text_atomic(run_dir / "run.json", json.dumps(settings, indent=1) + "\n")
    trainer = _build(run_dir, settings, device, progress)
    trainer.load_checkpoint(run_dir / CHECKPOINT)
    return trainer.fit()


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
