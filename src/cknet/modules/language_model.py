"""`PretrainedTextEncoder`: the textual features v_t from a pretrained language model.

Section III.B of the paper takes v_t from the last hidden layer of BioClinicalBERT
(768-dimensional, Section IV.C). Any Hugging Face encoder of the BERT family works
(PubMedBERT, RadBERT, RoBERTa-style models, your own): it is loaded with
``transformers``' Auto classes, its hidden size projected to d_model:

    v_t = Dropout(W_p h_t + b_p),   h_t = LM(x_1 .. x_t)[t]

Causality. The decoder predicts token t + 1 from v_1 .. v_t, so h_t must not see later
tokens. A bidirectional encoder would leak them during teacher forcing, so the model
is run as a decoder (``is_decoder=True``: causal self-attention, no cross-attention);
loading checks this with a probe (features of a prefix must not change when later
tokens do) and refuses a model that still leaks. The same causal model runs in
generation, incrementally, with its own key/value cache (a preallocated
``StaticCache`` sized to the decoding length, so a step costs the same at any prefix
length), kept row-for-row with the decoder's cache.

Frozen by default (its weights are saved with the model all the same, so a saved
CKNet reloads offline); ``trainable=True`` fine-tunes it (``TrainingConfig.lr_text_encoder``).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cknet.persistence.hub import check_hf_config_sizes, load_hf_pretrained

MIN_TRANSFORMERS = (5, 0)


def _causal_config(config: Any) -> Any:
    config.is_decoder = True
    config.add_cross_attention = False
    return config


class PretrainedTextEncoder(nn.Module):
    """A Hugging Face language model run causally, projected to d_model.

    Build it with `from_pretrained` (weights from a hub id or folder) or `from_config`
    (the architecture only, e.g. before loading a saved CKNet's weights).

    Args:
        language_model: a ``transformers`` model with ``is_decoder=True`` (causal) whose
            forward takes ``input_ids`` and a key/value ``cache``.
        d_model: the output feature size.
        dropout: dropout on the output.
        trainable: fine-tune the language model (False: frozen, in eval mode, no gradient).

    Raises:
        ValueError: if the model's features at a position depend on later tokens, or
            its forward takes no key/value cache.

    Shapes:
        input: ``input_ids`` ``(B, T)``.
        output: ``(B, T, d_model)``; position t depends on ``input_ids[:, :t+1]`` only.
    """

    def __init__(self, language_model: nn.Module, d_model: int, dropout: float = 0.1,
                 trainable: bool = False) -> None:
        super().__init__()
        if getattr(language_model, "pooler", None) is not None:
            language_model.pooler = None  # a sentence summary the decoder never uses
        self.language_model = language_model
        self.trainable = trainable
        if not trainable:
            language_model.requires_grad_(False).eval()
        hidden = language_model.config.hidden_size
        self.projection = nn.Linear(hidden, d_model)
        self.dropout = nn.Dropout(dropout)
        self.max_positions = int(getattr(language_model.config, "max_position_embeddings", 0) or 0)
        parameters = inspect.signature(language_model.forward).parameters
        if "cache" not in parameters:
            raise ValueError(
                f"the text encoder {type(language_model).__name__} takes no key/value cache "
                f"(its forward has no `cache` argument), so it cannot decode incrementally"
            )
        self._check_causal()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        d_model: int,
        dropout: float = 0.1,
        trainable: bool = False,
    ) -> PretrainedTextEncoder:
        """Load a language model's weights from a local folder or the Hugging Face Hub.

        Args:
            name_or_path: e.g. ``"emilyalsentzer/Bio_ClinicalBERT"`` or its local copy.
            d_model: the output feature size.
            dropout: dropout on the output.
            trainable: fine-tune the language model.

        Returns:
            The encoder.

        Raises:
            OSError: when the model is neither local nor downloadable (the message says
                how to place it in a local folder).
            ImportError: for ``transformers`` older than 5.0.
        """
        from transformers import AutoConfig, AutoModel

        _check_transformers()
        config = _causal_config(load_hf_pretrained(AutoConfig, name_or_path, "text encoder"))
        model = load_hf_pretrained(AutoModel, name_or_path, "text encoder", config=config)
        return cls(model, d_model, dropout, trainable)

    @classmethod
    def from_config(
        cls,
        directory: str | os.PathLike[str],
        d_model: int,
        dropout: float = 0.1,
        trainable: bool = False,
    ) -> PretrainedTextEncoder:
        """Build the architecture described by ``directory/config.json``, with fresh
        weights (to be replaced, e.g. by a saved CKNet's); nothing is downloaded.

        Args:
            directory: a folder holding the language model's ``config.json``.
            d_model: the output feature size.
            dropout: dropout on the output.
            trainable: fine-tune the language model.

        Returns:
            The encoder.
        """
        from transformers import AutoConfig, AutoModel

        _check_transformers()
        config = _causal_config(check_hf_config_sizes(
            AutoConfig.from_pretrained(Path(directory), local_files_only=True, trust_remote_code=False),
            directory))
        return cls(AutoModel.from_config(config, trust_remote_code=False), d_model, dropout, trainable)

    def save_config(self, directory: str | os.PathLike[str]) -> None:
        """Write the language model's architecture (``config.json``) into a folder, so that
        `from_config` rebuilds it offline.

        Args:
            directory: the folder (created if needed).
        """
        self.language_model.config.save_pretrained(Path(directory))

    def train(self, mode: bool = True) -> PretrainedTextEncoder:
        """Set training mode; a frozen language model stays in evaluation mode.

        Args:
            mode: training (True) or evaluation (False).

        Returns:
            The module.
        """
        super().train(mode)
        if not self.trainable:
            self.language_model.eval()
        return self

    def new_cache(self, capacity: int) -> Any:
        """A key/value cache for incremental decoding.

        Args:
            capacity: most tokens it will hold (0: grow as needed).

        Returns:
            A ``transformers`` cache: preallocated (``StaticCache``) for a known capacity.
        """
        from transformers import DynamicCache, StaticCache

        config = self.language_model.config
        if capacity > 0:
            return StaticCache(config=config, max_cache_len=capacity)
        return DynamicCache(config=config)

    def forward(self, input_ids: torch.Tensor, cache: Any | None = None) -> torch.Tensor:
        """v_t for ``input_ids`` ``(B, T)``.

        Args:
            input_ids: the whole prefix (without a cache) or the tokens after those
                already in ``cache``.
            cache: the language model's key/value cache (see `new_cache`), advanced in place.

        Returns:
            ``(B, T, d_model)``.

        Raises:
            ValueError: when the positions would exceed the model's
                ``max_position_embeddings`` or a preallocated cache's slots.
        """
        start = cache.get_seq_length() if cache is not None else 0
        end = start + input_ids.shape[1]
        if self.max_positions and end > self.max_positions:
            raise ValueError(
                f"the text encoder handles {self.max_positions} positions, asked for "
                f"{end}: lower max_length / max_new_tokens"
            )
        slots = cache.get_max_length() if cache is not None else -1
        if slots is not None and 0 <= slots < end:
            raise ValueError(
                f"the text encoder's cache holds {slots} tokens, asked for {end}: reserve more "
                f"(DecoderCache capacity, or 0 to let it grow)"
            )
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            hidden = self.language_model(
                input_ids=input_ids, cache=cache, use_cache=cache is not None
            ).last_hidden_state
        return self.dropout(self.projection(hidden.to(self.projection.weight.dtype)))

    @torch.no_grad()
    def _check_causal(self) -> None:
        was_training = self.language_model.training
        self.language_model.eval()
        vocab = self.language_model.config.vocab_size
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(0, vocab, (2, 6), generator=generator)
        changed = ids.clone()
        changed[:, 3:] = torch.randint(0, vocab, (2, 3), generator=generator)
        device = next(self.language_model.parameters()).device
        first = self.language_model(input_ids=ids.to(device)).last_hidden_state[:, :3]
        second = self.language_model(input_ids=changed.to(device)).last_hidden_state[:, :3]
        self.language_model.train(was_training)
        scale = first.abs().max().clamp_min(1e-6)
        if ((first - second).abs().max() / scale) > 1e-4:
            raise ValueError(
                f"the text encoder {type(self.language_model).__name__} lets a position see "
                f"later tokens even when built with is_decoder=True, so its features would leak "
                f"the report being predicted; use a model of the BERT family (BERT, RoBERTa, "
                f"ELECTRA, ...) that supports causal decoding"
            )


def _check_transformers() -> None:
    import transformers

    version = tuple(int(p) for p in transformers.__version__.split(".")[:2] if p.isdigit())
    if version < MIN_TRANSFORMERS:
        raise ImportError(
            f"a pretrained text encoder needs transformers >= "
            f"{'.'.join(map(str, MIN_TRANSFORMERS))}, found {transformers.__version__}: "
            f"pip install -U 'transformers>=5'"
        )
