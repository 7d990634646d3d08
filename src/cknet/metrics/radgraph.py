"""RadGraph (Jain et al., NeurIPS 2021): the entities and relations of a report, read by
the published DyGIE++ models, without the ``radgraph`` package (which fails under
transformers 5) and reading its weights with ``torch.load(weights_only=True)``.

A report is split into words (the package's rules for each model), each word embedded
as the mean of its BERT wordpieces' last-layer states h, and every span of at most
``max_span_width`` words gets

    g(i, j) = [h_i, h_j, w_{j-i}]          (endpoints, a width embedding),
    NER:      s_ner = [0, Linear(FFNN(g))]   (0: the null label; argmax),
    pruning:  s_m = Linear(FFNN(g)),
    relation: s_rel(a, b) = [0, Linear(FFNN([g_a, g_b, g_a ⊙ g_b]))
                                + s_m(a) + s_m(b)],

where FFNN is Linear-ReLU layers and the ⌈0.5·words⌉ spans of highest s_m are kept
(in text order) for relations. An entity is a span whose NER label is not null; a
relation links two kept spans whose label is not null, and is kept when both are
entities. `RadGraph.annotate` returns the package's annotation layout.

Their overlap with a reference's is `cknet.metrics.radgraph_f1`.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from cknet.devices import resolve_device
from cknet.metrics.radgraph_f1 import RadGraphScores, radgraph_f1
from cknet.persistence.weights import read_torch_file

DOWNLOAD = "hf download StanfordAIMI/RRG_scorers radgraph.tar.gz --local-dir D"
"""How to fetch the published RadGraph model on a machine with internet."""
_BERT_PREFIX = "_embedder.token_embedder_bert._matched_embedder.transformer_model."
_PUNCTUATION = re.compile(r"(?<! )(?=[/,:.!?()])|(?<=[/,:.!?()])(?! )")
_WORDPUNCT = re.compile(r"\w+|[^\w\s]+")


def split_words(text: str, dataset: str) -> list[str]:
    """A report's words as the ``radgraph`` package (0.1.18) splits them for a model.

    ``"radgraph"`` puts spaces around ``/ , : . ! ? ( )``; every other model (its test
    reads ``model_type == "radgraph-xl" or "modern-radgraph-xl"``, always true) splits
    words and runs of punctuation apart (nltk's ``wordpunct_tokenize``) after a few
    replacements. An empty report becomes ``"None"``, as in the package.

    Args:
        text: the report.
        dataset: the model's dataset name (its vocabulary's namespace prefix).
    """
    text = text or "None"
    if dataset == "radgraph":
        return _PUNCTUATION.sub(" ", text).split()
    for escaped, spaces in (("\\n", "  "), ("\\f", "  "), ("\\u2122", "      "), ("\n", " ")):
        text = text.replace(escaped, spaces)
    text = re.sub(r"\s+", " ", text.replace('\\"', "``"))
    words = " ".join(_WORDPUNCT.findall(text))
    for joined, apart in ((").", ") ."), ("%.", "% ."), (".'", ". '"), ("%,", "% ,"), ("%)", "% )")):
        words = words.replace(joined, apart)
    return words.split()


def _read_model(path: Path) -> tuple[dict[str, Any], dict[str, list[str]], dict[str, torch.Tensor]]:
    """config.json, the vocabulary files and weights.th of a folder or of the published .tar.gz."""
    files: dict[str, bytes | Path] = {}
    wanted = ("config.json", "weights.th")
    if path.is_dir():
        for file in path.rglob("*"):
            if file.is_file() and file.name == "weights.th":
                files[file.relative_to(path).as_posix()] = file  # read by torch.load itself
            elif file.is_file() and (file.name in wanted or file.parent.name == "vocabulary"):
                files[file.relative_to(path).as_posix()] = file.read_bytes()
    elif path.is_file() and tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                name = Path(member.name)
                if member.isfile() and (name.name in wanted or name.parent.name == "vocabulary"):
                    files[name.as_posix().removeprefix("./")] = archive.extractfile(member).read()
    else:
        raise FileNotFoundError(
            f"RadGraph model {path} is neither a folder nor a .tar.gz archive: fetch it with `{DOWNLOAD}` "
            f"and pass the archive or the folder it unpacks to"
        )

    def one(name: str) -> bytes | Path:
        found = [v for k, v in files.items() if Path(k).name == name and Path(k).parent.name != "vocabulary"]
        if len(found) != 1:
            raise FileNotFoundError(
                f"RadGraph model {path} has {len(found)} {name} files, expected 1 (the layout of "
                f"StanfordAIMI/RRG_scorers' radgraph.tar.gz: config.json, vocabulary/, weights.th)"
            )
        return found[0]

    try:
        config = json.loads(one("config.json"))
        weights = one("weights.th")
        state = read_torch_file(weights, "weights.th")
    except (ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"RadGraph model {path}: config.json or weights.th cannot be read ({err})") from None
    vocabulary = {}
    for name, data in files.items():
        if Path(name).parent.name == "vocabulary" and name.endswith("_labels.txt"):
            lines = data.decode("utf-8").split("\n")
            vocabulary[Path(name).stem] = lines[:-1] if lines and lines[-1] == "" else lines
    return config, vocabulary, state


def _linear_stack(state: dict[str, torch.Tensor], prefix: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    layers = []
    while f"{prefix}._linear_layers.{len(layers)}.weight" in state:
        at = f"{prefix}._linear_layers.{len(layers)}"
        layers.append((state[f"{at}.weight"], state[f"{at}.bias"]))
    if not layers:
        raise ValueError(f"RadGraph weights lack the feed-forward layers {prefix}._linear_layers.*")
    return layers


def _feedforward(x: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    for weight, bias in layers:
        x = F.relu(F.linear(x, weight, bias))
    return x


class RadGraph:
    """A published RadGraph model (``radgraph``, ``radgraph-xl``), read from local files.

    Args:
        model: the ``.tar.gz`` of ``StanfordAIMI/RRG_scorers`` (`DOWNLOAD`) or the folder
            it unpacks to (``config.json``, ``vocabulary/``, ``weights.th``); the weights
            are read with ``torch.load(weights_only=True)``.
        bert: the BERT the model was trained from, for its configuration and tokenizer
            (default: the hub id ``config.json`` names, from the Hugging Face cache; or
            a folder); its weights come from ``weights.th``.
        batch_size: reports per BERT pass.
        device: where to run (default: CUDA when available).

    Raises:
        FileNotFoundError: when the model's files are missing (naming the download).
        OSError: when the BERT configuration or tokenizer cannot be found locally.
        ValueError: when the weights do not have the layout of a RadGraph model.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        bert: str | os.PathLike[str] | None = None,
        batch_size: int = 16,
        device: str | torch.device | None = None,
    ) -> None:
        config, vocabulary, state = _read_model(Path(model).expanduser())
        ner = [name for name in vocabulary if name.endswith("__ner_labels")]
        if len(ner) != 1:
            raise ValueError(
                f"RadGraph model {model}: expected one vocabulary/*__ner_labels.txt, found {ner}"
            )
        self.dataset = ner[0].removesuffix("__ner_labels")
        self.entity_labels = vocabulary[ner[0]]
        self.relation_labels = vocabulary.get(f"{self.dataset}__relation_labels", [])
        embedder = config["model"]["embedder"]["token_embedders"]["bert"]
        self.max_length = embedder.get("max_length") or 512
        self.max_span_width = int(config["model"]["max_span_width"])
        self.spans_per_word = float(config["model"]["modules"]["relation"]["spans_per_word"])
        source = bert if bert is not None else embedder["model_name"]
        self.tokenizer, encoder = _bert(model, source, state)
        self.device = resolve_device(device)
        self.encoder = encoder.to(self.device).eval()
        heads = {k: v.to(self.device) for k, v in state.items() if not k.startswith(_BERT_PREFIX)}
        ns_ner, ns_rel = f"{self.dataset}__ner_labels", f"{self.dataset}__relation_labels"
        pruner = f"_relation._mention_pruners.{ns_rel}._scorer"
        scorers = {
            "width": "_endpoint_span_extractor._span_width_embedding",
            "ner": f"_ner._ner_scorers.{ns_ner}.1._module",
            "pruner": f"{pruner}.1._module",
            "relation": f"_relation._relation_scorers.{ns_rel}",
        }
        absent = [f"{name}.weight" for name in scorers.values() if f"{name}.weight" not in heads]
        if absent or not self.relation_labels:
            raise ValueError(
                f"RadGraph model {model}: weights.th lacks {absent} or the vocabulary "
                f"{ns_rel}.txt is missing: not a RadGraph (DyGIE++) model"
            )
        self.width_embedding = heads[f"{scorers['width']}.weight"]
        self.ner_layers = _linear_stack(heads, f"_ner._ner_scorers.{ns_ner}.0._module")
        self.pruner_layers = _linear_stack(heads, f"{pruner}.0._module")
        self.relation_layers = _linear_stack(heads, f"_relation._relation_feedforwards.{ns_rel}")
        self.ner_out, self.pruner_out, self.relation_out = (
            (heads[f"{scorers[name]}.weight"], heads[f"{scorers[name]}.bias"])
            for name in ("ner", "pruner", "relation")
        )
        self.batch_size = batch_size

    def _wordpieces(self, words: list[str]) -> tuple[list[int], list[tuple[int, int]]]:
        """Wordpiece ids (no special tokens) and each word's [first, last] wordpiece (-1 if none)."""
        ids: list[int] = []
        spans = []
        for word in words:
            pieces = self.tokenizer(word, add_special_tokens=False)["input_ids"]
            spans.append((len(ids), len(ids) + len(pieces) - 1) if pieces else (-1, -1))
            ids.extend(pieces)
        return ids, spans

    @torch.no_grad()
    def _word_embeddings(
        self, pieces: list[list[int]], spans: list[list[tuple[int, int]]]
    ) -> list[torch.Tensor]:
        """Per report ``(words, hidden)``: the mean of each word's wordpiece states, 0 without wordpieces.
        Reports longer than ``max_length - 2`` wordpieces are cut into segments, each
        encoded with its own ``[CLS]``/``[SEP]`` (as AllenNLP folds long sequences)."""
        width = self.max_length - 2
        cls, sep, pad = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id, self.tokenizer.pad_token_id
        segments = [(r, s) for r, ids in enumerate(pieces) for s in range(0, max(len(ids), 1), width)]
        states: list[list[torch.Tensor]] = [[] for _ in pieces]
        for start in range(0, len(segments), self.batch_size):
            rows = [
                [cls, *pieces[r][s : s + width], sep] for r, s in segments[start : start + self.batch_size]
            ]
            longest = max(map(len, rows))
            ids = torch.tensor([row + [pad] * (longest - len(row)) for row in rows], device=self.device)
            mask = torch.tensor(
                [[1] * len(row) + [0] * (longest - len(row)) for row in rows], device=self.device
            )
            hidden = self.encoder(input_ids=ids, attention_mask=mask)[0]
            for k, (r, _) in enumerate(segments[start : start + self.batch_size]):
                states[r].append(hidden[k, 1 : len(rows[k]) - 1])
        out = []
        for report_states, report_spans in zip(states, spans, strict=True):
            pieces_states = torch.cat(report_states)  # (wordpieces, hidden)
            first = torch.tensor([a for a, _ in report_spans], dtype=torch.long, device=self.device)
            last = torch.tensor([b for _, b in report_spans], dtype=torch.long, device=self.device)
            position = torch.arange(len(pieces_states), device=self.device)
            member = (position[None] >= first[:, None]) & (position[None] <= last[:, None])  # (words, pieces)
            counts = member.sum(1, keepdim=True).clamp_min(1)
            out.append(member.to(pieces_states.dtype) @ pieces_states / counts)
        return out

    def _graph(self, words: list[str], embedded: torch.Tensor) -> dict[str, Any]:
        """One report's annotation from its word embeddings ``(words, hidden)``."""
        n = len(words)
        pairs = [(i, j) for i in range(n) for j in range(i, min(i + self.max_span_width, n))]
        starts, ends = torch.tensor(pairs, dtype=torch.long, device=self.device).reshape(-1, 2).T
        spans = torch.cat([embedded[starts], embedded[ends], self.width_embedding[ends - starts]], dim=-1)
        ner = F.linear(_feedforward(spans, self.ner_layers), *self.ner_out)
        ner = torch.cat([ner.new_zeros(len(ner), 1), ner], dim=-1).argmax(-1)  # 0: null label
        mention = F.linear(_feedforward(spans, self.pruner_layers), *self.pruner_out).squeeze(-1)
        keep = max(math.ceil(n * self.spans_per_word), 1)
        kept = mention.topk(min(keep, len(mention))).indices.sort().values
        pair = torch.cat(
            [
                spans[kept][:, None].expand(-1, len(kept), -1),
                spans[kept][None].expand(len(kept), -1, -1),
                spans[kept][:, None] * spans[kept][None],
            ],
            dim=-1,
        )
        relation = F.linear(_feedforward(pair, self.relation_layers), *self.relation_out)
        relation = relation + mention[kept][:, None, None] + mention[kept][None, :, None]
        relation = torch.cat([relation.new_zeros(*relation.shape[:2], 1), relation], dim=-1).argmax(-1) - 1
        entity_rows = ner.nonzero().squeeze(-1).tolist()
        number = {row: str(k + 1) for k, row in enumerate(entity_rows)}
        entities = {
            number[row]: {
                "tokens": " ".join(words[int(starts[row]) : int(ends[row]) + 1]),
                "label": self.entity_labels[int(ner[row])],
                "start_ix": int(starts[row]),
                "end_ix": int(ends[row]),
                "relations": [],
            }
            for row in entity_rows
        }
        by_span = {(int(starts[row]), int(ends[row])): number[row] for row in entity_rows}
        for a, b in relation.ge(0).nonzero().tolist():
            source = by_span.get((int(starts[kept[a]]), int(ends[kept[a]])))
            target = by_span.get((int(starts[kept[b]]), int(ends[kept[b]])))
            if source is not None and target is not None:
                entities[source]["relations"].append([self.relation_labels[int(relation[a, b])], target])
        return {"text": " ".join(words), "entities": entities}

    def annotate(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """The entities and relations of each report.

        Args:
            texts: the reports.

        Returns:
            One annotation per report, in the ``radgraph`` package's layout:
            ``{"text": words, "entities": {"1": {"tokens", "label", "start_ix", "end_ix",
            "relations": [[relation, target entity id], ...]}, ...}}``.
        """
        words = [split_words(text, self.dataset) for text in texts]
        model_words = [[{"/.": ".", "/?": "?"}.get(w, w) for w in ws] for ws in words]
        pieces, spans = zip(*(self._wordpieces(ws) for ws in model_words), strict=True) if texts else ((), ())
        embedded = self._word_embeddings(list(pieces), list(spans))
        with torch.no_grad():
            return [self._graph(ws, e) for ws, e in zip(words, embedded, strict=True)]

    def score(
        self, references: Sequence[str], predictions: Sequence[str], lowercase: bool = False
    ) -> RadGraphScores:
        """RadGraph F1 of each prediction against its reference.

        Args:
            references: the reference reports.
            predictions: the generated reports, in the same order.
            lowercase: see `radgraph_f1`.

        Returns:
            The per-study rewards (`RadGraphScores`); a pair with an empty text scores 0.

        Raises:
            ValueError: when the two lists differ in length.
        """
        if len(references) != len(predictions):
            raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
        graphs = self.annotate(list(references) + list(predictions))
        scores = np.zeros((len(references), 4))
        for n, (reference, prediction) in enumerate(zip(references, predictions, strict=True)):
            if reference and prediction:
                scores[n] = radgraph_f1(graphs[len(references) + n], graphs[n], lowercase)
        return RadGraphScores(*scores.T)


def _bert(model: str | os.PathLike[str], source: str | os.PathLike[str], state: dict[str, torch.Tensor]):
    """The tokenizer and the BERT encoder of a RadGraph model: the architecture of
    ``source`` (local or cached, offline; sizes checked), the weights from ``state``."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from cknet.persistence.hub import check_hf_config_sizes, load_hf_pretrained

    what = f"BERT of the RadGraph model {model}"
    tokenizer = load_hf_pretrained(AutoTokenizer, source, what, offline=True)
    encoder_config = check_hf_config_sizes(load_hf_pretrained(AutoConfig, source, what, offline=True), source)
    encoder = AutoModel.from_config(encoder_config, trust_remote_code=False)
    weights = {k.removeprefix(_BERT_PREFIX): v for k, v in state.items() if k.startswith(_BERT_PREFIX)}
    missing, unexpected = encoder.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith("pooler.")]
    unexpected = [k for k in unexpected if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(
            f"RadGraph model {model}: weights.th does not fit the BERT of {source!r} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return tokenizer, encoder
