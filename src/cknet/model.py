"""`CKNet`: the cross-modal knowledge-driven network of Kang et al. (BIBM 2023).

The model composes (Fig. 2 of the paper):

1. `VisualExtractor` -- patch features v_s, equation (1);
2. the knowledge matrix G -- node embeddings of the frozen, pretrained
   `KnowledgeGraphModel`, per study (``knowledge_source="image"``) or averaged over the
   training split (``"static"``), a trainable random matrix of the same shape
   (``"random"``, the +MEN ablation) or nothing (``"none"``, the Base ablation);
3. `TokenEmbedding` -- textual features v_t (learned embeddings), or
   `PretrainedTextEncoder` -- v_t from a pretrained language model such as the paper's
   BioClinicalBERT, run causally (``config.text_encoder``);
4. `CrossModalKnowledgeMatrix` -- one instance shared by both modalities, giving k_s and
   k_t, equations (4)-(9);
5. `CKNetTransformer` -- encoder over k_s and decoder over k_t, equations (10)-(11),
   followed by a linear layer and softmax over the vocabulary.

The same knowledge source is used in training and in generation.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cknet.config import CKNetConfig
from cknet.graph import KnowledgeGraph
from cknet.io import check_state_dict, write_atomic, write_text_atomic
from cknet.model_card import model_card
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.modules.knowledge_matrix import CrossModalKnowledgeMatrix, KnowledgeProjection
from cknet.modules.language_model import PretrainedTextEncoder
from cknet.modules.text import TokenEmbedding
from cknet.modules.transformer import CKNetTransformer, DecoderCache
from cknet.modules.visual import VisualExtractor
from cknet.pretrained_tokenizer import FILES_DIR as TEXT_ENCODER_DIR
from cknet.pretrained_tokenizer import PretrainedReportTokenizer
from cknet.tokenizer import ReportTokenizer, ReportTokenizerBase, load_tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
GRAPH_FILE = "graph.json"
CARD_FILE = "README.md"
IGNORE_INDEX = -100
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
logger = logging.getLogger(__name__)


def _warn_untrained() -> None:
    logger.warning(
        "CKNet is built without a pretrained graph_model: its knowledge matrix comes from "
        "an untrained knowledge-graph stage. Pretrain one with cknet.training.GraphPretrainer "
        "(or `cknet pretrain-graph`) and pass it as graph_model."
    )


@dataclass
class CKNetOutput:
    """Output of `CKNet.forward`.

    Attributes:
        logits: ``(B, T, vocab_size)``; ``logits[:, t]`` scores the token at ``t + 1``.
        loss: masked cross-entropy over the predicted positions, when labels were given.
    """

    logits: torch.Tensor
    loss: torch.Tensor | None = None


class ImageEncoding(NamedTuple):
    """What the decoder needs from a batch of studies, computed once per study.

    Attributes:
        memory: ``(B, S, d_model)`` encoder output over the knowledge-fused patches
            (None once a primed `DecoderCache` holds its projections).
        knowledge: the knowledge matrix projected by W_k and W_g (per study or shared),
            or None without a knowledge matrix.
    """

    memory: torch.Tensor | None
    knowledge: KnowledgeProjection | None

    def select(self, index: torch.Tensor, with_memory: bool = True) -> ImageEncoding:
        """Rows of the batch, e.g. each study repeated once per beam.

        Args:
            index: ``(R,)`` row indices into the batch.
            with_memory: keep the memory rows too (False when a primed cache holds it).

        Returns:
            The encoding of the R rows.
        """
        knowledge = self.knowledge
        if knowledge is not None and knowledge.keys.dim() == 4:
            knowledge = KnowledgeProjection(
                knowledge.keys.index_select(0, index), knowledge.values.index_select(0, index)
            )
        memory = None
        if with_memory and self.memory is not None:
            memory = self.memory.index_select(0, index)
        return ImageEncoding(memory, knowledge)


@dataclass
class GeneratedReport:
    """One generated report.

    Attributes:
        text: the report, words joined by spaces.
        token_ids: its ids without ``<bos>``, up to and including ``<eos>``.
        score: summed log-probability divided by ``length ** length_penalty``.
    """

    text: str
    token_ids: list[int]
    score: float


def _strip(ids: list[int], tokenizer: ReportTokenizerBase) -> list[int]:
    """Ids after ``<bos>`` up to and including the first ``<eos>``."""
    body = ids[1:]
    return body[: body.index(tokenizer.eos_id) + 1] if tokenizer.eos_id in body else body


class CKNet(nn.Module):
    """Cross-modal knowledge-driven network for radiology report generation.

    Args:
        config: hyper-parameters; ``config.vocab_size == 0`` takes the tokenizer's size.
        tokenizer: the report tokenizer; its vocabulary defines the output layer. A
            `ReportTokenizer` for ``text_encoder="embedding"``, else a
            `PretrainedReportTokenizer` of the same language model.
        graph: the knowledge graph (default: the graph model's, else
            `KnowledgeGraph.openi40()`); it sets the number of knowledge vectors (N + 1
            with the global node) also for the ``"random"`` source.
        graph_model: the pretrained knowledge-graph stage (a `KnowledgeGraphModel` or
            its directory) for the ``"image"`` and ``"static"`` sources; it is frozen.
            Without it those sources start from an untrained graph model (a warning
            says so), which only makes sense for tests or when loading a saved CKNet.
        text_encoder: a `PretrainedTextEncoder` built beforehand, used instead of loading
            ``config.text_encoder`` (`from_pretrained` passes one built from the saved
            architecture, whose weights then come from ``model.safetensors``).

    Raises:
        ValueError: if the config and the tokenizer disagree (vocabulary size, dataset,
            maximum length, kind of tokenizer), the graph model does not fit the config
            or the graph, or the text encoder does not fit the tokenizer.
        OSError: when ``config.text_encoder`` names a language model that is neither a
            local folder nor downloadable.

    Example:
        >>> model = CKNet(CKNetConfig.iu_xray(), tokenizer=tok)        # doctest: +SKIP
        >>> out = model(images, input_ids, labels=input_ids)            # doctest: +SKIP
        >>> out.loss.backward()                                         # doctest: +SKIP
        >>> model.generate(images)                                      # doctest: +SKIP
    """

    def __init__(
        self,
        config: CKNetConfig,
        tokenizer: ReportTokenizerBase,
        graph: KnowledgeGraph | None = None,
        graph_model: KnowledgeGraphModel | str | os.PathLike[str] | None = None,
        text_encoder: PretrainedTextEncoder | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(config, CKNetConfig):
            raise ValueError(f"config must be a CKNetConfig, got {type(config).__name__}")
        config.validate()
        if config.pretrained_text_encoder and not isinstance(tokenizer, PretrainedReportTokenizer):
            raise ValueError(
                f"config.text_encoder is the language model {config.text_encoder!r}: the tokenizer "
                f"must be its own, PretrainedReportTokenizer.from_pretrained({config.text_encoder!r}), "
                f"not a {type(tokenizer).__name__}"
            )
        if not config.pretrained_text_encoder and not isinstance(tokenizer, ReportTokenizer):
            raise ValueError(
                f"tokenizer must be a ReportTokenizer for text_encoder='embedding', got "
                f"{type(tokenizer).__name__} (set config.text_encoder to use a language model's tokenizer)"
            )
        if text_encoder is not None and not config.pretrained_text_encoder:
            raise ValueError("a text_encoder module was given but config.text_encoder is 'embedding'")
        if config.vocab_size == 0:
            config = dataclasses.replace(config, vocab_size=tokenizer.vocab_size)
        if config.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                f"config.vocab_size is {config.vocab_size} but the tokenizer has "
                f"{tokenizer.vocab_size} tokens"
            )
        if config.dataset != tokenizer.dataset:
            raise ValueError(
                f"config.dataset is {config.dataset!r} but the tokenizer cleans reports "
                f"as {tokenizer.dataset!r}"
            )
        if config.max_length != tokenizer.max_length:
            raise ValueError(
                f"config.max_length is {config.max_length} but tokenizer.max_length is "
                f"{tokenizer.max_length}; build both with the same value"
            )
        if isinstance(graph_model, (str, os.PathLike)):
            graph_model = KnowledgeGraphModel.from_pretrained(graph_model)
        if graph_model is not None:
            if config.knowledge_source not in ("image", "static"):
                raise ValueError(
                    f"a graph_model is used by the 'image' and 'static' knowledge sources, "
                    f"not {config.knowledge_source!r}"
                )
            if graph is not None and graph != graph_model.graph:
                raise ValueError("graph differs from the graph the graph_model was trained on")
            if graph_model.d_knowledge != config.d_knowledge:
                raise ValueError(
                    f"the graph_model's node embeddings have size {graph_model.d_knowledge} but "
                    f"config.d_knowledge is {config.d_knowledge}"
                )
            if config.knowledge_source == "static" and not graph_model.has_static_knowledge:
                raise ValueError(
                    "the graph_model has no static knowledge matrix: compute it with "
                    "GraphPretrainer (or KnowledgeGraphModel.set_static_knowledge)"
                )
            graph = graph_model.graph
        self.config = config
        self.tokenizer = tokenizer
        self.graph = graph if graph is not None else KnowledgeGraph.openi40()
        num_knowledge = self.graph.num_nodes + 1
        if config.knowledge_source != "none" and config.top_k > num_knowledge:
            raise ValueError(
                f"config.top_k ({config.top_k}) exceeds the {num_knowledge} knowledge vectors "
                f"of graph {self.graph.name!r} (its {self.graph.num_nodes} nodes + the global node)"
            )

        self.visual_extractor = VisualExtractor(
            config.backbone, config.d_model, config.backbone_weights, config.dropout
        )
        self.graph_model: KnowledgeGraphModel | None = None
        self.knowledge_matrix: CrossModalKnowledgeMatrix | None = None
        # The shared knowledge matrix of the "static" (frozen buffer) and "random"
        # (trainable parameter) sources; None for the others.
        self.knowledge_bank: torch.Tensor | None
        if config.knowledge_source == "image":
            if graph_model is None:
                _warn_untrained()
                graph_model = KnowledgeGraphModel(
                    self.graph, config.graph_backbone or config.backbone, config.d_knowledge,
                    config.num_gcn_layers,
                )
            self.graph_model = graph_model.requires_grad_(False).eval()  # frozen (Section III.A)
            self.knowledge_bank = None
        elif config.knowledge_source == "static":
            if graph_model is None:
                _warn_untrained()
                matrix = torch.zeros(num_knowledge, config.d_knowledge)
            else:
                matrix = graph_model.static_knowledge.detach().clone()
            self.register_buffer("knowledge_bank", matrix)  # frozen, saved with the model
        elif config.knowledge_source == "random":
            self.knowledge_bank = nn.Parameter(
                torch.randn(num_knowledge, config.d_knowledge) * config.d_knowledge**-0.5
            )
        else:
            self.knowledge_bank = None
        if config.knowledge_source != "none":
            self.knowledge_matrix = CrossModalKnowledgeMatrix(
                config.d_model, config.d_knowledge, config.num_heads, config.top_k,
                config.knowledge_weighting, config.kernel,
            )
        # The textual features v_t: learned embeddings, or a pretrained language model.
        self.text_embedding: TokenEmbedding | PretrainedTextEncoder
        if config.pretrained_text_encoder:
            if text_encoder is None:
                text_encoder = PretrainedTextEncoder.from_pretrained(
                    config.text_encoder, config.d_model, config.dropout, config.train_text_encoder
                )
            _check_text_encoder(text_encoder, config, tokenizer)
            self.text_embedding = text_encoder
        else:
            self.text_embedding = TokenEmbedding(
                config.vocab_size, config.d_model, config.dropout, tokenizer.pad_id
            )
        self.transformer = CKNetTransformer(
            config.d_model, config.num_heads, config.d_ff, config.num_encoder_layers,
            config.num_decoder_layers, config.dropout, config.norm_first,
        )
        self.lm_head = nn.Linear(config.d_model, config.vocab_size)

    # ------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return self.lm_head.weight.device

    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        """Validate a batch of preprocessed images and return it as ``(B, V, 3, S, S)``.

        A ``(B, 3, S, S)`` tensor is accepted for single-view models.

        Args:
            images: the preprocessed images.

        Returns:
            ``images`` with the view axis, ``(B, V, 3, S, S)``.

        Raises:
            ValueError: for a non-float tensor, the wrong rank, channel count, number of
                views or image size; the message names ``images`` and the expected shape.
        """
        cfg = self.config
        expected = f"(B, {cfg.num_views}, 3, {cfg.image_size}, {cfg.image_size})"
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            raise ValueError(
                f"images must be a float tensor of shape {expected}; got "
                f"{type(images).__name__}"
                f"{' ' + str(images.dtype) if isinstance(images, torch.Tensor) else ''}"
                f" (use cknet.data.prepare_images for paths, PIL images or arrays)"
            )
        if images.dim() == 4 and cfg.num_views == 1:
            images = images.unsqueeze(1)
        if images.dim() != 5:
            raise ValueError(f"images must have shape {expected}, got {tuple(images.shape)}")
        if images.shape[1] != cfg.num_views:
            raise ValueError(
                f"images has {images.shape[1]} view(s) per study but this model takes "
                f"{cfg.num_views}: expected shape {expected}, got {tuple(images.shape)}"
            )
        if images.shape[2] != 3 or tuple(images.shape[3:]) != (cfg.image_size, cfg.image_size):
            raise ValueError(f"images must have shape {expected}, got {tuple(images.shape)}")
        return images

    def check_input_ids(self, input_ids: torch.Tensor, batch_size: int | None = None) -> None:
        """Validate token ids.

        Args:
            input_ids: ``(B, T)`` integer token ids.
            batch_size: the B they must have (None: any).

        Raises:
            ValueError: for a non-integer tensor, the wrong rank, an empty sequence, a
                batch size other than ``batch_size`` or ids outside the vocabulary.
        """
        if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point() or \
                input_ids.dtype == torch.bool:
            raise ValueError(
                f"input_ids must be an integer tensor of shape (B, T), got "
                f"{type(input_ids).__name__}"
                f"{' ' + str(input_ids.dtype) if isinstance(input_ids, torch.Tensor) else ''}"
            )
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (B, T), got {tuple(input_ids.shape)}")
        if input_ids.shape[1] == 0:
            raise ValueError("input_ids is empty (T = 0): a report needs at least the <bos> token")
        if batch_size is not None and input_ids.shape[0] != batch_size:
            raise ValueError(
                f"input_ids has {input_ids.shape[0]} rows but images has {batch_size} studies"
            )
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.config.vocab_size:
            raise ValueError(
                f"input_ids must lie in [0, {self.config.vocab_size}) (the vocabulary), "
                f"found values in [{low}, {high}]"
            )

    # ------------------------------------------------------------ computation
    def train(self, mode: bool = True) -> CKNet:
        """Set training mode; the frozen graph model always stays in evaluation mode.

        Args:
            mode: training (True) or evaluation (False).

        Returns:
            The model.
        """
        super().train(mode)
        if self.graph_model is not None:
            self.graph_model.eval()
        return self

    def language_model_parameters(self) -> list[nn.Parameter]:
        """The pretrained text encoder's own parameters (its projection excluded), which
        train at ``TrainingConfig.lr_text_encoder``; empty with the token embedding.

        Returns:
            The parameters.
        """
        if isinstance(self.text_embedding, PretrainedTextEncoder):
            return list(self.text_embedding.language_model.parameters())
        return []

    def text_features(self, input_ids: torch.Tensor, cache: DecoderCache | None = None) -> torch.Tensor:
        """The textual features v_t (Section III.B).

        Args:
            input_ids: ``(B, T)`` the whole prefix from ``<bos>`` (no cache), or the
                tokens after those already in ``cache``.
            cache: the decoding cache; it also holds the text encoder's own cache.

        Returns:
            ``(B, T, d_model)``; position t depends on tokens up to t only.
        """
        if isinstance(self.text_embedding, TokenEmbedding):
            return self.text_embedding(input_ids, cache.length if cache is not None else 0)
        if cache is None:
            return self.text_embedding(input_ids)
        if cache.text_cache is None:
            cache.text_cache = self.text_embedding.new_cache(cache.capacity)
        return self.text_embedding(input_ids, cache.text_cache)

    def knowledge(self, images: torch.Tensor) -> torch.Tensor | None:
        """The knowledge matrix G for a batch of images.

        Args:
            images: ``(B, V, 3, S, S)`` preprocessed images.

        Returns:
            ``(B, N+1, d_knowledge)`` from the frozen graph model (``"image"``),
            ``(N+1, d_knowledge)`` shared by the batch (``"static"``, ``"random"``), or
            None (``"none"``).
        """
        if self.graph_model is not None:
            with torch.no_grad():  # frozen: no gradient flows into or through it
                return self.graph_model(images).node_embeddings
        return self.knowledge_bank

    def encode_images(self, images: torch.Tensor) -> ImageEncoding:
        """Everything the decoder needs from the images, computed once per study.

        Args:
            images: ``(B, V, 3, S, S)`` preprocessed images.
        """
        images = self.check_images(images)
        return self.encode_features(self.visual_extractor.backbone(images), self.knowledge(images))

    def encode_features(self, maps: torch.Tensor, knowledge: torch.Tensor | None) -> ImageEncoding:
        """`encode_images` from precomputed inputs (the cached-feature training mode).

        Args:
            maps: ``(B, V, C, h, w)`` visual backbone maps.
            knowledge: what `knowledge` returns for the same images (``(B, N+1, d)`` for
                the "image" source; the shared matrix or None otherwise).
        """
        source = self.visual_extractor.project(maps)  # v_s
        projection = None
        if self.knowledge_matrix is not None and knowledge is not None:
            projection = self.knowledge_matrix.project_knowledge(knowledge)
            source = self.knowledge_matrix(source, projection)  # k_s, eq. (9)
        return ImageEncoding(self.transformer.encode(source), projection)

    def start_decoding(
        self, encoding: ImageEncoding, rows: torch.Tensor, max_new_tokens: int = 0
    ) -> tuple[ImageEncoding, DecoderCache]:
        """Prepare incremental decoding of ``rows`` ``(R,)`` of an encoded batch.

        The cross-attention keys and values are computed once per study, then indexed,
        so a study decoded as several beams or samples is not projected several times.

        Args:
            encoding: what `encode_images` returned for the batch.
            rows: ``(R,)`` the batch row of each sequence to decode.
            max_new_tokens: token slots to reserve in the cache.

        Returns:
            The encoding's knowledge for the R rows (its memory is no longer needed and
            is set to None) and a primed `DecoderCache`.
        """
        cache = self.transformer.init_cache(encoding.memory, max_new_tokens)
        cache.select(rows)
        rows_encoding = encoding.select(rows, with_memory=False)
        return rows_encoding, cache

    def decode(
        self,
        input_ids: torch.Tensor,
        encoding: ImageEncoding,
        cache: DecoderCache | None = None,
    ) -> torch.Tensor:
        """Next-token logits for ``input_ids`` ``(B, T)``.

        Without a cache, ``input_ids`` is the whole prefix starting with ``<bos>``; with a
        `DecoderCache`, only the tokens that follow those already in the cache.

        Args:
            input_ids: ``(B, T)`` token ids.
            encoding: the studies' encoding (one row per sequence).
            cache: the decoder's key/value cache, advanced in place.

        Returns:
            ``(B, T, vocab_size)`` logits.
        """
        target = self.text_features(input_ids, cache)  # v_t
        if self.knowledge_matrix is not None and encoding.knowledge is not None:
            target = self.knowledge_matrix(target, encoding.knowledge)  # k_t, eq. (9)
        hidden = self.transformer.decode(target, encoding.memory, cache)
        return self.lm_head(hidden)

    @torch.no_grad()
    def knowledge_attention(
        self, images: torch.Tensor, input_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Which knowledge vectors the image patches (and report tokens) draw on: the
        top-gamma weights of equation (6), averaged over the heads.

        Column 0 is the global node, column ``j >= 1`` the graph's node ``j - 1``
        (``model.graph.nodes[j - 1]``).

        Args:
            images: ``(B, V, 3, S, S)`` preprocessed images.
            input_ids: optional ``(B, T)`` reports as token ids starting with ``<bos>``
                (e.g. generated ones, encoded with ``model.tokenizer.encode_batch``).

        Returns:
            ``(B, V*h*w, N+1)`` patch weights and ``(B, T, N+1)`` token weights (None
            without ``input_ids``); each row sums to 1 over its top gamma.

        Raises:
            ValueError: for a model without a knowledge matrix (``knowledge_source="none"``)
                or malformed inputs.
        """
        if self.knowledge_matrix is None:
            raise ValueError("this model has no knowledge matrix (knowledge_source='none')")
        images = self.check_images(images).to(self.device)
        projection = self.knowledge_matrix.project_knowledge(self.knowledge(images))
        patches = self.visual_extractor.project(self.visual_extractor.backbone(images))  # v_s
        patch_weights = self.knowledge_matrix.attention(patches, projection).mean(dim=1)
        token_weights = None
        if input_ids is not None:
            self.check_input_ids(input_ids, images.shape[0])
            tokens = self.text_features(input_ids.to(self.device))  # v_t
            token_weights = self.knowledge_matrix.attention(tokens, projection).mean(dim=1)
        return patch_weights, token_weights

    def forward(
        self,
        images: torch.Tensor | None,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        features: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> CKNetOutput:
        """Teacher-forced forward pass.

        Args:
            images: ``(B, V, 3, S, S)`` preprocessed images (``(B, 3, S, S)`` for V = 1);
                None when ``features`` are given.
            input_ids: ``(B, T)`` reports as token ids, starting with ``<bos>``.
            labels: optional ``(B, T)`` target ids aligned with ``input_ids`` (usually the
                same tensor); the model shifts them, so ``logits[:, t]`` is scored against
                ``labels[:, t + 1]``. ``<pad>`` and -100 are ignored.
            features: precomputed ``(maps, knowledge)`` instead of images (see
                `encode_features`).

        Returns:
            `CKNetOutput` with ``logits`` ``(B, T, vocab_size)`` and, given labels, the
            mean cross-entropy over the non-ignored target tokens.

        Raises:
            ValueError: for malformed images, token ids or labels.
        """
        if features is not None:
            maps, knowledge = features
            self.check_input_ids(input_ids, maps.shape[0])
            encoding = self.encode_features(maps, knowledge)
        else:
            images = self.check_images(images)
            self.check_input_ids(input_ids, images.shape[0])
            encoding = self.encode_images(images)
        logits = self.decode(input_ids, encoding)
        loss = None
        if labels is not None:
            if not isinstance(labels, torch.Tensor) or labels.shape != input_ids.shape:
                raise ValueError(
                    f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got "
                    f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}"
                )
            targets = labels[:, 1:].masked_fill(labels[:, 1:] == self.tokenizer.pad_id, IGNORE_INDEX)
            if not (targets != IGNORE_INDEX).any():
                raise ValueError("labels hold no target token (all are <pad> or -100)")
            loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX
            )
        return CKNetOutput(logits=logits, loss=loss)

    @torch.inference_mode()
    def generate(
        self,
        images: Any,
        num_beams: int | None = None,
        max_new_tokens: int | None = None,
        length_penalty: float = 0.0,
        no_repeat_ngram_size: int = 0,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        num_return_sequences: int = 1,
        return_scores: bool = False,
        batch_size: int | None = None,
        progress: bool = False,
        min_new_tokens: int = 0,
        repeat_single_view: bool = False,
        generator: torch.Generator | None = None,
    ) -> list[str] | list[list[str]] | list[list[GeneratedReport]]:
        """Write a report for each study.

        Defaults reproduce the paper: beam search with ``config.num_beams`` (3) beams,
        hypotheses scored by summed log-probabilities (``length_penalty=0``).

        Args:
            images: a ``(B, V, 3, S, S)`` preprocessed tensor, or studies in any form
                `cknet.data.prepare_images` accepts: file paths, study folders, PIL
                images, numpy arrays, or a list of those (one entry per study; a list
                inside it holds one study's views).
            num_beams: beam width (1: greedy or sampling); default ``config.num_beams``.
            max_new_tokens: tokens after ``<bos>`` at most (default ``max_length - 1``).
            length_penalty: final scores are divided by ``length ** length_penalty``
                (Hugging Face meaning; > 0 favours longer reports).
            no_repeat_ngram_size: forbid repeating any n-gram of this size (0: off);
                applies in beam search too.
            do_sample: sample instead of taking the best tokens (needs ``num_beams=1``).
            temperature: divides the logits before sampling.
            top_k: sample among the k most likely tokens (0: all).
            top_p: sample within the smallest set of tokens whose probability reaches
                top_p (1: all).
            num_return_sequences: sequences per study, best first (at most num_beams
                for beam search; independent samples when sampling).
            return_scores: return `GeneratedReport` objects with ids and scores.
            batch_size: studies per forward pass (default: all at once).
            progress: show a tqdm progress bar over the studies.
            min_new_tokens: forbid ``<eos>`` before this many tokens.
            repeat_single_view: let a lone image fill every view of a multi-view model.
            generator: random generator used when sampling.

        Returns:
            ``list[str]``, one report per study; ``list[list[str]]`` when
            ``num_return_sequences > 1``; ``list[list[GeneratedReport]]`` when
            ``return_scores`` is True.

        Raises:
            ValueError: for invalid options or images.
        """
        from cknet.data.images import prepare_images
        from cknet.generation import GenerationSettings, beam_search, sample_search

        settings = GenerationSettings(
            max_new_tokens=self.config.max_length - 1 if max_new_tokens is None else int(max_new_tokens),
            min_new_tokens=int(min_new_tokens),
            num_beams=self.config.num_beams if num_beams is None else int(num_beams),
            length_penalty=float(length_penalty),
            no_repeat_ngram_size=int(no_repeat_ngram_size),
            do_sample=bool(do_sample), temperature=float(temperature), top_k=int(top_k),
            top_p=float(top_p), num_return_sequences=int(num_return_sequences),
        )
        settings.validate()
        if not isinstance(images, torch.Tensor):
            images = prepare_images(images, self.config, repeat_single_view)
        images = self.check_images(images)
        size = images.shape[0] if batch_size is None else int(batch_size)
        if size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        dtype = next(self.parameters()).dtype
        results: list[list[GeneratedReport]] = []
        was_training = self.training
        self.eval()
        try:
            from tqdm.auto import tqdm

            with tqdm(total=images.shape[0], desc="generating", unit="study",
                      disable=not progress) as bar:
                for chunk in images.split(size):
                    encoding = self.encode_images(chunk.to(self.device, dtype))
                    if settings.num_beams > 1:
                        found = beam_search(self, encoding, settings)
                    else:
                        found = sample_search(self, encoding, settings, generator)
                    for tokens, scores in zip(found.tokens.tolist(), found.scores.tolist()):
                        results.append([
                            GeneratedReport(self.tokenizer.decode(t), _strip(t, self.tokenizer), s)
                            for t, s in zip(tokens, scores)
                        ])
                    bar.update(chunk.shape[0])
        finally:
            self.train(was_training)
        if return_scores:
            return results
        if settings.num_return_sequences > 1:
            return [[r.text for r in study] for study in results]
        return [study[0].text for study in results]

    # ------------------------------------------------------------ persistence
    def save_pretrained(
        self,
        directory: str | os.PathLike[str],
        overwrite: bool = False,
        training_info: dict[str, Any] | None = None,
    ) -> None:
        """Save the model as ``config.json``, ``model.safetensors``, ``tokenizer.json``,
        ``graph.json`` and a ``README.md`` model card in ``directory`` (created if needed).

        Each file is written to a temporary name and renamed into place, so an
        interrupted save never leaves a half-written file.

        Args:
            directory: the folder to write.
            overwrite: replace a model already saved there.
            training_info: facts for the model card: training data and split, metrics
                with their evaluation settings (see `cknet.model_card.model_card`).

        Raises:
            FileExistsError: if ``directory`` already holds a saved model and
                ``overwrite`` is False.
        """
        from safetensors.torch import save_file

        folder = Path(directory)
        if folder.exists() and not folder.is_dir():
            raise FileExistsError(f"{folder} exists and is not a directory")
        existing = [n for n in (CONFIG_FILE, WEIGHTS_FILE) if (folder / n).exists()]
        if existing and not overwrite:
            raise FileExistsError(
                f"{folder} already holds a saved model ({', '.join(existing)}); pass "
                f"overwrite=True to replace it"
            )
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        write_atomic(folder / WEIGHTS_FILE, lambda p: save_file(state, p, metadata={"format": "pt"}))
        if isinstance(self.text_embedding, PretrainedTextEncoder):
            # text_encoder/: the tokenizer files and the language model's architecture
            # (its weights are in model.safetensors), so the model reloads offline.
            self.tokenizer.save(folder / TOKENIZER_FILE, self.text_embedding.language_model.config)
        else:
            self.tokenizer.save(folder / TOKENIZER_FILE)
        write_atomic(folder / GRAPH_FILE, self.graph.to_json)
        write_atomic(folder / CONFIG_FILE, self.config.to_json_file)
        card = model_card(self.config.to_dict(), self.graph.name, self.graph.num_nodes,
                          self.tokenizer.vocab_size, training_info)
        write_text_atomic(folder / CARD_FILE, card)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        map_location: str | torch.device = "cpu",
        revision: str | None = None,
    ) -> CKNet:
        """Load a model saved by `save_pretrained`, from a directory or a Hugging Face
        Hub repository id (``"owner/name"``).

        No pickle is involved: weights are safetensors, the rest JSON. Loading is strict.

        Args:
            name_or_path: a folder written by `save_pretrained`, or a hub id.
            map_location: the device to load the weights to.
            revision: a hub revision (branch, tag or commit) for a hub id.

        Returns:
            The model, in evaluation mode.

        Raises:
            FileNotFoundError: for a path that does not exist or lacks one of the files.
            OSError: when a hub id cannot be downloaded (e.g. offline); the message says
                how to load from a local directory instead.
            ValueError: when the weights do not fit the model described by config.json.
        """
        folder = _resolve_model_dir(name_or_path, revision)
        missing = [n for n in (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, GRAPH_FILE)
                   if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder} is not a saved CKNet model: missing {', '.join(missing)}"
            )
        from safetensors.torch import load_file

        config = CKNetConfig.from_json_file(folder / CONFIG_FILE)
        tokenizer = load_tokenizer(folder / TOKENIZER_FILE)
        graph = KnowledgeGraph.from_json(folder / GRAPH_FILE)
        text_encoder = None
        if config.pretrained_text_encoder:
            text_encoder = PretrainedTextEncoder.from_config(
                folder / TEXT_ENCODER_DIR, config.d_model, config.dropout, config.train_text_encoder
            )
        # The saved weights replace every initial weight: build empty modules (never
        # fetch backbone weights), with a placeholder graph model for the frozen stage.
        placeholder = None
        if config.knowledge_source in ("image", "static"):
            placeholder = KnowledgeGraphModel(
                graph, config.graph_backbone or config.backbone, config.d_knowledge, config.num_gcn_layers
            )
            placeholder.has_static_knowledge = True
        model = cls(dataclasses.replace(config, backbone_weights=None), tokenizer, graph, placeholder,
                    text_encoder)
        model.config = config
        try:
            state = load_file(folder / WEIGHTS_FILE, device=str(map_location))
        except Exception as err:
            raise ValueError(f"{folder / WEIGHTS_FILE} is not a readable safetensors file: {err}") from None
        check_state_dict(model, state, folder / WEIGHTS_FILE)
        model.load_state_dict(state, strict=True)
        return model.to(map_location).eval()


def _resolve_model_dir(name_or_path: str | os.PathLike[str], revision: str | None) -> Path:
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists():
        raise FileNotFoundError(f"{path} is a file; pass the directory written by save_pretrained")
    name = os.fspath(name_or_path)
    if not _HUB_ID.match(name) or name.startswith((".", "/", "~")):
        raise FileNotFoundError(f"no such model directory: {name}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(
            name, revision=revision,
            allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, GRAPH_FILE, CARD_FILE,
                            f"{TEXT_ENCODER_DIR}/*"],
        ))
    except Exception as err:
        raise OSError(
            f"could not download CKNet model {name!r} from the Hugging Face Hub "
            f"({type(err).__name__}: {err}). If you are offline, copy the model's directory "
            f"(config.json, model.safetensors, tokenizer.json, graph.json) to a local directory "
            f"and pass that path: CKNet.from_pretrained('/path/to/model')"
        ) from err


def _check_text_encoder(
    encoder: PretrainedTextEncoder, config: CKNetConfig, tokenizer: ReportTokenizerBase
) -> None:
    """Raise a `ValueError` if a pretrained text encoder does not fit the tokenizer or config."""
    rows = encoder.language_model.config.vocab_size
    if tokenizer.vocab_size > rows:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} ids but the text encoder embeds {rows}: "
            f"load both from the same language model ({config.text_encoder!r})"
        )
    if encoder.max_positions and config.max_length > encoder.max_positions:
        raise ValueError(
            f"config.max_length ({config.max_length}) exceeds the text encoder's "
            f"{encoder.max_positions} positions"
        )
    if encoder.projection.out_features != config.d_model:
        raise ValueError(
            f"the text encoder projects to {encoder.projection.out_features} features but "
            f"config.d_model is {config.d_model}"
        )
