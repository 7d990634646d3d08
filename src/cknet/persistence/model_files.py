"""The folder of a saved `CKNet`.

A saved model is one folder (written by `cknet.persistence.module_folder.save_module`, kind ``"model"``):

- ``config.json``: the `CKNetConfig`;
- ``generation_config.json``: the model's default decoding options (`GenerationConfig`);
- ``model.safetensors``: every weight and buffer (the frozen graph stage's too);
- ``tokenizer.json``: the tokenizer, with a pretrained text encoder's tokenizer files
  and its architecture (``config.json``) in ``text_encoder/``;
- ``graph.json``: the knowledge graph;
- ``training_info.json``: what the trainer said of the training (data, metrics,
  ``"synthetic"``), when it said anything; also in the card;
- ``README.md``: the model card; ``cknet.json``: the marker.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from cknet.config import CKNetConfig
from cknet.generation import GenerationConfig
from cknet.graph import KnowledgeGraph
from cknet.knowledge import KNOWLEDGE_SOURCES
from cknet.modules.language_model import PretrainedTextEncoder
from cknet.persistence.folders import MARKER
from cknet.persistence.hub import resolve_folder
from cknet.persistence.model_card import model_card
from cknet.persistence.module_folder import read_json, read_module, save_module
from cknet.persistence.weights import load_state, load_weights
from cknet.tokenizers import TEXT_ENCODER_DIR, load_tokenizer

CONFIG_FILE = "config.json"
GENERATION_FILE = "generation_config.json"
TRAINING_FILE = "training_info.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
GRAPH_FILE = "graph.json"
CARD_FILE = "README.md"
FILES = (CONFIG_FILE, GENERATION_FILE, WEIGHTS_FILE, TOKENIZER_FILE, GRAPH_FILE)
HUB_FILES = (*FILES, TRAINING_FILE, CARD_FILE, MARKER, f"{TEXT_ENCODER_DIR}/*")
Model = TypeVar("Model", bound=nn.Module)


def save_model(model: Any, directory: str | os.PathLike[str], overwrite: bool,
               training_info: dict[str, Any] | None) -> None:
    """Write ``model``'s folder (see the module docstring).

    Args:
        model: the model.
        directory: the folder.
        overwrite: replace a model saved there.
        training_info: facts for the model card (None: the model's ``training_info``).
    """
    config, graph, tokenizer = model.config, model.graph, model.tokenizer
    training_info = model.training_info if training_info is None else training_info
    source = model.knowledge_source
    if source is not None and KNOWLEDGE_SOURCES.get(config.knowledge_source) is not type(source):
        cls = type(source).__name__
        warnings.warn(f"{directory}: its knowledge source {config.knowledge_source!r} ({cls}) "
                      f"is not registered, so CKNet.from_pretrained cannot rebuild it; call "
                      f"cknet.register_knowledge_source({cls}) where the class is defined",
                      UserWarning, stacklevel=3)

    def write_more(folder: Path) -> None:
        tokenizer.save(folder / TOKENIZER_FILE)
        if isinstance(model.text_encoder, PretrainedTextEncoder):
            model.text_encoder.save_config(folder / TEXT_ENCODER_DIR)

    card = model_card(config.to_dict(), graph.name, graph.num_nodes, tokenizer.vocab_size, training_info)
    save_module(directory, "model", model, WEIGHTS_FILE,
                json_files={GENERATION_FILE: model.generation_config.to_dict(),
                            **({TRAINING_FILE: training_info} if training_info else {})},
                text_files={CONFIG_FILE: config.to_json(), GRAPH_FILE: graph.to_json_string(),
                            CARD_FILE: card},
                write_more=write_more, overwrite=overwrite)


def load_model(cls: type[Model], name_or_path: str | os.PathLike[str], map_location: str | torch.device,
               revision: str | None) -> Model:
    """Read a model folder (or hub id) into a ``cls`` instance, in evaluation mode.

    Args:
        cls: `CKNet` or a subclass.
        name_or_path: the folder or hub id.
        map_location: the device to load to.
        revision: a hub revision.

    Returns:
        The model.
    """
    from cknet.registry import load_plugins

    load_plugins()  # a model may name a plugin's backbone, graph, dataset or knowledge source
    folder = resolve_folder(name_or_path, "CKNet model", HUB_FILES, revision)
    model = read_module(folder, "model", "saved CKNet model", FILES, lambda f: _read(cls, f, map_location))
    if model.training_info.get("synthetic"):
        warnings.warn(f"{os.fspath(name_or_path)} was trained on synthetic radiographs only (cknet demo): "
                      f"its "
                      f"reports of real images mean nothing", SyntheticModelWarning, stacklevel=3)
    return model.eval()


class SyntheticModelWarning(UserWarning):
    """A model loaded for use was trained on synthetic radiographs only (the demo's):
    Python shows it once per model folder and place of loading."""


def _read(cls: type[Model], folder: Path, map_location: str | torch.device) -> Model:
    config = CKNetConfig.from_json_file(folder / CONFIG_FILE)
    generation = read_json(folder / GENERATION_FILE, "a generation config")
    if not isinstance(generation, dict):
        raise ValueError(f"{folder / GENERATION_FILE} is not a generation config: expected an object of "
                         f"GenerationConfig fields")
    try:
        generation_config = GenerationConfig.from_dict(generation)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{folder / GENERATION_FILE}: {err}") from None
    tokenizer = load_tokenizer(folder / TOKENIZER_FILE)
    graph = KnowledgeGraph.from_json(folder / GRAPH_FILE)
    text_encoder = None
    if config.pretrained_text_encoder:
        if not (folder / TEXT_ENCODER_DIR / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder} holds a model whose text encoder is the language model {config.text_encoder!r}, "
                f"but not its {TEXT_ENCODER_DIR}/ folder (the language model's config.json and tokenizer "
                f"files, which save_pretrained writes): copy the whole folder"
            )
        text_encoder = PretrainedTextEncoder.from_config(folder / TEXT_ENCODER_DIR, config.d_model,
                                                         config.dropout, config.train_text_encoder)
    state = load_weights(folder / WEIGHTS_FILE, map_location)
    # Empty modules of the right shapes (no backbone weights fetched); the saved
    # weights replace every one of them.
    source = config.knowledge_source
    knowledge = None
    if source != "none":
        if source not in KNOWLEDGE_SOURCES:
            raise ValueError(
                f"{folder / CONFIG_FILE} names the knowledge source {source!r}, which is not registered: "
                f"import the code that defines it and call cknet.register_knowledge_source on its class"
            )
        shapes = {k.removeprefix("knowledge_source."): tuple(v.shape) for k, v in state.items()
                  if k.startswith("knowledge_source.")}
        knowledge = KNOWLEDGE_SOURCES[source].for_loading(config, graph, shapes)
    empty = CKNetConfig.from_dict({**config.to_dict(), "backbone_weights": None})
    model = cls(empty, tokenizer, graph, text_encoder=text_encoder, knowledge_source=knowledge)
    model.config, model.generation_config = config, generation_config
    if (folder / TRAINING_FILE).is_file():
        info = read_json(folder / TRAINING_FILE, "a description of the training")
        model.training_info = info if isinstance(info, dict) else {}
    load_state(model, state, folder / WEIGHTS_FILE)
    return model.to(map_location)

