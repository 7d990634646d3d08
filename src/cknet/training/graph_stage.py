"""The knowledge-graph stage: a `KnowledgeGraphModel` built from `GraphStage` settings
and trained by `GraphPretrainer` (paper Section III.A).

`train_graph_stage` is the first stage of the training pipeline
(`cknet.training.pipeline`), on any datasets of studies with node labels;
`pretrain_graph` is the same stage on an R2Gen-format folder, saved on its own (what
``cknet pretrain-graph`` does), with node labels from `node_labels`: a labeler, MeSH
tags or a CSV.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cknet.config import CKNetConfig
from cknet.graph import KnowledgeGraph
from cknet.modules.graph_model import GraphModelConfig, KnowledgeGraphModel
from cknet.persistence.folders import check_kind
from cknet.training.graph_pretrain import GraphPretrainer, PretrainResult


@dataclass(frozen=True)
class GraphStage:
    """The graph stage's model and training settings (one name per setting, as in
    `CKNetConfig` and `cknet.modules.graph_model.GraphModelConfig`).

    Attributes:
        backbone: the CNN (a torchvision model name or a registered backbone).
        backbone_weights: its initial weights: None (random), ``"imagenet"`` or a path.
        d_knowledge: size of the node embeddings.
        num_gcn_layers: residual GCN layers.
        epochs: training epochs.
        batch_size: studies per step.
        lr: Adam learning rate.
        num_workers: data-loader worker processes.
        static_knowledge: compute the mean node embeddings over the training split
            (needed by ``knowledge_source="static"``; one more pass over the images).
    """

    backbone: str = GraphModelConfig.backbone
    backbone_weights: str | None = None
    d_knowledge: int = GraphModelConfig.d_knowledge
    num_gcn_layers: int = GraphModelConfig.num_gcn_layers
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-4
    num_workers: int = 0
    static_knowledge: bool = True


def train_graph_stage(
    graph: KnowledgeGraph,
    stage: GraphStage,
    train: Dataset,
    val: Dataset,
    static_data: Dataset | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> tuple[KnowledgeGraphModel, PretrainResult]:
    """Build the graph model ``stage`` describes and train it, keeping its best epoch.

    Args:
        graph: the knowledge graph.
        stage: the settings.
        train: training studies: dicts with ``"images"`` ``(V, 3, S, S)`` and ``"labels"``
            ``(N,)`` 0/1, or ``(images, labels)`` pairs.
        val: validation studies, in the same form.
        static_data: the studies the static knowledge is averaged over (default ``train``;
            give the training split without augmentation when ``train`` augments).
        seed: seeds the weights and the shuffle order.
        device: default CUDA when available.
        progress: show progress bars.

    Returns:
        The trained model (on ``device``) and its `PretrainResult`.
    """
    torch.manual_seed(seed)
    model = KnowledgeGraphModel(graph, stage.backbone, stage.d_knowledge, stage.num_gcn_layers,
                                stage.backbone_weights)
    trainer = GraphPretrainer(model, epochs=stage.epochs, batch_size=stage.batch_size, lr=stage.lr,
                              device=device, seed=seed, num_workers=stage.num_workers, progress=progress)
    result = trainer.fit(train, val, static_data=static_data, static_knowledge=stage.static_knowledge)
    return model, result


def stage_history(result: PretrainResult, graph: KnowledgeGraph, settings: Any) -> dict[str, Any]:
    """What a saved graph model keeps in ``history.json``: the epochs and the settings.

    Args:
        result: the training's result.
        graph: the graph (its node names label the AUC columns).
        settings: the dataclass of settings the stage ran with.

    Returns:
        A JSON-ready dict.
    """
    return {"best_epoch": result.best_epoch, "nodes": graph.nodes, "settings": dataclasses.asdict(settings),
            "history": [dataclasses.asdict(record) for record in result.history]}


def node_labels(spec: str, graph: KnowledgeGraph, annotation: Mapping[str, list], uncertain: int = 0
                ) -> dict[str, np.ndarray]:
    """0/1 labels of the graph's nodes for the train and val studies of an annotation.

    Args:
        spec: ``"keyword"`` (label the reports with `cknet.labeler.KeywordLabeler`),
            ``"mesh:FILE"`` (IU X-Ray's ``mesh_tags.csv``) or ``"csv:FILE[@ID_COLUMN]"``:
            a CSV with a column per graph node, named as the node, cells 1, 0, -1
            (uncertain) or blank, and an id column (default ``study_id``). A row labels
            every annotation entry whose field of that name holds its id (MIMIC-CXR:
            the CheXpert CSV's ``study_id`` labels each image entry of that study), or,
            for entries without that field, the entry whose ``id`` it is.
        graph: the knowledge graph.
        annotation: the parsed annotation, ``{split: [entries]}``.
        uncertain: what an uncertain (-1) label counts as, 0 or 1; blank counts as 0.

    Returns:
        ``{entry id: (N,) labels}`` for the train and val entries (``mesh`` and ``csv``:
        every row of the file).

    Raises:
        ValueError: for a malformed spec, or a CSV without a row for a train or val entry.
    """
    from cknet.data.labels import load_label_csv, load_mesh_labels
    from cknet.labeler import binarize
    from cknet.labeler.keyword import keyword_labeler

    kind, _, path = spec.partition(":")
    if kind == "keyword" and not path:
        labeler = keyword_labeler(graph)
        entries = [e for split in ("train", "val") for e in annotation.get(split, [])]
        values = labeler.label_binary([e["report"] for e in entries], uncertain=uncertain)
        return {e["id"]: row for e, row in zip(entries, values)}
    if kind == "mesh" and path:
        ids, _, values = load_mesh_labels(path, graph)
        return dict(zip(ids, values))
    if kind == "csv" and path:
        path, _, id_column = path.partition("@")
        id_column = id_column or "study_id"
        ids, _, values = load_label_csv(path, graph.nodes, id_column)
        rows = dict(zip(ids, binarize(values, uncertain)))
        by_entry = {}
        for entry in (e for split in ("train", "val") for e in annotation.get(split, [])):
            key = str(entry.get(id_column, entry["id"]))
            if key not in rows:
                raise ValueError(f"{path} has no row with {id_column} {key!r}, which labels the annotation's "
                                 f"entry {entry['id']!r}")
            by_entry[entry["id"]] = rows[key]
        return by_entry
    raise ValueError(f"labels must be keyword, mesh:FILE or csv:FILE[@ID_COLUMN], got {spec!r}")


@dataclass(frozen=True)
class GraphRun(GraphStage):
    """Settings of `pretrain_graph` (the ``cknet pretrain-graph`` options): the stage's
    (`GraphStage`) and the data's.

    Attributes:
        backbone: as in `GraphStage`.
        backbone_weights: as in `GraphStage`.
        d_knowledge: as in `GraphStage`.
        num_gcn_layers: as in `GraphStage`.
        epochs: as in `GraphStage`.
        batch_size: as in `GraphStage`.
        lr: as in `GraphStage`.
        num_workers: as in `GraphStage`.
        static_knowledge: as in `GraphStage`.
        dataset: a key of `cknet.presets.DATASETS` (views per study).
        image_size: side of the input images.
        uncertain: what an uncertain label counts as.
        seed: seeds the weights and the shuffle order.
        skip_invalid: drop studies with missing or unreadable images.
    """

    dataset: str = "iu_xray"
    image_size: int = 224
    uncertain: int = 0
    seed: int = 0
    skip_invalid: bool = False


def pretrain_graph(
    annotation: str | os.PathLike[str],
    output: str | os.PathLike[str],
    graph: KnowledgeGraph,
    labels: str,
    settings: GraphRun | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], object] = print,
) -> PretrainResult:
    """Train the graph stage on an R2Gen-format dataset and save it (with its history).

    Args:
        annotation: the ``annotation.json``.
        output: the folder to save the graph model to (for ``CKNet(graph_model=...)``).
        graph: the knowledge graph.
        labels: where the node labels come from (see `node_labels`).
        settings: the run's settings (default `GraphRun()`).
        image_dir: the image root (default: ``images/`` beside the annotation).
        device: default CUDA when available.
        overwrite: replace a graph model saved in ``output``.
        progress: show progress bars.
        log: prints the skipped studies and each epoch.

    Returns:
        The `PretrainResult`.

    Raises:
        FileExistsError: if ``output`` holds anything but a graph model, or one without
            ``overwrite`` (checked before training).
    """
    from cknet.data.annotation import AnnotationDataset, read_annotation

    settings = settings or GraphRun()
    output = Path(output)
    if check_kind(output, "graph_model", writing=True) is not None and not overwrite:
        raise FileExistsError(f"{output} already holds a graph model; pass overwrite=True (--overwrite)")
    parsed = read_annotation(annotation)
    image_dir = Path(image_dir) if image_dir is not None else Path(annotation).parent / "images"
    config = CKNetConfig.preset(settings.dataset, image_size=settings.image_size)
    values = node_labels(labels, graph, parsed, settings.uncertain)
    datasets = {
        name: AnnotationDataset(parsed, image_dir, split, config, train=train, labels=values,
                                skip_invalid=settings.skip_invalid)
        for name, split, train in (("train", "train", True), ("val", "val", False),
                                   ("static", "train", False))
    }
    for name in ("train", "val"):
        if datasets[name].skipped:
            log(f"skipped {len(datasets[name].skipped)} {name} studies with missing or unreadable images")
    model, result = train_graph_stage(graph, settings, datasets["train"], datasets["val"],
                                      static_data=datasets["static"], seed=settings.seed, device=device,
                                      progress=progress)
    history = stage_history(result, graph, settings)
    model.save_pretrained(output, overwrite=overwrite, history=history)
    for record in result.history:
        log(f"epoch {record.epoch}: train loss {record.train_loss:.4f}, val loss {record.val_loss:.4f}, "
            f"mean val AUC {record.mean_auc:.4f}")
    log(f"kept epoch {result.best_epoch} (mean val AUC {result.best.mean_auc:.4f}); saved to {output}")
    return result
