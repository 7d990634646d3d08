"""Training runs from an R2Gen-format folder: `train` starts one, `resume` continues it.

A run folder (kind ``"run"`` in its ``cknet.json`` marker, see `cknet.hub`) is created
whole with ``run.json`` (both configs and where the data is), ``tokenizer.json`` (built
once, from the train split; with a pretrained text encoder, the language model's
tokenizer, its files in ``text_encoder/``) and ``graph.json``; training adds
``checkpoint.pt`` (every epoch), ``metrics.json`` / ``metrics.csv`` (one row per epoch),
``best/`` (the kept model, loadable with `CKNet.from_pretrained`) and, at the end,
``test_metrics.json`` and ``test_predictions.json``. A run killed before its first
checkpoint resumes from its first epoch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cknet.config import CKNetConfig
from cknet.data.annotation import AnnotationDataset, read_annotation
from cknet.graph import KnowledgeGraph
from cknet.hub import check_kind, save_folder
from cknet.io import write_text_atomic
from cknet.model import CKNet
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.tokenizers import PretrainedReportTokenizer, ReportTokenizer, ReportTokenizerBase, load_tokenizer
from cknet.training.config import TrainingConfig
from cknet.training.distributed import barrier, rank
from cknet.training.seeding import seed_everything
from cknet.training.trainer import CHECKPOINT, Trainer, TrainResult

RUN_FILE = "run.json"


def _build(run_dir: Path, settings: dict[str, Any], device: str | None, progress: bool) -> Trainer:
    model_config = CKNetConfig.from_dict(settings["model"])
    training = TrainingConfig.from_dict(settings["training"])
    data = settings["data"]
    seed_everything(training.seed)
    annotation = read_annotation(data["annotation"])
    if data.get("init"):  # a saved model to start from: its weights, tokenizer and graph
        model = CKNet.from_pretrained(data["init"]).train()
    else:
        tokenizer = load_tokenizer(run_dir / "tokenizer.json")
        graph = KnowledgeGraph.from_json(run_dir / "graph.json")
        model = CKNet(model_config, tokenizer, graph, graph_model=data.get("graph_model"))

    def split(name: str, train: bool) -> AnnotationDataset | None:
        if name not in annotation:
            return None
        dataset = AnnotationDataset(annotation, data["image_dir"], name, model_config,
                                    train=train, flip=training.flip, skip_invalid=training.skip_invalid)
        if dataset.skipped and rank() == 0:
            print(f"skipped {len(dataset.skipped)} {name} studies with missing or unreadable images")
        return dataset

    train_data = split("train", train=not training.cache_features)
    return Trainer(model, training, train_data, split("val", False), run_dir,
                   test_data=split("test", False), device=device, progress=progress)


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
        ValueError: for ``init`` together with a model config, graph or graph model.
    """
    if init is not None and not (model_config is None and graph is None and graph_model is None):
        raise ValueError("init starts from a saved model, which brings its own config, graph and graph "
                         "model: pass model_config=None, graph=None and graph_model=None with it")
    if init is None and model_config is None:
        raise ValueError("give model_config (or init, a saved model to start from)")
    run_dir = Path(run_dir)
    kind = check_kind(run_dir, "run", writing=True)
    barrier()  # every process looks before rank 0 writes the folder below
    if kind is not None:
        hint = "" if (run_dir / CHECKPOINT).is_file() else " (no checkpoint yet: resume starts it again)"
        raise FileExistsError(f"{run_dir} already holds a run: resume it or choose another folder{hint}")
    annotation = Path(annotation)
    image_dir = Path(image_dir) if image_dir is not None else annotation.parent / "images"
    start = None if init is None else CKNet.from_pretrained(init)
    if graph_model is not None:
        graph = KnowledgeGraphModel.from_pretrained(graph_model).graph
    graph = start.graph if start is not None else graph if graph is not None else KnowledgeGraph.openi40()
    model_config = start.config if start is not None else model_config
    if rank() == 0:
        tokenizer: ReportTokenizerBase
        if start is not None:
            tokenizer = start.tokenizer
        elif model_config.pretrained_text_encoder:
            tokenizer = PretrainedReportTokenizer.from_pretrained(
                model_config.text_encoder, model_config.dataset, model_config.max_length
            )
        else:
            tokenizer = ReportTokenizer.from_annotation(annotation, model_config.dataset,
                                                        max_length=model_config.max_length)
        data = {"annotation": str(annotation.resolve()), "image_dir": str(image_dir.resolve()),
                "graph_model": None if graph_model is None else str(Path(graph_model).resolve()),
                "init": None if init is None else str(Path(init).resolve())}
        settings = {"model": model_config.to_dict(), "training": training.to_dict(), "data": data}

        def write(folder: Path) -> None:
            tokenizer.save(folder / "tokenizer.json")
            graph.to_json(folder / "graph.json")
            (folder / RUN_FILE).write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")

        save_folder(run_dir, "run", write)
    barrier()
    settings = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
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

    A run killed before its first checkpoint starts again from its first epoch.

    Raises:
        FileNotFoundError: if the folder holds no run.
        ValueError: if it holds another kind of cknet folder, or a malformed run.json.
    """
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} holds no run ({RUN_FILE} is missing): nothing to resume")
    check_kind(run_dir, "run", writing=False)
    try:
        settings = json.loads((run_dir / RUN_FILE).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{run_dir / RUN_FILE} is not a run description: {err}") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("training"), dict):
        raise ValueError(f"{run_dir / RUN_FILE} is not a run description: expected an object with "
                         f"'model', 'training' and the data's paths, as cknet train writes it")
    if overrides:
        settings["training"] = TrainingConfig.from_dict({**settings["training"], **overrides}).to_dict()
        if rank() == 0:
            write_text_atomic(run_dir / RUN_FILE, json.dumps(settings, indent=1) + "\n")
    trainer = _build(run_dir, settings, device, progress)
    if (run_dir / CHECKPOINT).is_file():
        trainer.load_checkpoint(run_dir / CHECKPOINT)
    elif rank() == 0:
        print(f"{run_dir} has no checkpoint yet: starting the run from its first epoch")
    return trainer.fit()
