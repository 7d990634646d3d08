"""`CKNet`: the cross-modal knowledge-driven network of Kang et al. (BIBM 2023), Fig. 2.

1. `VisualExtractor` -- patch features v_s of the study's views, equation (1);
2. a `KnowledgeSource` -- the knowledge matrix G (Section III.A): the frozen graph
   model's node embeddings of each study (``"image"``), their training-split mean
   (``"static"``), a trainable random matrix (``"random"``, +MEN) or none (``"none"``,
   Base);
3. the textual features v_t (Section III.B) -- a learned `TokenEmbedding`, or a
   `PretrainedTextEncoder` such as the paper's BioClinicalBERT, run causally;
4. `CrossModalKnowledgeMatrix` -- one module for both modalities: k_s and k_t,
   equations (4)-(9) (or a fusion that keeps v: ``CKNetConfig.knowledge_fusion``);
5. `CKNetTransformer` -- encoder over k_s (10), decoder over k_t (11), then a linear
   layer and softmax over the vocabulary.

The same knowledge source is used in training and in generation. Generation itself
lives in `cknet.generation`; saving and loading in `cknet.persistence.model_files` (on
`cknet.persistence.module_folder`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cknet.config import CKNetConfig
from cknet.decoding import DecodingState, Encoding
from cknet.explain import Explanation, explain
from cknet.generation import GeneratedReport, GenerationConfig, LogitsProcessor, generate
from cknet.graph import KnowledgeGraph
from cknet.inputs.checks import check_images, check_input_ids
from cknet.inputs.features import StudyFeatures
from cknet.knowledge import (
    KnowledgeSource,
)
from cknet.losses import masked_cross_entropy
from cknet.model_parts import checked_parts, text_encoder_for
from cknet.modules.cache import DecoderCache
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.modules.knowledge_matrix import CrossModalKnowledgeMatrix
from cknet.modules.language_model import PretrainedTextEncoder
from cknet.modules.text import TokenEmbedding
from cknet.modules.transformer import CKNetTransformer
from cknet.modules.visual import VisualExtractor
from cknet.persistence.model_files import load_model, save_model
from cknet.tokenizers import ReportTokenizerBase


@dataclass
class CKNetOutput:
    """Output of `CKNet.forward`.

    Attributes:
        logits: ``(B, T, vocab_size)``; ``logits[:, t]`` scores the token at ``t + 1``.
        loss: masked cross-entropy over the predicted positions, when labels were given.
    """

    logits: torch.Tensor
    loss: torch.Tensor | None = None


class CKNet(nn.Module):
    """Cross-modal knowledge-driven network for radiology report generation.

    Args:
        config: hyper-parameters; ``config.vocab_size == 0`` takes the tokenizer's size.
        tokenizer: the report tokenizer; its vocabulary defines the output layer. A
            `ReportTokenizer` for ``text_encoder="embedding"``, else a
            `PretrainedReportTokenizer` of the same language model.
        graph: the knowledge graph (default: the graph model's, else
            `KnowledgeGraph.openi40()`); it sets the number of knowledge vectors (N + 1
            with the global node) of the built-in sources.
        graph_model: the pretrained knowledge-graph stage (a `KnowledgeGraphModel` or
            its folder) for the ``"image"`` and ``"static"`` sources; frozen; the config
            records its CNN and GCN depth. Without it those sources start from an
            untrained graph model (a warning says so): for tests or before loading weights.
        text_encoder: a `PretrainedTextEncoder` built beforehand, used instead of loading
            ``config.text_encoder``.
        knowledge_source: your own `KnowledgeSource`, used instead of the built-in one that
            ``config.knowledge_source`` names; the config takes its ``name``, and its
            class is registered (`register_knowledge_source`).

    Attributes:
        generation_config: the default decoding options `generate` starts from (the
            paper's), saved as ``generation_config.json``.
        training_info: what `save_pretrained` was told of the training (``{}``: nothing).

    Raises:
        ValueError: if the config, the tokenizer, the graph model, the knowledge source
            or the text encoder do not fit together (the message says which).
        OSError: when ``config.text_encoder`` names a language model that is neither a
            local folder nor downloadable.

    Example:
        ```python
        model = CKNet(CKNetConfig.iu_xray(), tokenizer=tok, graph_model="runs/graph")
        out = model(images, input_ids, labels=input_ids)
        out.loss.backward()
        reports = model.generate(images)
        ```
    """

    def __init__(
        self,
        config: CKNetConfig,
        tokenizer: ReportTokenizerBase,
        graph: KnowledgeGraph | None = None,
        graph_model: KnowledgeGraphModel | str | os.PathLike[str] | None = None,
        text_encoder: PretrainedTextEncoder | None = None,
        knowledge_source: KnowledgeSource | None = None,
    ) -> None:
        super().__init__()
        config, graph, knowledge = checked_parts(config, tokenizer, graph, graph_model, knowledge_source)
        self.config, self.tokenizer, self.graph = config, tokenizer, graph
        self.generation_config, self.training_info = GenerationConfig(), {}
        backbone = knowledge.graph_model.backbone if config.share_backbone else config.backbone
        self.visual_extractor = VisualExtractor(backbone, config.d_model, config.backbone_weights,
                                                config.dropout)
        self.knowledge_source = knowledge
        self.cross_modal = None if knowledge is None else CrossModalKnowledgeMatrix(
            config.d_model, config.d_knowledge, config.num_heads, config.gamma, config.knowledge_weighting,
            config.kernel, config.knowledge_fusion)
        self.text_encoder = text_encoder_for(config, tokenizer, text_encoder)
        self.transformer = CKNetTransformer(config.d_model, config.num_heads, config.d_ff,
                                            config.num_encoder_layers, config.num_decoder_layers,
                                            config.dropout, config.norm_first)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size)

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return self.lm_head.weight.device

    def text_features(self, input_ids: torch.Tensor, cache: DecoderCache | None = None) -> torch.Tensor:
        """The textual features v_t (Section III.B), ``(B, T, d_model)``; position t sees tokens <= t.

        Args:
            input_ids: ``(B, T)`` the whole prefix from ``<bos>`` (no cache), or the tokens
                after those already in ``cache``.
            cache: the decoding cache; it also holds a pretrained text encoder's own cache.
        """
        if isinstance(self.text_encoder, TokenEmbedding):
            return self.text_encoder(input_ids, cache.length if cache is not None else 0)
        if cache is None:
            return self.text_encoder(input_ids)
        if cache.text_cache is None:
            cache.text_cache = self.text_encoder.new_cache(cache.capacity)
        return self.text_encoder(input_ids, cache.text_cache)

    def knowledge_vectors(self, images: torch.Tensor | None = None) -> torch.Tensor | None:
        """The knowledge matrix G: ``(B, M, d_knowledge)`` per study, ``(M, d_knowledge)``
        shared by the batch, or None without one (``knowledge_source="none"``).

        Args:
            images: ``(B, V, 3, S, S)``; needed by per-study sources only.
        """
        return None if self.knowledge_source is None else self.knowledge_source(images)

    def study_features(self, images: torch.Tensor, reuse_maps: bool | None = None) -> StudyFeatures:
        """The part of `encode` that a frozen backbone lets one cache (`StudyFeatures`):
        the backbone's maps and, for a per-study knowledge source, each study's G.

        Args:
            images: ``(B, V, 3, S, S)`` preprocessed images (``(B, 3, S, S)`` for V = 1).
            reuse_maps: compute G from the visual backbone's maps (one backbone pass for
                both); default: when the visual CNN is the graph model's (``share_backbone``);
                `cknet.training.FeatureCache` also sets it for a frozen copy of that CNN.
        """
        images = check_images(images, self.config)
        maps = self.visual_extractor.maps(images)
        knowledge = None
        if self.knowledge_source is not None and self.knowledge_source.per_study:
            reuse = self.config.share_backbone if reuse_maps is None else reuse_maps
            knowledge = self.knowledge_source.from_maps(maps) if reuse else self.knowledge_source(images)
        return StudyFeatures(maps, knowledge)

    def encode(self, images: torch.Tensor | None = None, features: StudyFeatures | None = None) -> Encoding:
        """Everything the decoder needs from a batch of studies (an `Encoding`), from
        their images or their cached `StudyFeatures` (exactly one): the one place that
        decides between the two, and between a per-study and a shared G.

        Args:
            images: ``(B, V, 3, S, S)`` preprocessed images (``(B, 3, S, S)`` for V = 1).
            features: the studies' cached maps (and per-study G), instead of images.
        """
        if (images is None) == (features is None):
            raise ValueError("encode takes images or features (cached StudyFeatures), exactly one of them")
        if features is None:
            features = self.study_features(images)
        per_study = self.knowledge_source is not None and self.knowledge_source.per_study
        if per_study and features.knowledge_matrix is None:
            raise ValueError(f"the {self.knowledge_source.name!r} knowledge source gives each study its own "
                             f"G, but the cached features hold none: cache them with this model")
        source = self.visual_extractor.project(features.maps)  # v_s, eq. (1)
        projection = None
        if self.cross_modal is not None:
            knowledge = features.knowledge_matrix if per_study else self.knowledge_vectors()
            projection = self.cross_modal.project_knowledge(knowledge)  # W_k, W_g: eqs. (4), (7)
            if self.training:  # knowledge dropout: r = 0 for a fraction of the studies
                projection = projection.dropout(self.config.knowledge_dropout, len(source))
            source = self.cross_modal(source, projection)  # k_s, eqs. (4)-(9)
        return Encoding(self.transformer.encode(source), projection)  # eq. (10)

    def decode(self, input_ids: torch.Tensor, encoding: Encoding,
               cache: DecoderCache | None = None) -> torch.Tensor:
        """Next-token logits ``(B, T, vocab_size)`` for ``input_ids`` ``(B, T)``: the whole
        prefix from ``<bos>`` without a cache; with one, the tokens after those it holds.

        Args:
            input_ids: token ids.
            encoding: the studies' encoding, one row per sequence.
            cache: the decoder's key/value cache, advanced in place.
        """
        target = self.text_features(input_ids, cache)  # v_t
        if self.cross_modal is not None and encoding.projected_knowledge is not None:
            target = self.cross_modal(target, encoding.projected_knowledge)  # k_t, eqs. (4)-(9)
        return self.lm_head(self.transformer.decode(target, encoding.memory, cache))  # eq. (11)

    def start_decoding(self, encoding: Encoding, rows: torch.Tensor, capacity: int = 0,
                       group: int = 1) -> DecodingState:
        """Prepare incremental decoding of ``rows`` ``(R,)`` of an encoded batch: the
        cross-attention keys and values are computed once per study, then indexed.

        Args:
            encoding: what `encode` returned.
            rows: the batch row of each sequence to decode.
            capacity: token slots to reserve in the cache.
            group: beams per study, in consecutive rows (their cache is never copied
                when they are reordered; see `cknet.modules.cache.DecoderCache`).
        """
        rows = rows.to(encoding.memory.device)
        cache = self.transformer.init_cache(encoding.memory, capacity, group)
        cache.select(rows)
        return DecodingState(encoding.select(rows, with_memory=False), cache)

    def decode_step(self, tokens: torch.Tensor, state: DecodingState) -> torch.Tensor:
        """``(R, vocab_size)`` logits of the token after ``tokens`` ``(R, 1)``.

        Args:
            tokens: the newest token of each row.
            state: from `start_decoding`, advanced in place.
        """
        return self.decode(tokens, state.encoding, state.cache)[:, -1]

    def forward(self, images: torch.Tensor | None, input_ids: torch.Tensor,
                labels: torch.Tensor | None = None, features: StudyFeatures | None = None) -> CKNetOutput:
        """Teacher-forced forward pass: a `CKNetOutput` with ``logits`` ``(B, T,
        vocab_size)`` and, given labels, the mean cross-entropy over the non-ignored target
        tokens. Raises ValueError for malformed images, token ids or labels.

        Args:
            images: ``(B, V, 3, S, S)`` preprocessed images (``(B, 3, S, S)`` for V = 1);
                None when ``features`` are given.
            input_ids: ``(B, T)`` reports as token ids, starting with ``<bos>``.
            labels: optional ``(B, T)`` target ids aligned with ``input_ids`` (usually the
                same tensor); the model shifts them, so ``logits[:, t]`` is scored against
                ``labels[:, t + 1]``. ``<pad>`` and -100 are ignored.
            features: the studies' cached `StudyFeatures` instead of images (see `encode`).
        """
        encoding = self.encode(images, features)
        check_input_ids(input_ids, self.config.vocab_size, encoding.memory.shape[0])
        logits = self.decode(input_ids, encoding)
        loss = None if labels is None else masked_cross_entropy(logits, labels, self.tokenizer.pad_id)
        return CKNetOutput(logits, loss)

    def generate(
        self,
        images: Any,
        config: GenerationConfig | None = None,
        *,
        logits_processors: list[LogitsProcessor] | tuple[LogitsProcessor, ...] = (),
        return_scores: bool = False,
        batch_size: int | None = None,
        progress: bool = False,
        repeat_single_view: bool = False,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> list[str] | list[list[str]] | list[list[GeneratedReport]]:
        """Write a report for each study (see `cknet.generation.generate`).

        Decoding starts from ``self.generation_config`` (the paper's: beam 3).

        Args:
            images: a ``(B, V, 3, S, S)`` preprocessed tensor, or studies in any form
                `cknet.data.prepare_images` accepts (paths, folders, PIL images, arrays).
            config: a `GenerationConfig` used instead of ``self.generation_config``.
            logits_processors: your own `LogitsProcessor` s, applied after the built-in ones.
            return_scores: return `GeneratedReport` objects with ids and scores.
            batch_size: studies per forward pass (default: all at once).
            progress: show a progress bar over the studies.
            repeat_single_view: let a lone image fill every view of a multi-view model.
            generator: random generator used when sampling.
            **options: `GenerationConfig` fields by name (``num_beams``, ``do_sample``,
                ``max_new_tokens``, ...); they override the config.

        Returns:
            ``list[str]``, one report per study; ``list[list[str]]`` when
            ``num_return_sequences > 1``; ``list[list[GeneratedReport]]`` with
            ``return_scores``.

        Raises:
            ValueError: for invalid options or images.
        """
        options_config = (config or self.generation_config).updated(**options)
        reports = generate(self, images, options_config, logits_processors, batch_size, progress,
                           repeat_single_view, generator)
        if return_scores:
            return reports
        if options_config.num_return_sequences > 1:
            return [[r.text for r in study] for study in reports]
        return [study[0].text for study in reports]

    def explain(self, images: torch.Tensor, reports: list[str] | None = None) -> list[Explanation]:
        """Where each word of each study's report looked (`cknet.explain.explain`).

        Args:
            images: ``(B, V, 3, S, S)`` preprocessed images.
            reports: one report per study to explain; default: the model's own.
        """
        return explain(self, images, reports)

    def save_pretrained(self, directory: str | os.PathLike[str], overwrite: bool = False,
                        training_info: dict[str, Any] | None = None) -> None:
        """Save the model as one folder (config, safetensors weights, tokenizer, graph, model
        card, marker: `cknet.persistence.model_files`), written beside the old folder and swapped in at
        once: a reader or a kill never sees a half-written or mixed model.

        Args:
            directory: the folder to write (created if needed).
            overwrite: replace a model saved there.
            training_info: facts for the model card and ``training_info.json`` (data,
                metrics and their settings; None keeps the model's ``training_info``).

        Raises:
            FileExistsError: if ``directory`` holds a model and ``overwrite`` is False,
                or holds anything else (another kind of cknet folder, other files).
        """
        save_model(self, directory, overwrite, training_info)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], map_location: str | torch.device = "cpu",
                        revision: str | None = None) -> CKNet:
        """Load a model saved by `save_pretrained`, from a folder or a Hugging Face Hub id
        (``"owner/name"``). No pickle is involved: weights are safetensors, the rest JSON.

        Args:
            name_or_path: a folder written by `save_pretrained`, or a hub id.
            map_location: the device to load the weights to.
            revision: a hub revision (branch, tag or commit) for a hub id.

        Returns:
            The model, in evaluation mode.

        Raises:
            FileNotFoundError: for a folder that does not exist or lacks a file.
            OSError: when a hub id cannot be downloaded (the message says how to load from
                a local folder instead).
            ValueError: for a folder of another kind, or files that do not describe one
                model (each message names the file).
        """
        return load_model(cls, name_or_path, map_location, revision)

