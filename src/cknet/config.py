"""`CKNetConfig`: every hyper-parameter of a CKNet model, with the paper's defaults.

The defaults follow Section IV.C of the paper (Kang et al., BIBM 2023): a Transformer
with 3 encoder and 3 decoder layers, 8 heads and hidden size 512; the top gamma = 8
knowledge vectors of a 512-dimensional knowledge matrix; beam size 3; a DenseNet-121
visual extractor.

What differs between datasets (views per study, longest report, vocabulary threshold,
report cleaning) is one `DatasetPreset` of the `cknet.presets.DATASETS` registry;
`CKNetConfig.preset(name)` builds a config from it (`CKNetConfig.iu_xray()` and
`CKNetConfig.mimic_cxr()` are the two built in). Adding a dataset is
`cknet.register_dataset(name, DatasetPreset(...))`, with no change to cknet.

A config round-trips through `to_dict` / `from_dict` and `to_json_file` /
`from_json_file`; unknown keys and values of the wrong type raise a `ValueError` that
names the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Literal

from cknet.field_checks import check_field_types as check_field_types
from cknet.field_checks import check_known_keys as check_known_keys
from cknet.limits import check_sizes

# The dataset presets, here too for those who import them with the config.
from cknet.presets import DATASETS as DATASETS
from cknet.presets import DatasetPreset as DatasetPreset
from cknet.presets import dataset_preset as dataset_preset
from cknet.presets import register_dataset as register_dataset
from cknet.registry import Registry

KnowledgeWeighting = Literal["softmax", "sum"]
KernelBackend = Literal["auto", "torch", "triton"]
KnowledgeFusion = Literal["concat", "residual", "gated"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)



# What a config saved before a field existed meant: `CKNetConfig.from_dict` fills these in
# for a missing key, whatever the field's default for new configs is.
SAVED_BEFORE = {"knowledge_fusion": "concat", "knowledge_dropout": 0.0}

# The knowledge sources by name (`CKNetConfig.knowledge_source`): cknet.knowledge registers
# the built-in classes, `cknet.register_knowledge_source` yours. "none" is no source.
KNOWLEDGE_SOURCES: Registry[type] = Registry("knowledge source")
BUILT_IN_KNOWLEDGE_SOURCES = ("image", "static", "random", "none")


@dataclass
class CKNetConfig:
    """Hyper-parameters of a CKNet model.

    Attributes:
        dataset: a key of `DATASETS`: which report cleaning rules apply (``"iu_xray"``,
            ``"mimic_cxr"``).
        vocab_size: size of the output vocabulary, special tokens included; ``0`` means
            "take it from the tokenizer" when the model is built.
        max_length: longest report in tokens, BOS and EOS included (60 for IU X-Ray,
            100 for MIMIC-CXR, as in R2Gen).
        num_views: images per study (2 for IU X-Ray's frontal + lateral, 1 for MIMIC-CXR).
        image_size: side of the square input image in pixels (evaluation transform).
        image_mean: per-channel mean subtracted from the input images.
        image_std: per-channel standard deviation the input images are divided by.
        backbone: torchvision classification model used as visual extractor
            (``"densenet121"`` as in the paper, ``"resnet101"`` as in R2Gen).
        backbone_weights: ``None`` (random init), ``"imagenet"`` (torchvision's weights,
            from the local torch hub cache) or the path of a local state dict.
        d_model: hidden size of the Transformer and of the projected patch features.
        num_encoder_layers: Transformer encoder depth (3 in the paper).
        num_decoder_layers: Transformer decoder depth (3 in the paper).
        num_heads: attention heads, also the heads of the knowledge query (8).
        d_ff: inner size of the position-wise feed-forward layers (512, as in R2Gen).
        dropout: dropout probability in the Transformer and the projections.
        norm_first: pre-LayerNorm sub-layers (as in the R2Gen code base the paper builds
            on) when true; post-LayerNorm (the original Transformer) when false.
        knowledge_source: what patches and tokens query (`cknet.knowledge`). ``"image"``:
            node embeddings computed per study by the frozen, pretrained
            `KnowledgeGraphModel` (the default; ``"graph"`` is another name for it);
            ``"static"``: one matrix for the dataset, the mean node embeddings over the
            training split (the paper's "shared knowledge matrix" read literally);
            ``"random"``: a trainable random matrix of the same shape (the paper's +MEN
            ablation); ``"none"``: no knowledge matrix (the paper's Base ablation); or the
            ``name`` of your own registered `cknet.KnowledgeSource`.
        graph_backbone: CNN of the knowledge-graph stage (default: ``backbone``).
        share_backbone: with the ``"image"`` source, the visual extractor's CNN *is* the
            frozen graph model's (one module, its weights stored once): each image goes
            through one backbone pass that feeds both v_s and G, and the visual backbone
            is not trained. False (the paper's) gives the visual extractor its own CNN,
            fine-tuned with ``TrainingConfig.lr_visual``.
        d_knowledge: dimension of the knowledge-graph node embeddings (512).
        gamma: γ, the number of knowledge vectors each query keeps (top-γ, eq. 6; 8).
        knowledge_weighting: ``"softmax"`` over the selected scores (as R2GenCMN) or
            ``"sum"`` (equation 6 literally: each score over the sum of the selected).
        knowledge_fusion: how the retrieved knowledge r joins the features v.
            ``"concat"``: k = FCN(Concat(v, r)), equation (9), the paper's (and what a
            folder saved without this field holds); ``"residual"``: k = v +
            FCN(Concat(v, r)); ``"gated"``: k = v + a * (r W_r) with a per-channel gate a
            that starts at 0, so that the model starts as Base
            (`cknet.modules.CrossModalKnowledgeMatrix`).
        knowledge_dropout: in training only, the fraction of studies whose knowledge is
            dropped (r = 0 for their patches and tokens), so that the model cannot rely
            on G alone; 0 (the paper's) drops nothing. Generation never drops.
        kernel: path of the top-k knowledge query: ``"auto"`` (the fused Triton kernel
            on CUDA, else PyTorch), ``"torch"`` or ``"triton"``; ``CKNET_KERNEL``
            overrides it.
        num_gcn_layers: GCN layers of the knowledge-graph encoder.
        text_encoder: where the textual features v_t come from: ``"embedding"`` (learned
            token embeddings with sinusoidal positions, the fast default) or a Hugging
            Face language model, by hub id or local folder
            (``"emilyalsentzer/Bio_ClinicalBERT"`` is the paper's, Section III.B), run
            causally and projected to d_model; it then needs a
            `cknet.PretrainedReportTokenizer` from the same model.
        train_text_encoder: fine-tune the pretrained text encoder (its own learning rate,
            ``TrainingConfig.lr_text_encoder``); False keeps it frozen.
    """

    dataset: str = "iu_xray"
    vocab_size: int = 0
    max_length: int = 60
    num_views: int = 2
    image_size: int = 224
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    backbone: str = "densenet121"
    backbone_weights: str | None = None
    d_model: int = 512
    num_encoder_layers: int = 3
    num_decoder_layers: int = 3
    num_heads: int = 8
    d_ff: int = 512
    dropout: float = 0.1
    norm_first: bool = True
    knowledge_source: str = "image"
    graph_backbone: str | None = None
    share_backbone: bool = False
    d_knowledge: int = 512
    gamma: int = 8
    knowledge_weighting: KnowledgeWeighting = "softmax"
    knowledge_fusion: KnowledgeFusion = "concat"
    knowledge_dropout: float = 0.0
    kernel: KernelBackend = "auto"
    num_gcn_layers: int = 2
    text_encoder: str = "embedding"
    train_text_encoder: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.image_mean, list):
            self.image_mean = tuple(self.image_mean)  # type: ignore[assignment]
        if isinstance(self.image_std, list):
            self.image_std = tuple(self.image_std)  # type: ignore[assignment]
        if self.knowledge_source == "graph":
            self.knowledge_source = "image"
        self.validate()

    # ------------------------------------------------------------------ presets
    @property
    def pretrained_text_encoder(self) -> bool:
        """Whether v_t comes from a pretrained language model (not ``"embedding"``)."""
        return self.text_encoder != "embedding"

    @classmethod
    def preset(cls, dataset: str, **overrides: Any) -> CKNetConfig:
        """The paper's architecture with a dataset's settings from `DATASETS`.

        Args:
            dataset: a key of `DATASETS`.
            **overrides: fields to set, e.g. ``d_model=256``.

        Returns:
            The config.

        Raises:
            ValueError: for an unknown dataset or an invalid field.
        """
        preset = dataset_preset(dataset)
        return cls(**{"dataset": dataset, "num_views": preset.num_views, "max_length": preset.max_length,
                      **overrides})

    @classmethod
    def iu_xray(cls, **overrides: Any) -> CKNetConfig:
        """The paper's IU X-Ray model: two views, reports of at most 60 tokens,
        DenseNet-121, 3 + 3 layers, d_model 512, γ = 8.

        The CNN starts from random weights (``backbone_weights=None``: nothing is
        downloaded). The training recipe ``cknet train --config iu_xray``
        (`cknet.training.load_recipe`) is this config with ``backbone_weights="imagenet"``,
        as in the paper; pass ``backbone_weights="imagenet"`` here to match it.

        Args:
            **overrides: fields to set.
        """
        return cls.preset("iu_xray", **overrides)

    @classmethod
    def mimic_cxr(cls, **overrides: Any) -> CKNetConfig:
        """The paper's MIMIC-CXR model: one view, reports of at most 100 tokens.

        As `iu_xray`, with a randomly initialised CNN; the recipe
        ``cknet train --config mimic_cxr`` adds ``backbone_weights="imagenet"``.

        Args:
            **overrides: fields to set.
        """
        return cls.preset("mimic_cxr", **overrides)

    # --------------------------------------------------------------- validation
    def validate(self) -> None:
        """Check types and ranges of every field.

        Raises:
            ValueError: naming the first field whose value is of the wrong type or out
                of range.
        """
        check_field_types(self)
        dataset_preset(self.dataset)
        positive = ["max_length", "num_views", "image_size", "d_model", "num_heads", "d_ff",
                    "num_decoder_layers", "d_knowledge", "gamma"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"CKNetConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ["vocab_size", "num_encoder_layers", "num_gcn_layers"]:
            if getattr(self, name) < 0:
                raise ValueError(f"CKNetConfig.{name} must be >= 0, got {getattr(self, name)}")
        check_sizes(self)
        if self.max_length < 3:
            raise ValueError(
                f"CKNetConfig.max_length must be at least 3 (BOS, one word, EOS), "
                f"got {self.max_length}"
            )
        for name in ("dropout", "knowledge_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"CKNetConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.d_model % self.num_heads != 0:
            raise ValueError(
                f"CKNetConfig.d_model ({self.d_model}) must be divisible by "
                f"num_heads ({self.num_heads})"
            )
        if not self.text_encoder.strip():
            raise ValueError(
                "CKNetConfig.text_encoder must be 'embedding' or a language model's hub id or "
                "folder, got an empty string"
            )
        if self.train_text_encoder and self.text_encoder == "embedding":
            raise ValueError(
                "CKNetConfig.train_text_encoder applies to a pretrained text_encoder; the "
                "'embedding' text encoder is always trained"
            )
        if self.share_backbone and self.knowledge_source != "image":
            raise ValueError(f"CKNetConfig.share_backbone needs knowledge_source 'image' (the graph model's "
                             f"CNN is what is shared), got {self.knowledge_source!r}")
        if self.share_backbone and self.graph_backbone not in (None, self.backbone):
            raise ValueError(f"CKNetConfig.share_backbone needs one CNN: graph_backbone "
                             f"{self.graph_backbone!r} differs from backbone {self.backbone!r}")
        if self.knowledge_source not in (*BUILT_IN_KNOWLEDGE_SOURCES, *KNOWLEDGE_SOURCES):
            names = sorted({*BUILT_IN_KNOWLEDGE_SOURCES, *KNOWLEDGE_SOURCES})
            raise ValueError(
                f"CKNetConfig.knowledge_source {self.knowledge_source!r} is not a built-in source and not "
                f"registered: use one of {names}, or import the code that defines "
                f"your own and call cknet.register_knowledge_source on its class"
            )
        if not all(math.isfinite(v) for v in (*self.image_mean, *self.image_std)):
            raise ValueError(f"CKNetConfig.image_mean and image_std must be finite, got {self.image_mean} "
                             f"and {self.image_std}")
        if any(s <= 0 for s in self.image_std):
            raise ValueError(f"CKNetConfig.image_std must be positive, got {self.image_std}")

    # ------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["image_mean"] = list(self.image_mean)
        out["image_std"] = list(self.image_std)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CKNetConfig:
        """Build a config from a dict such as `to_dict` returns.

        Missing keys take their defaults, except the fields added after configs were
        first saved (`SAVED_BEFORE`): those take the value that the saved config meant.

        Args:
            data: ``{field: value}``.

        Returns:
            The config.

        Raises:
            ValueError: for a key that is not a field (the key is named, with the valid
                ones) or a value of the wrong type.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a CKNetConfig is built from a dict, got {type(data).__name__}")
        check_known_keys(cls, data)
        return cls(**{**SAVED_BEFORE, **data})

    def to_json(self) -> str:
        """The config as an indented JSON string."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CKNetConfig:
        """Parse a JSON string written by `to_json`.

        Args:
            text: the JSON text.

        Returns:
            The config.

        Raises:
            ValueError: for invalid JSON or an invalid config.
        """
        return cls.from_dict(json.loads(text))

    def to_json_file(self, path: str | os.PathLike[str]) -> None:
        """Write the config as JSON (atomically).

        Args:
            path: the JSON file to write.
        """
        from cknet.persistence.files import write_text_atomic

        write_text_atomic(path, self.to_json())

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str]) -> CKNetConfig:
        """Read a config from a JSON file.

        Args:
            path: the JSON file.

        Returns:
            The config.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if the file is not valid JSON or holds an invalid config; the
                message names the file.
        """
        with open(path, "rb") as fh:
            raw = fh.read()
        try:
            return cls.from_json(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise ValueError(f"{os.fspath(path)} is not UTF-8 text: {err}") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{os.fspath(path)} is not valid JSON: {err}") from None
        except ValueError as err:
            raise ValueError(f"{os.fspath(path)}: {err}") from None
