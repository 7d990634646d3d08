"""Training runs from an R2Gen-format folder: `train` starts one, `resume` continues it.

Both read the annotation and the images into `StudySplits` and hand them to the
training pipeline (`cknet.training.pipeline`), which does the rest. A run folder (kind
``"run"`` in its ``cknet.json`` marker, see `cknet.persistence.folders`) holds ``run.json`` (both
configs and where the data is), ``tokenizer.json`` (built once, from the train split;
with a pretrained text encoder, the language model's tokenizer, its files in
``text_encoder/``), ``graph.json`` and, with a graph model, ``graph_model/`` (a copy:
the run does not depend on the folder it was loaded from); training adds
``checkpoint.pt`` (every epoch), ``metrics.json`` / ``metrics.csv`` (one row per epoch),
``best/`` (the kept model, loadable with `CKNet.from_pretrained`) and, at the end,
``test_metrics.json`` and ``test_predictions.json``. A run killed before its first
checkpoint resumes from its first epoch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cknet.config import CKNetConfig
from cknet.data.annotation import AnnotationDataset, read_annotation
from cknet.graph import KnowledgeGraph
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.tokenizers import PretrainedReportTokenizer, ReportTokenizer, ReportTokenizerBase
from cknet.training.config import TrainingConfig
from cknet.training.distributed import rank
from cknet.training.pipeline import StudySplits, read_run_settings, resume_pipeline, run_pipeline
from cknet.training.trainer import TrainResult


def annotation_splits(annotation: str | os.PathLike[str], image_dir: str | os.PathLike[str],
                      model_config: CKNetConfig, training: TrainingConfig) -> StudySplits:
    """The train, val and test studies of an R2Gen ``annotation.json``.

    Args:
        annotation: the annotation file.
        image_dir: the image root.
        model_config: views and image size.
        training: ``flip`` and ``skip_invalid``; with ``cache_features`` the train split
            takes the evaluation transform (its features are computed once).

    Returns:
        The splits (``test`` None when the annotation has none).
    """
    parsed = read_annotation(annotation)

    def split(name: str, train: bool) -> AnnotationDataset | None:
        if name not in parsed:
            return None
        dataset = AnnotationDataset(parsed, image_dir, name, model_config, train=train, flip=training.flip,
                                    skip_invalid=training.skip_invalid)
        if dataset.skipped and rank() == 0:
            print(f"skipped {len(dataset.skipped)} {name} studies with missing or unreadable images")
        return dataset

    return StudySplits(split("train", not training.cache_features), split("val", False), split("test", False))


def train(
    model_config: CKNetConfig | None,
    training: TrainingConfig,
    annotation: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    image_dir: str | os.PathLike[str] | None = None,
    graph: KnowledgeGraph | None = None,
    graph_model: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool = True,
    init: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Start a training run in a new (or empty) ``run_dir``.

    The tokenizer is built from the train split (R2Gen rules and threshold), or is the
    language model's own with a pretrained ``model_config.text_encoder``; the graph is
    the graph model's, the given one, or openi40. With ``init``, the run starts from a
    saved model instead (e.g. the ``"scst"`` stage from a cross-entropy run's ``best/``):
    its config, tokenizer, graph and weights; ``model_config``, ``graph`` and
    ``graph_model`` must then be None.

    Args:
        model_config: the model config (None with ``init``).
        training: the training config.
        annotation: the R2Gen ``annotation.json``.
        run_dir: the run folder.
        image_dir: the image root (default: ``images/`` beside the annotation).
        graph: the knowledge graph (default: the graph model's, else openi40).
        graph_model: a pretrained graph stage's folder (`cknet pretrain-graph`).
        device: default CUDA when available.
        progress: show progress bars.
        init: a model folder written by `CKNet.save_pretrained` to start from.

    Returns:
        The `TrainResult`.

    Raises:
        FileExistsError: if ``run_dir`` already holds a run (use `resume`).
        ValueError: for ``init`` together with a model config, graph or graph model (as
            `run_pipeline` says).
    """
    if init is None and model_config is None:
        raise ValueError("give model_config (or init, a saved model to start from)")
    annotation = Path(annotation)
    image_dir = Path(image_dir) if image_dir is not None else annotation.parent / "images"
    loaded = None if graph_model is None else KnowledgeGraphModel.from_pretrained(graph_model)
    tokenizer: ReportTokenizerBase | None = None
    if init is None and model_config.pretrained_text_encoder:
        tokenizer = PretrainedReportTokenizer.from_pretrained(model_config.text_encoder, model_config.dataset,
                                                              model_config.max_length)
    elif init is None:
        tokenizer = ReportTokenizer.from_annotation(annotation, model_config.dataset,
                                                    max_length=model_config.max_length)
    config = model_config if init is None else _saved_config(init)
    paths = {"annotation": str(annotation.resolve()), "image_dir": str(image_dir.resolve())}
    result = run_pipeline(run_dir, annotation_splits(annotation, image_dir, config, training), training,
                          model_config, tokenizer, graph, loaded, init=init, data_paths=paths, device=device,
                          progress=progress)
    return result.training


def _saved_config(folder: str | os.PathLike[str]) -> CKNetConfig:
    """A saved model's config (views and image size of the data it reads)."""
    from cknet.persistence.model_files import CONFIG_FILE

    return CKNetConfig.from_json_file(Path(folder) / CONFIG_FILE)


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

    A run killed before its first checkpoint starts again from its first epoch.

    Raises:
        FileNotFoundError: if the folder holds no run.
        ValueError: if it holds another kind of cknet folder, or a malformed run.json.
    """
    run_dir = Path(run_dir)
    settings = read_run_settings(run_dir)
    paths = settings.get("data")
    if not isinstance(paths, dict) or "annotation" not in paths:
        raise ValueError(f"{run_dir} was started from datasets of your own, not an annotation.json: resume "
                         f"it with cknet.training.pipeline.resume_pipeline(run_dir, splits)")
    training = TrainingConfig.from_dict({**settings["training"], **(overrides or {})})
    model_config = CKNetConfig.from_dict(settings["model"])
    data = annotation_splits(paths["annotation"], paths["image_dir"], model_config, training)
    return resume_pipeline(run_dir, data, overrides, device=device, progress=progress).training
