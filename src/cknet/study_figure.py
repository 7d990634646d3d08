"""Pictures of one study, for people.

`draw_study`: its views (the frontal one marked with the patient's R and L), the
generated and the reference report, the knowledge nodes its image patches and report
tokens attend to (equation 6), and the findings the graph stage detects. `cknet demo`
saves one as ``study.png``.

`draw_explanation`: word by word (`cknet.explain.Explanation`), where in each view the
word's attention went (a heat map over the radiograph) and the knowledge nodes it drew
on most. `cknet explain` saves one.
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


WORD_TILE = 150  # side of each view in an explanation row, in pixels
PUNCTUATION = {".", ",", ";", ":", "-", "(", ")"}


def draw_explanation(explanation: Any, images: torch.Tensor, config: Any, path: str | Path,
                     max_words: int = 12, top: int = 3, title: str = "") -> list[int]:
    """Save a picture of where the words of a report looked: a row per word, with the
    word, each view under a heat map of the word's attention (red: more), and the
    knowledge nodes the word drew on most.

    Args:
        explanation: from `cknet.explain.explain`.
        images: ``(V, 3, S, S)`` the study's preprocessed views (view 0 frontal).
        config: the model's `CKNetConfig` (its image normalisation).
        path: a PNG file.
        max_words: the first this many words that are not punctuation are drawn.
        top: knowledge nodes listed per word.
        title: a line above the rows (e.g. the study's id).

    Returns:
        The positions in ``explanation.words`` of the words drawn.
    """
    from PIL import Image, ImageDraw, ImageFont

    rows = [t for t, word in enumerate(explanation.words) if word not in PUNCTUATION][:max_words]
    views = images.shape[0]
    font, bold = ImageFont.load_default(size=13), ImageFont.load_default(size=15)
    label_width, nodes_width = 110, 230 if explanation.node_attention is not None else 0
    cell = label_width + WORD_TILE * views + nodes_width  # one word: its label, views, nodes
    columns = 2
    lines = (len(rows) + columns - 1) // columns
    canvas = Image.new("RGB", (cell * columns, HEADER + 20 + lines * (WORD_TILE + 6)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((10, 6), title or f"Where each word looked: {explanation.report[:90]}", fill="black", font=bold)
    names = ["frontal" if v == 0 else "lateral" if views == 2 else f"view {v + 1}" for v in range(views)]
    mean, std = config.image_mean[0], config.image_std[0]
    grey = (images[:, 0].cpu().float() * std + mean).clamp(0, 1).numpy()  # (V, S, S)
    for r, t in enumerate(rows):  # down the first column, then the next
        x0, y = (r // lines) * cell, HEADER + 20 + (r % lines) * (WORD_TILE + 6)
        draw.text((x0 + 10, y + WORD_TILE // 2 - 8), explanation.words[t], fill="black", font=bold)
        heat = explanation.patch_attention[t].float()  # (V, h, w), sums to 1 over the views
        heat = (heat / heat.max().clamp_min(1e-12)).numpy()
        for v in range(views):
            base = Image.fromarray((grey[v] * 255).astype(np.uint8)).resize((WORD_TILE, WORD_TILE))
            overlay = Image.fromarray((heat[v] * 255).astype(np.uint8)).resize(
                (WORD_TILE, WORD_TILE), Image.BILINEAR)
            dark = Image.new("L", overlay.size, 0)
            red = Image.merge("RGB", (overlay, dark, dark))
            canvas.paste(Image.blend(base.convert("RGB"), red, 0.45), (x0 + label_width + v * WORD_TILE, y))
        if explanation.node_attention is not None:
            weights = explanation.node_attention[t]
            for k, j in enumerate(weights.argsort(descending=True)[:top].tolist()):
                draw.text((x0 + label_width + views * WORD_TILE + 8, y + 10 + 18 * k),
                          f"{explanation.node_names[j]}  {float(weights[j]):.2f}", fill=(40, 40, 40),
                          font=font)
    for column in range((len(rows) + lines - 1) // max(lines, 1)):
        for v, name in enumerate(names):
            draw.text((column * cell + label_width + v * WORD_TILE + 6, HEADER), name, fill=(60, 60, 60),
                      font=font)
        for letter, dx in (("R", 2), ("L", WORD_TILE - 17)):  # the patient's sides on the frontal view
            x = column * cell + label_width + dx
            draw.rectangle((x, HEADER + 22, x + 15, HEADER + 39), fill="black")
            draw.text((x + 3, HEADER + 23), letter, fill="white", font=bold)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return rows
