"""BERTScore (Zhang et al., ICLR 2020) from a local model, as the ``bert-score`` package
computes it, so that cknet's numbers equal the leaderboards' without that package.

For a reference x and a candidate x̂ with contextual embeddings (the output of layer L
of the model, each token's vector L2-normalised), every candidate token is matched to
its most similar reference token and the other way round:

    P = Σ_{j∈x̂} w(x̂_j) max_{i∈x} x_iᵀx̂_j / Σ_j w(x̂_j),
    R = Σ_{i∈x} w(x_i) max_{j∈x̂} x_iᵀx̂_j / Σ_i w(x_i),    F = 2PR / (P + R),

the maxima running over every position, the special tokens ``<s>``/``</s>`` (``[CLS]``/
``[SEP]``) included, whose weights are 0. The weights w are 1, or with ``idf=True`` the
inverse document frequency of the token over the references,
``log((M + 1) / (df + 1))``. Rescaled with a baseline b (one per P, R, F, measured by
the package's authors on Common Crawl): ``(s - b) / (1 - b)``. An empty candidate or
reference scores 0 before rescaling. Text is encoded as the package does: stripped,
with special tokens, byte-level BPE models with a prefix space, truncated to the
model's maximum length.

The ReXrank and RadCliQ setting is ``distilroberta-base``, layer 5, baseline rescaling,
no idf (`REXRANK`): F = 0.8473 before rescaling is 0 after.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cknet.devices import resolve_device

LAYERS = {
    "distilroberta-base": 5,
    "roberta-base": 10,
    "roberta-large": 17,
    "bert-base-uncased": 9,
    "microsoft/deberta-xlarge-mnli": 40,
}
"""The layer the ``bert-score`` package uses by default for a model (its ``model2layers``)."""
BASELINES = {("distilroberta-base", 5): (0.84732, 0.84759504, 0.8473319)}
"""(model, layer) -> the P, R, F baselines of ``bert-score`` 0.3.13 (``rescale_baseline/en``)."""
REXRANK = {"model": "distilroberta-base", "num_layers": 5, "idf": False, "rescale_with_baseline": True}
_BYTE_LEVEL = ("roberta", "gpt2", "longformer", "bart")


@dataclass
class BERTScores:
    """Per-pair BERTScores.

    Attributes:
        precision: ``(n,)``.
        recall: ``(n,)``.
        f1: ``(n,)``.
    """

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray


def model_name(model: str | os.PathLike[str]) -> str:
    """The hub name of a model given by hub id, folder, or Hugging Face cache snapshot.

    Args:
        model: e.g. ``"distilroberta-base"``, ``"/models/distilroberta-base"`` or
            ``".../models--distilroberta-base/snapshots/<hash>"``.
    """
    path = Path(model)
    cached = [p for p in path.parts if p.startswith("models--")]
    if cached:
        return cached[-1].removeprefix("models--").replace("--", "/")
    return str(model) if not path.is_dir() else path.name


class BERTScorer:
    """BERTScore with a local model.

    Args:
        model: a local folder (``config.json``, weights, tokenizer files), or a hub id
            already in the Hugging Face cache (``hf download distilroberta-base``).
        num_layers: the layer whose output is used (default: the package's choice for
            the model, `LAYERS`).
        idf: weight tokens by their inverse document frequency over the references.
        rescale_with_baseline: rescale with the model's baseline (`BASELINES`, or
            ``baseline``).
        baseline: the P, R, F baselines for another model or layer.
        batch_size: sentences per forward pass.
        device: where to run (default: CUDA when available).

    Raises:
        ValueError: when the layer or the baseline is unknown for this model, naming what to pass.
        OSError: when the model is neither a folder nor in the cache (naming the download command).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "distilroberta-base",
        num_layers: int | None = None,
        idf: bool = False,
        rescale_with_baseline: bool = True,
        baseline: Sequence[float] | None = None,
        batch_size: int = 64,
        device: str | torch.device | None = None,
    ) -> None:
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        from cknet.persistence.hub import load_hf_pretrained

        name = model_name(model)
        self.num_layers = num_layers if num_layers is not None else LAYERS.get(name)
        if self.num_layers is None:
            raise ValueError(
                f"no default layer for the model {name!r}: pass num_layers (the bert-score "
                f"package's choices: {LAYERS})"
            )
        self.baseline = None
        if rescale_with_baseline:
            found = baseline if baseline is not None else BASELINES.get((name, self.num_layers))
            if found is None:
                raise ValueError(
                    f"no baseline for {name!r} at layer {self.num_layers}: pass baseline=(P, R, "
                    f"F) (bert-score's rescale_baseline/en/{name}.tsv) or "
                    f"rescale_with_baseline=False"
                )
            self.baseline = np.asarray(found, dtype=np.float64)
        what = f"BERTScore model ({name})"
        config = load_hf_pretrained(AutoConfig, model, what, offline=True)
        extra = {"add_prefix_space": True} if config.model_type in _BYTE_LEVEL else {}
        self.tokenizer = load_hf_pretrained(AutoTokenizer, model, what, **extra, offline=True)
        encoder = load_hf_pretrained(AutoModel, model, what, offline=True)
        layers = encoder.encoder.layer
        if not 0 <= self.num_layers <= len(layers):
            raise ValueError(f"num_layers must be in 0..{len(layers)} for {name}, got {self.num_layers}")
        encoder.encoder.layer = layers[: self.num_layers]  # what the package does: drop the layers above L
        self.device = resolve_device(device)
        self.model = encoder.to(self.device).eval()
        self.idf, self.batch_size, self.name = idf, batch_size, name

    def encode(self, text: str) -> list[int]:
        """A sentence's token ids as the ``bert-score`` package builds them.

        Args:
            text: the sentence or report.
        """
        text = text.strip()
        if not text:
            return [self.tokenizer.cls_token_id, self.tokenizer.sep_token_id]
        return self.tokenizer.encode(
            text, add_special_tokens=True, truncation=True, max_length=self.tokenizer.model_max_length
        )

    def _weights(self, encoded: list[list[int]], idf_texts: Sequence[str], idf: bool) -> list[np.ndarray]:
        special = {self.tokenizer.cls_token_id, self.tokenizer.sep_token_id}
        if idf:
            counts = Counter(i for text in idf_texts for i in set(self.encode(text)))
            total = len(idf_texts)
            value = {i: math.log((total + 1) / (c + 1)) for i, c in counts.items()}
            unseen = math.log(total + 1)
            weight = [[0.0 if i in special else value.get(i, unseen) for i in ids] for ids in encoded]
        else:
            weight = [[0.0 if i in special else 1.0 for i in ids] for ids in encoded]
        return [np.asarray(w, dtype=np.float64) for w in weight]

    @torch.no_grad()
    def _embed(self, encoded: list[list[int]]) -> list[torch.Tensor]:
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out: list[torch.Tensor] = [torch.empty(0)] * len(encoded)
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for k, i in enumerate(rows):
                ids[k, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[k, : len(encoded[i])] = 1
            hidden = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))[0]
            hidden = torch.nn.functional.normalize(hidden.double(), dim=-1).cpu()
            for k, i in enumerate(rows):
                out[i] = hidden[k, : len(encoded[i])]
        return out

    def score(
        self,
        references: Sequence[str],
        predictions: Sequence[str],
        idf_references: Sequence[str] | None = None,
        idf: bool | None = None,
    ) -> BERTScores:
        """BERTScore of each prediction against its reference.

        Args:
            references: the reference reports.
            predictions: the generated reports, in the same order.
            idf_references: the texts the idf weights are counted over (default: ``references``).
            idf: weight by idf or not, this once (default: the scorer's setting).

        Returns:
            Per-pair precision, recall and F1 (rescaled when the scorer rescales).

        Raises:
            ValueError: when the two lists differ in length.
        """
        if len(references) != len(predictions):
            raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
        refs, hyps = [self.encode(t) for t in references], [self.encode(t) for t in predictions]
        idf_texts = list(idf_references if idf_references is not None else references)
        idf = self.idf if idf is None else idf
        ref_w, hyp_w = self._weights(refs, idf_texts, idf), self._weights(hyps, idf_texts, idf)
        embeddings = self._embed(refs + hyps)
        scores = np.zeros((len(refs), 3))
        for n in range(len(refs)):
            if len(refs[n]) <= 2 or len(hyps[n]) <= 2:  # an empty text: only its special tokens
                continue
            similarity = (embeddings[len(refs) + n] @ embeddings[n].T).numpy()  # (hyp, ref)
            # a side whose weights sum to 0 (idf: every token in every reference, e.g. ".")
            # scores 0, as bert-score fills it
            hyp_total, ref_total = hyp_w[n].sum(), ref_w[n].sum()
            precision = float(similarity.max(axis=1) @ hyp_w[n] / hyp_total) if hyp_total > 0 else 0.0
            recall = float(similarity.max(axis=0) @ ref_w[n] / ref_total) if ref_total > 0 else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            scores[n] = precision, recall, f1
        if self.baseline is not None:
            scores = (scores - self.baseline) / (1 - self.baseline)
        return BERTScores(scores[:, 0], scores[:, 1], scores[:, 2])
