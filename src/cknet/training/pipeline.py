"""The training pipeline: graph stage -> report model -> evaluation, in one resumable run.

`run_pipeline` is what ``cknet train``, ``cknet demo`` (`cknet.demo.run_demo`) and the
benchmarks call; `cknet.training.run` adds only the reading of an R2Gen-format folder.
It takes the studies as datasets (`StudySplits`) of the study form
(`cknet.data.studies`: dicts with ``"id"``, ``"images"``, ``"report"`` and, for a graph
stage trained here, ``"labels"``), such as `cknet.data.AnnotationDataset`,
`cknet.data.synthetic.SyntheticDataset` or yours. The stages, each skipped when a resumed run has done it:

1. **graph stage** (paper Section III.A): a `KnowledgeGraphModel` given (loaded once by
   the caller) or trained here from `GraphStage` settings, saved into the run as
   ``graph_model/`` so that the run is whole on its own;
2. **report model**: `Trainer` on the train and validation splits, a checkpoint every
   epoch, the kept model in ``best/``;
3. **evaluation**: the kept model on the test split (``test_metrics.json``,
   ``test_predictions.json``).

A new run carries the objects it is given (a built model, a config and tokenizer, a
graph model) through its stages in memory. The run folder (kind ``"run"``) records them
only so that `resume_pipeline` can start again: ``run.json`` (the configs, and the
data's paths when the data can be read again from them), ``tokenizer.json``,
``graph.json``, ``graph_model/`` and, for a model given built, its starting weights in
``start/``, beside what the stages write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from cknet.config import CKNetConfig
from cknet.graph import KnowledgeGraph
from cknet.model import CKNet
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.persistence.files import folder_lock, write_text_atomic
from cknet.persistence.folders import check_kind, save_folder
from cknet.persistence.module_folder import read_json
from cknet.tokenizers import ReportTokenizerBase, load_tokenizer
from cknet.training.config import TrainingConfig
from cknet.training.distributed import barrier, rank
from cknet.training.graph_pretrain import PretrainResult
from cknet.training.graph_stage import GraphStage, stage_history, train_graph_stage
from cknet.training.seeding import seed_everything
from cknet.training.trainer import CHECKPOINT, Trainer, TrainResult

RUN_FILE = "run.json"
GRAPH_MODEL_DIR = "graph_model"
START_DIR = "start"


@dataclass
class _Given:
    """What a new run was handed in memory (None on resume: read from the run folder)."""

    model_config: CKNetConfig | None = None
    tokenizer: ReportTokenizerBase | None = None
    graph: KnowledgeGraph | None = None
    graph_model: KnowledgeGraphModel | None = None
    start: CKNet | None = None


@dataclass
class StudySplits:
    """The studies of a run, each split a dataset of the study form (`cknet.data.studies`).

    Attributes:
        train: the training studies.
        val: the validation studies (validation metrics and the kept epoch).
        test: the test studies, scored once with the kept model (None: no test).
    """

    train: Dataset
    val: Dataset
    test: Dataset | None = None


@dataclass
class PipelineResult:
    """What `run_pipeline` returns.

    Attributes:
        training: the report model's `TrainResult` (its ``test`` holds the test metrics).
        graph_model: the frozen graph stage (None for a source that needs none).
        graph_stage: the graph stage's `PretrainResult` when it was trained in this call.
        seconds: wall time of each stage run in this call.
        run_dir: the run folder (the kept model is ``run_dir / "best"``).
    """

    training: TrainResult
    graph_model: KnowledgeGraphModel | None
    graph_stage: PretrainResult | None
    seconds: dict[str, float] = field(default_factory=dict)
    run_dir: Path = Path()


def run_pipeline(
    run_dir: str | os.PathLike[str],
    data: StudySplits,
    training: TrainingConfig,
    model_config: CKNetConfig | None = None,
    tokenizer: ReportTokenizerBase | None = None,
    graph: KnowledgeGraph | None = None,
    graph_model: KnowledgeGraphModel | GraphStage | None = None,
    init: str | os.PathLike[str] | None = None,
    data_paths: dict[str, str] | None = None,
    device: str | None = None,
    progress: bool = True,
    model: CKNet | None = None,
) -> PipelineResult:
    """Start a run in a new (or empty) ``run_dir`` and carry it through every stage.

    Args:
        run_dir: the run folder.
        data: the studies.
        training: the report model's training config (its ``seed`` seeds every stage).
        model_config: the report model's config (None with ``init``).
        tokenizer: the report tokenizer (None with ``init``).
        graph: the knowledge graph (default: the graph model's, else openi40).
        graph_model: the graph stage: a trained `KnowledgeGraphModel` (frozen, copied
            into the run), or `GraphStage` settings to train one on ``data`` (its items
            then need ``"labels"``); None when ``model_config.knowledge_source`` needs
            no graph model.
        init: a saved model's folder to start from (e.g. the ``"scst"`` stage from a
            cross-entropy run's ``best/``): its config, tokenizer, graph, graph model and
            weights, read again on resume.
        data_paths: where ``data`` was read from, kept in ``run.json`` so that `resume`
            can read it again (`cknet.training.run` passes the annotation and images).
        device: default CUDA when available.
        progress: print the stages and show progress bars.
        model: a report model built by the caller (e.g. with a CNN of its own), trained as
            it is; its config, tokenizer and graph are its own, and its starting weights
            are saved in the run (``start/``) for `resume_pipeline`.

    Returns:
        The `PipelineResult`.

    Raises:
        FileExistsError: if ``run_dir`` already holds a run (resume it instead).
        ValueError: for ``init`` or ``model`` together with a config, tokenizer, graph or
            graph model, or a config without a tokenizer.
    """
    start = model
    if init is not None or model is not None:
        if not (model_config is None and tokenizer is None and graph is None and graph_model is None) \
                or (init is not None and model is not None):
            raise ValueError("init and model bring their own config, tokenizer, graph and graph model: "
                             "pass one of them, and none of those")
        start = model if model is not None else CKNet.from_pretrained(init)
        model_config, tokenizer, graph = start.config, start.tokenizer, start.graph
    if model_config is None or tokenizer is None:
        raise ValueError("give model_config and tokenizer (or init, a model to start from, or model)")
    if isinstance(graph_model, KnowledgeGraphModel):
        graph = graph_model.graph
    graph = graph if graph is not None else KnowledgeGraph.openi40()
    run_dir = Path(run_dir)
    kind = check_kind(run_dir, "run", writing=True)
    barrier()  # every process looks before rank 0 writes the folder below
    unfinished = kind is not None and not (run_dir / CHECKPOINT).is_file() and not (run_dir / "best").exists()
    if kind is not None and not unfinished:
        raise FileExistsError(f"{run_dir} already holds a run: resume it or choose another folder")
    if unfinished and rank() == 0:
        with folder_lock(run_dir, "cknet train"):  # refused while that run is still going
            print(f"note: {run_dir} holds a run that never finished an epoch: it is replaced")
    stage = graph_model if isinstance(graph_model, GraphStage) else None
    origin = START_DIR if model is not None else None if init is None else str(Path(init).resolve())
    settings = {"model": model_config.to_dict(), "training": training.to_dict(), "data": data_paths,
                "graph_stage": None if stage is None else dataclasses.asdict(stage), "init": origin}
    if rank() == 0:
        def write(folder: Path) -> None:
            tokenizer.save(folder / "tokenizer.json")
            graph.to_json(folder / "graph.json")
            (folder / RUN_FILE).write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
            if isinstance(graph_model, KnowledgeGraphModel):
                graph_model.save_pretrained(folder / GRAPH_MODEL_DIR)
            if model is not None:
                model.save_pretrained(folder / START_DIR)

        save_folder(run_dir, "run", write, overwrite=unfinished)
    barrier()
    given = _Given(model_config, tokenizer, graph,
                   graph_model if isinstance(graph_model, KnowledgeGraphModel) else None, start)
    return _carry_on(run_dir, data, settings, given, device, progress)


def resume_pipeline(
    run_dir: str | os.PathLike[str],
    data: StudySplits,
    overrides: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> PipelineResult:
    """Continue a run where it stopped: the graph stage when it is not saved yet, then
    the report model from its last checkpoint (from its first epoch without one).

    Args:
        run_dir: the run folder.
        data: the same studies the run started with.
        overrides: training fields to change, e.g. ``{"epochs": 150}``.
        device: default CUDA when available.
        progress: print the stages and show progress bars.

    Returns:
        The `PipelineResult`.

    Raises:
        FileNotFoundError: if the folder holds no run.
        ValueError: if it holds another kind of cknet folder, or a malformed run.json.
    """
    run_dir = Path(run_dir)
    settings = read_run_settings(run_dir)
    if overrides:
        settings["training"] = TrainingConfig.from_dict({**settings["training"], **overrides}).to_dict()
        if rank() == 0:
            write_text_atomic(run_dir / RUN_FILE, json.dumps(settings, indent=1) + "\n")
    return _carry_on(run_dir, data, settings, _Given(), device, progress)


def read_run_settings(run_dir: Path) -> dict[str, Any]:
    """A run's ``run.json``, checked.

    Args:
        run_dir: the run folder.

    Returns:
        ``{"model", "training", "data", "graph_stage", "init"}``.

    Raises:
        FileNotFoundError: if the folder holds no run.
        ValueError: if it holds another kind of cknet folder, or a malformed run.json.
    """
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} holds no run ({RUN_FILE} is missing): nothing to resume")
    check_kind(run_dir, "run", writing=False)
    settings = read_json(run_dir / RUN_FILE, "a run description")
    if not isinstance(settings, dict) or not isinstance(settings.get("training"), dict) \
            or not isinstance(settings.get("model"), dict):
        raise ValueError(f"{run_dir / RUN_FILE} is not a run description: expected an object with "
                         f"'model', 'training' and the data's paths, as cknet train writes it")
    return settings


def _carry_on(run_dir: Path, data: StudySplits, settings: dict[str, Any], given: _Given, device: str | None,
              progress: bool) -> PipelineResult:
    """Run the stages not done yet (see the module docstring), with what the caller gave
    in memory (a new run) or what the run folder holds (a resumed one). The run folder is
    locked meanwhile: a second resume of it is refused, naming this one."""
    with folder_lock(run_dir, "cknet train") if rank() == 0 else contextlib.nullcontext():
        return _stages(run_dir, data, settings, given, device, progress)


def _stages(run_dir: Path, data: StudySplits, settings: dict[str, Any], given: _Given, device: str | None,
            progress: bool) -> PipelineResult:
    say = print if progress and rank() == 0 else (lambda *args, **kwargs: None)
    training = TrainingConfig.from_dict(settings["training"])
    graph = given.graph or KnowledgeGraph.from_json(run_dir / "graph.json")
    graph_model, start = given.graph_model, given.start
    seconds: dict[str, float] = {}
    pretrained = None
    seed_everything(training.seed)
    if graph_model is None and (run_dir / GRAPH_MODEL_DIR).is_dir():
        graph_model = KnowledgeGraphModel.from_pretrained(run_dir / GRAPH_MODEL_DIR)
    elif graph_model is None and settings.get("graph_stage") is not None:
        stage = GraphStage(**settings["graph_stage"])
        say(f"graph stage: {graph}, {stage.backbone} + {stage.num_gcn_layers} GCN layers, "
            f"{stage.epochs} epochs")
        clock = time.perf_counter()
        graph_model, pretrained = train_graph_stage(graph, stage, data.train, data.val, seed=training.seed,
                                                    device=device, progress=progress)
        seconds["graph stage"] = time.perf_counter() - clock
        say(f"graph stage: validation mean ROC AUC {pretrained.best.mean_auc:.3f} (epoch "
            f"{pretrained.best_epoch})")
        if rank() == 0:
            graph_model.save_pretrained(run_dir / GRAPH_MODEL_DIR,
                                        history=stage_history(pretrained, graph, stage))
    clock = time.perf_counter()
    seed_everything(training.seed)
    if start is None and settings.get("init"):
        start = CKNet.from_pretrained(run_dir / settings["init"])  # a path relative to the run, or absolute
    model = start.train() if start is not None else CKNet(
        given.model_config or CKNetConfig.from_dict(settings["model"]),
        given.tokenizer or load_tokenizer(run_dir / "tokenizer.json"), graph, graph_model=graph_model)
    trainer = Trainer(model, training, data.train, data.val, run_dir, test_data=data.test, device=device,
                      progress=progress)
    if (run_dir / CHECKPOINT).is_file():
        trainer.load_checkpoint(run_dir / CHECKPOINT)
    result = trainer.fit()
    seconds["report model"] = time.perf_counter() - clock
    return PipelineResult(result, graph_model, pretrained, seconds, run_dir)
