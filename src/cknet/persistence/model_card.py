"""The ``README.md`` model card written beside every saved model.

It states what the model is (config, graph, vocabulary), what it was trained and
evaluated on when the caller says so (data, split, metrics with their evaluation
settings), its intended use, and that it is a research artefact, not a medical device.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

DISCLAIMER = (
    "This model is a research artefact. It is not a medical device, has not been "
    "validated for clinical use, and must not be used to diagnose, treat or triage "
    "patients. Generated reports can be wrong in ways that look fluent and plausible."
)


def model_card(config: Mapping[str, Any], graph_name: str, graph_nodes: int, vocab_size: int,
               training: Mapping[str, Any] | None = None) -> str:
    """Markdown model card.

    Args:
        config: the model's `CKNetConfig` as a dict.
        graph_name: the knowledge graph's name.
        graph_nodes: its number of nodes.
        vocab_size: the tokenizer's vocabulary size.
        training: optional facts about training and evaluation, e.g. ``{"data":
            "IU X-Ray (R2Gen split)", "split": "train 2069 / val 296 / test 590",
            "best_epoch": 12, "metrics": {...}, "evaluation": "beam 3, cleaned references"}``;
            ``"synthetic": True`` says the model saw synthetic radiographs only.
    """
    lines = [
        "---", "library_name: cknet", "tags: [radiology-report-generation, chest-x-ray, cknet]", "---", "",
        "# CKNet radiology report generator", "",
        "A CKNet model (Kang et al., *Bridging the Gap: Cross-modal Knowledge Driven Network for "
        "Radiology Report Generation*, IEEE BIBM 2023) saved by the `cknet` library. Load it with:", "",
        *usage_snippet(config), "",
        "## Model", "",
        f"- dataset rules: `{config['dataset']}`, {config['num_views']} view(s) of "
        f"{config['image_size']} px, reports of at most {config['max_length']} tokens",
        f"- visual backbone: `{config['backbone']}`; Transformer {config['num_encoder_layers']} + "
        f"{config['num_decoder_layers']} layers, d_model {config['d_model']}, {config['num_heads']} heads",
        f"- knowledge: `{config['knowledge_source']}` source over the `{graph_name}` graph "
        f"({graph_nodes} nodes + a global node), top-{config['gamma']} (γ) "
        f"`{config['knowledge_weighting']}` query",
        f"- text features: {_text_features(config)}",
        f"- vocabulary: {vocab_size} tokens", "",
        "## Training and evaluation", "",
    ]
    if training:
        for key, value in training.items():
            if isinstance(value, (dict, list)):
                lines += [f"- {key}:", "", "```json", json.dumps(value, indent=1), "```", ""]
            else:
                lines.append(f"- {key}: {value}")
    else:
        lines.append("Not recorded: the model was saved without training information.")
    synthetic = bool(training and training.get("synthetic"))
    lines += [
        "", "## Intended use", "",
        ("A demonstration of the method on synthetic radiographs (`cknet.data.synthetic`): it has "
         "never seen a real radiograph, and its reports of real images mean nothing." if synthetic else
         "Research on radiology report generation: reproducing and comparing methods, studying "
         "knowledge-driven generation. Not for clinical decisions."), "",
        "## Limitations", "", DISCLAIMER, "",
        "The full configuration is in `config.json`.", "",
    ]
    return "\n".join(lines)


def usage_snippet(config: Mapping[str, Any]) -> list[str]:
    """The card's usage example for this model's views, as fenced Python lines.

    Args:
        config: the model's `CKNetConfig` as a dict.

    Returns:
        The lines, from the opening fence to the closing one.
    """
    views = int(config["num_views"])
    names = ["frontal.png", "lateral.png"] if views == 2 else (
        ["frontal.png"] if views == 1 else [f"view{i}.png" for i in range(1, views + 1)])
    study = "[" + ", ".join(f'"{name}"' for name in names) + "]"
    return ["```python", "import cknet", "",
            'model = cknet.CKNet.from_pretrained("path/to/this/folder")',
            f"# one study: its {views} view(s) in this order, any size (resized to "
            f"{config['image_size']} px)",
            f"reports = model.generate([{study}])", "```"]


def _text_features(config: Mapping[str, Any]) -> str:
    source = config.get("text_encoder", "embedding")
    if source == "embedding":
        return "learned token embedding with sinusoidal positions"
    state = "fine-tuned" if config.get("train_text_encoder") else "frozen"
    return (f"the language model `{source}` run causally, {state}, projected to d_model "
            f"(its tokenizer and architecture in `text_encoder/`)")
