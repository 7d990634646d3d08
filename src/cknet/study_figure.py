"""`draw_study`: one study in one picture, for people: its views (the frontal one marked
with the patient's R and L), the generated and the reference report, the knowledge
nodes its image patches and report tokens attend to (equation 6), and the findings the
graph stage detects. `cknet demo` saves one as ``study.png``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch


def draw_study(model: Any, images: torch.Tensor, generated: str, reference: str, path: str | Path,
               top: int = 5, study_id: str | None = None) -> dict[str, list[tuple[str, float]]]:
    """Save a picture of one study: its views (the frontal one marked R and L, the
    patient's sides), the generated and the reference report, the knowledge nodes its
    image patches and report tokens drew on most, and what the graph stage detects.

    Args:
        model: a `CKNet` with a knowledge matrix.
        images: ``(V, 3, S, S)`` the study's preprocessed views (view 0 frontal).
        generated: the generated report.
        reference: the reference report.
        path: a PNG file.
        top: how many nodes to list.
        study_id: the study's id, for the title.

    Returns:
        ``{"patches": [(node, weight), ...], "tokens": [...]}``: the ``top`` knowledge
        vectors by mean equation-(6) weight over the patches and over the report's tokens
        (attention over the study's own knowledge vectors, not detections); with a graph
        model also ``"detected"``: its ``top`` nodes by predicted probability.
    """
    from cknet.explain import knowledge_attention

    input_ids, _ = model.tokenizer.encode_batch([generated])
    patch_weights, token_weights = knowledge_attention(model, images[None], input_ids)
    names = ["(global node)", *model.graph.nodes]

    def ranked(weights: torch.Tensor) -> list[tuple[str, float]]:
        mean = weights[0].mean(dim=0)
        return [(names[j], float(mean[j])) for j in mean.argsort(descending=True)[:top].tolist()]

    nodes = {"patches": ranked(patch_weights), "tokens": ranked(token_weights)}
    graph_model = getattr(model.knowledge_source, "graph_model", None)
    if graph_model is not None:
        with torch.no_grad():
            probability = graph_model(images[None].to(model.device)).logits[0].sigmoid()
        nodes["detected"] = [(model.graph.nodes[j], float(probability[j]))
                             for j in probability.argsort(descending=True)[:top].tolist()]
    blocks = [("Generated report", textwrap.wrap(generated, 72)),
              ("Reference report", textwrap.wrap(reference, 72)),
              ("Knowledge nodes the image patches attend to (eq. 6 weight)",
               [f"{name}  {weight:.2f}" for name, weight in nodes["patches"]]),
              ("Knowledge nodes the report tokens attend to",
               [f"{name}  {weight:.2f}" for name, weight in nodes["tokens"]])]
    if "detected" in nodes:
        blocks.append(("Findings the graph stage detects (probability)",
                       [f"{name}  {p:.2f}" for name, p in nodes["detected"]]))
    blocks.append(("", ["The weights are attention over this study's own knowledge vectors",
                        "(the graph stage's node embeddings), not detections."]))
    mean, std = torch.tensor(model.config.image_mean), torch.tensor(model.config.image_std)
    views = (images[:, 0].cpu() * std[0] + mean[0]).clamp(0, 1)  # (V, S, S) grey
    title = f"Study {study_id}" if study_id else "A held-out study"
    _save_figure(views, title, blocks, Path(path))
    return nodes


TILE = 320  # side of each view in the picture, in pixels
HEADER = 30  # the title line above the views


def _save_figure(views: torch.Tensor, title: str, blocks: list[tuple[str, list[str]]], path: Path) -> None:
    """Views on the left (R and L on the frontal one, a name under each), text blocks on
    the right, a title above; as tall as the taller of the two."""
    from PIL import Image, ImageDraw, ImageFont

    font, bold = ImageFont.load_default(size=13), ImageFont.load_default(size=15)
    text_height = sum(20 * bool(heading) + 16 * len(lines) + 8 for heading, lines in blocks) + 8
    width = TILE * len(views) + 560
    canvas = Image.new("RGB", (width, HEADER + max(TILE + 24, text_height)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((10, 6), title, fill="black", font=bold)
    for i, view in enumerate(views):
        tile = Image.fromarray((view.numpy() * 255).astype(np.uint8)).resize((TILE, TILE))
        canvas.paste(tile.convert("RGB"), (i * TILE, HEADER))
        name = "frontal" if i == 0 else "lateral" if len(views) == 2 else f"view {i + 1}"
        draw.text((i * TILE + 6, HEADER + TILE + 4), name, fill=(60, 60, 60), font=font)
    for letter, x in (("R", 4), ("L", TILE - 20)):  # radiographic convention: the patient's R on the left
        draw.rectangle((x, HEADER + 4, x + 15, HEADER + 21), fill="black")
        draw.text((x + 3, HEADER + 5), letter, fill="white", font=bold)
    x, y = TILE * len(views) + 12, HEADER
    for heading, lines in blocks:
        if heading:
            draw.text((x, y), heading, fill="black", font=bold)
            y += 20
        for line in lines:
            draw.text((x + 6, y), line, fill=(40, 40, 40), font=font)
            y += 16
        y += 8
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
