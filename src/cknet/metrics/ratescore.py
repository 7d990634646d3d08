"""RaTEScore (Zhao et al., EMNLP 2024): entity-aware similarity of a report and its
reference, computed as the ``RaTEScore`` package (0.6.0) computes it, from local models.

Each report is split into sentences (medspaCy's PyRuSH rules, as the package; or a
function of yours), a token classifier tags each sentence's wordpieces with B-/I- tags
of five entity types (ABNORMALITY, NON-ABNORMALITY, DISEASE, NON-DISEASE, ANATOMY),
and each entity, as text, is embedded by an encoder (its ``[CLS]`` state, at most 30
tokens). For the entities e_i of one report and ê_j of the other, with types t and t̂,

    S(e → ê) = Σ_i s_i w(t_i, t̂_{j*}) n(t_i, t̂_{j*}) / Σ_i w(t_i, t̂_{j*}),
    s_i = max_j cos(e_i, ê_j),  j* = argmax_j cos(e_i, ê_j),

where w is the fitted affinity between two types (`AFFINITY`, ``"long"`` or
``"short"``) and n is the negation weight for a finding matched to its negation
(e.g. DISEASE with NON-DISEASE), 1 otherwise. RaTEScore is the harmonic mean of
S(reference → candidate) and S(candidate → reference); 0.5 when either report has no
entity.

The package is not used: it runs on the GPU unless told otherwise, has no local-only
mode for its defaults, and imports medspaCy at import time; the tagging rules below
(how B-/I- tags make entities) are the package's, quirks included.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from cknet.devices import resolve_device

NER_MODEL = "Angelakeke/RaTE-NER-Deberta"
EMBEDDING_MODEL = "FremyCompany/BioLORD-2023-C"
_TYPES = ("abnormality", "anatomy", "disease", "non-abnormality", "non-disease")
_LONG = (
    0.4276119164393705,
    0.6240929990607657,
    0.0034478181112993847,
    0.5431049700217344,
    0.27005425386213877,
    0.7487824274337533,
    0.2856134859160784,
    0.4592143222158069,
    0.02097055139911715,
    0.00013736314126696204,
    0.8396510075734789,
    0.9950209388542061,
    0.8460555030578727,
    0.9820689020512646,
    0.3789136708096537,
    0.16546764653692908,
    0.018670610691852826,
    0.719397354576018,
    0.0009357166071730684,
    0.0927333564267591,
    0.7759420231214385,
    0.1839139293714062,
    0.10073046076318157,
    0.03860183811876373,
    0.34065681486566446,
)
_SHORT = (
    0.4070293318365468,
    0.6952639610605605,
    0.28342529466226446,
    0.9479148658006686,
    0.23875064111146294,
    0.5829759950441763,
    0.7709590751917746,
    0.0006059634829551632,
    0.794672584951181,
    0.27982942400798977,
    0.8840397619834857,
    0.9637659445696822,
    0.19018958438059513,
    0.6962283914800402,
    0.943727057946997,
    0.1712744286898638,
    0.4485149671497294,
    0.00045065329822896076,
    0.0007887930317199857,
    0.8555432840895761,
    0.9555801066212176,
    0.13122106162635216,
    0.6072996585919443,
    0.05650711141169969,
    0.3214769399791204,
)
AFFINITY = {
    name: {
        **{(a.upper(), b.upper()): v for (a, b), v in zip([(a, b) for a in _TYPES for b in _TYPES], values)},
        ("NEG", "WEIGHT"): neg,
    }
    for name, values, neg in (("long", _LONG, 0.8716553966489615), ("short", _SHORT, 0.3611577852354489))
}
"""The package's fitted type affinities (``DEFAULT_MATRIX_LONG``/``_SHORT``): (reference
type, matched type) -> weight, and ``("NEG", "WEIGHT")`` the negation weight."""
NEGATED = {
    ("NON-DISEASE", "DISEASE"),
    ("NON-ABNORMALITY", "ABNORMALITY"),
    ("DISEASE", "NON-DISEASE"),
    ("ABNORMALITY", "NON-ABNORMALITY"),
    ("NON-DISEASE", "ABNORMALITY"),
    ("NON-ABNORMALITY", "DISEASE"),
    ("DISEASE", "NON-ABNORMALITY"),
    ("ABNORMALITY", "NON-DISEASE"),
}
"""Type pairs that are a finding and its negation: weighted by the negation weight."""

Entity = tuple[str, str]
"""An entity's text and type."""


def period_sentences(text: str) -> list[str]:
    """Sentences split after ``.``, ``!`` or ``?`` followed by a space, and at line
    breaks: a splitter without medspaCy, close to PyRuSH on plain report text but not
    equal to it (PyRuSH keeps e.g. ``"1. No acute process."`` together).

    Args:
        text: the report.
    """
    return re.split(r"(?<=[.!?])\s+|\n+", text)


SENTENCE_SPLITTERS = ("medspacy", "periods")


def medspacy_sentences() -> Callable[[str], list[str]]:
    """The package's sentence splitter: medspaCy's PyRuSH rules (``pip install
    "cknet[ratescore]"``).

    Raises:
        ImportError: without medspaCy, naming what to install or pass instead.
    """
    try:
        import medspacy
    except ImportError as err:
        raise ImportError(
            "RaTEScore splits reports into sentences with medspaCy, as the RaTEScore package does: "
            "`pip install \"cknet[ratescore]\"` (medspaCy; it pins spaCy 3.7 and numpy < 2), or "
            "--ratescore-sentences periods / split_sentences=your_function"
        ) from err
    from loguru import logger  # PyRuSH's logging, a line per token at DEBUG

    logger.disable("PyRuSH")
    nlp = medspacy.load(medspacy_enable=["medspacy_pyrush"])
    return lambda text: [str(s) for s in nlp(text).sents]


def tagged_entities(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Entity spans (first, last token, type) from one sentence's wordpieces and their
    tags, by the package's rules (``post_process``): a B- followed by I- opens an entity
    that the next B- or O closes (an I- closes it at that I-); a B- followed by B- or O
    is an entity of its own; an entity still open at the end runs to the last wordpiece
    before ``[SEP]``; ``[CLS]``/``[SEP]`` are skipped; the last wordpiece opens nothing.

    Args:
        tokens: the sentence's wordpieces, special tokens included.
        tags: their tags (``"O"``, ``"B-TYPE"``, ``"I-TYPE"``).
    """
    spans = []
    start = end = kind = None
    for i, (token, tag) in enumerate(zip(tokens, tags[: len(tokens)], strict=False)):
        if token in ("[CLS]", "[SEP]") or tag == "O" or i >= len(tags) - 1:
            continue
        following = tags[i + 1]
        if tag.startswith("B-"):
            if following.startswith("I-"):
                start, kind = i, tag[2:]
            elif following.startswith("B-"):
                spans.append((i, i, tag[2:]))
                start, end, kind = i, i, tag[2:]
            elif following.startswith("O"):
                spans.append((i, i, tag[2:]))
                start = end = kind = None
        elif tag.startswith("I-"):
            if following.startswith("B-"):
                end = i
                if start is not None:
                    spans.append((start, end, kind))
                start, kind = i, tag[2:]
            elif following.startswith("O"):
                end = i
                if start is not None:
                    spans.append((start, end, kind))
                start = end = kind = None
    if start is not None and end is None:
        spans.append((start, len(tokens) - 2, kind))
    return spans


def directed_score(
    source: torch.Tensor,
    target: torch.Tensor,
    source_types: Sequence[str],
    target_types: Sequence[str],
    affinity: dict[tuple[str, str], float],
) -> float:
    """S(source → target) of the module docstring.

    Args:
        source: ``(m, d)`` the source entities' embeddings.
        target: ``(k, d)`` the target entities' embeddings.
        source_types: the m types.
        target_types: the k types.
        affinity: one of `AFFINITY`.
    """
    similarity = F.normalize(source, dim=1) @ F.normalize(target, dim=1).T  # (m, k)
    best, match = similarity.max(dim=1)
    negation = affinity[("NEG", "WEIGHT")]
    matched = [target_types[j] for j in match.tolist()]
    weight = np.array([affinity[(t, m)] for t, m in zip(source_types, matched, strict=True)])
    kind = np.array(
        [negation if (t, m) in NEGATED else 1.0 for t, m in zip(source_types, matched, strict=True)]
    )
    total = weight.sum()
    return float((best.double().numpy() * weight * kind).sum() / total) if total else 0.0


class RaTEScorer:
    """RaTEScore from local models.

    Args:
        ner_model: the entity tagger (a token classifier): a folder, or a hub id in the
            Hugging Face cache (default `NER_MODEL`, ``hf download
            Angelakeke/RaTE-NER-Deberta``).
        embedding_model: the entity encoder (default `EMBEDDING_MODEL`).
        affinity: ``"long"`` (the package's default) or ``"short"``, or a mapping in the
            layout of `AFFINITY`'s values.
        split_sentences: report -> sentences (default: medspaCy's PyRuSH, as the package).
        batch_size: sentences (and entities) per forward pass; the package tags one
            sentence at a time: the same tags up to float rounding, slower.
        device: where to run (default: CUDA when available).

    Raises:
        OSError: when a model is neither a folder nor in the cache (naming the download).
        ImportError: without ``split_sentences`` and without medspaCy.
    """

    def __init__(
        self,
        ner_model: str | os.PathLike[str] = NER_MODEL,
        embedding_model: str | os.PathLike[str] = EMBEDDING_MODEL,
        affinity: str | dict[tuple[str, str], float] = "long",
        split_sentences: Callable[[str], list[str]] | None = None,
        batch_size: int = 32,
        device: str | torch.device | None = None,
    ) -> None:
        from transformers import AutoModel, AutoModelForTokenClassification, AutoTokenizer

        from cknet.persistence.hub import load_hf_pretrained

        self.weights = AFFINITY[affinity] if isinstance(affinity, str) else dict(affinity)
        self.split_sentences = split_sentences or medspacy_sentences()
        self.batch_size = batch_size
        self.device = resolve_device(device)
        tagger_name = "RaTEScore entity tagger"
        self.tokenizer = load_hf_pretrained(AutoTokenizer, ner_model, tagger_name, offline=True)
        tagger = load_hf_pretrained(AutoModelForTokenClassification, ner_model, tagger_name, offline=True)
        self.tagger = tagger.to(self.device).eval()
        self.tags = tagger.config.id2label
        self.encoder_tokenizer = load_hf_pretrained(AutoTokenizer, embedding_model, "RaTEScore encoder",
                                                    offline=True)
        encoder = load_hf_pretrained(AutoModel, embedding_model, "RaTEScore encoder", offline=True)
        self.encoder = encoder.to(self.device).eval()

    def sentences(self, text: str) -> list[str]:
        """A report's sentences as the package keeps them: stripped, with a word and at
        least 3 characters.

        Args:
            text: the report.
        """
        kept = (s.strip() for s in self.split_sentences(text))
        return [s for s in kept if s.split() and len(s) >= 3]

    @torch.no_grad()
    def entities(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Each report's entities (text, type), sentence by sentence; the sentences of all
        reports are tagged in batches of ``batch_size``, longest first.

        Args:
            texts: the reports.
        """
        sentences = [(n, s) for n, text in enumerate(texts) for s in self.sentences(text)]
        encoded = [self.tokenizer(s, max_length=512, truncation=True)["input_ids"] for _, s in sentences]
        tags: list[list[str]] = [[] for _ in sentences]
        order = sorted(range(len(sentences)), key=lambda k: -len(encoded[k]))
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = len(encoded[rows[0]])
            ids = torch.tensor([encoded[k] + [pad] * (width - len(encoded[k])) for k in rows])
            mask = torch.tensor([[1] * len(encoded[k]) + [0] * (width - len(encoded[k])) for k in rows])
            labels = self.tagger(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            for k, row in zip(rows, labels.argmax(-1).tolist(), strict=True):
                tags[k] = [self.tags[i] for i in row[: len(encoded[k])]]
        found: list[list[Entity]] = [[] for _ in texts]
        for (n, _), ids, sentence_tags in zip(sentences, encoded, tags, strict=True):
            tokens = self.tokenizer.convert_ids_to_tokens(ids)
            found[n] += [
                (self.tokenizer.convert_tokens_to_string(tokens[a : b + 1]), kind)
                for a, b, kind in tagged_entities(tokens, sentence_tags)
            ]
        return found

    @torch.no_grad()
    def embed(self, entities: Sequence[Entity]) -> torch.Tensor:
        """``(n, d)`` the entities' embeddings (the encoder's ``[CLS]`` state, float32, CPU),
        in batches of ``batch_size``.

        Args:
            entities: (text, type) pairs.
        """
        texts = [text for text, _ in entities]
        out = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self.encoder_tokenizer(
                texts[start : start + self.batch_size],
                truncation=True,
                padding=True,
                max_length=30,
                return_tensors="pt",
            )
            out.append(self.encoder(**encoded.to(self.device)).last_hidden_state[:, 0].float().cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def score(self, references: Sequence[str], predictions: Sequence[str]) -> np.ndarray:
        """RaTEScore of each prediction against its reference.

        Args:
            references: the reference reports.
            predictions: the generated reports, in the same order.

        Returns:
            ``(n,)`` scores in [0, 1] (0.5 where either report has no entity).

        Raises:
            ValueError: when the two lists differ in length.
        """
        if len(references) != len(predictions):
            raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
        found = self.entities(list(references) + list(predictions))
        everything = [entity for report in found for entity in report]
        vectors = torch.split(self.embed(everything), [len(report) for report in found]) if everything else []
        scores = np.full(len(references), 0.5)
        for n in range(len(references)):
            ref, hyp = found[n], found[len(references) + n]
            if not ref or not hyp:
                continue
            ref_vectors, hyp_vectors = vectors[n], vectors[len(references) + n]
            ref_types, hyp_types = [t for _, t in ref], [t for _, t in hyp]
            forward = directed_score(ref_vectors, hyp_vectors, ref_types, hyp_types, self.weights)
            backward = directed_score(hyp_vectors, ref_vectors, hyp_types, ref_types, self.weights)
            total = forward + backward
            scores[n] = 2 * forward * backward / total if total else 0.0
        return scores
