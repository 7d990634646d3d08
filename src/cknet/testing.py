"""Helpers for tests, benchmarks and examples that must run offline.

`make_tiny_bert` writes a small BERT folder laid out exactly like a downloaded
BioClinicalBERT (``config.json``, ``model.safetensors``, tokenizer files), so that code
meant for ``CKNetConfig(text_encoder="emilyalsentzer/Bio_ClinicalBERT")`` can be run
end to end without a download. Its weights are random: it is a stand-in for the
plumbing, not a pretrained clinical language model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from cknet.tokenizers import clean_report

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def make_tiny_bert(
    reports: Iterable[str],
    directory: str | os.PathLike[str],
    vocab_size: int = 1000,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    dataset: str = "iu_xray",
    seed: int = 0,
) -> Path:
    """Train a WordPiece vocabulary on reports and save a randomly initialised BERT with it.

    Args:
        reports: raw report texts (e.g. a train split); they are cleaned with
            `clean_report` first, as `cknet.PretrainedReportTokenizer` will clean its input.
        directory: the folder to write (created if needed).
        vocab_size: the WordPiece vocabulary's size at most (special tokens included).
        hidden_size: BERT's hidden size.
        num_layers: BERT's layers.
        num_heads: BERT's attention heads.
        dataset: report cleaning rules, ``"iu_xray"`` or ``"mimic_cxr"``.
        seed: seeds the random weights.

    Returns:
        The folder, loadable with ``PretrainedReportTokenizer.from_pretrained`` and as
        ``CKNetConfig.text_encoder``.

    Raises:
        ValueError: if no report has any text once cleaned.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    cleaned = [c for c in (clean_report(r, dataset) for r in reports) if c]
    if not cleaned:
        raise ValueError("no report has any text once cleaned: cannot train a vocabulary")
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.decoder = decoders.WordPiece()
    wordpiece.train_from_iterator(
        cleaned, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(BERT_SPECIAL_TOKENS))
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=wordpiece, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=4 * hidden_size, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    return folder


def _byte_level_bpe(texts: Iterable[str], folder: Path, vocab_size: int, special_tokens: list[str]) -> Any:
    """A byte-level BPE vocabulary trained on texts (``folder`` is created for it)."""
    from tokenizers import ByteLevelBPETokenizer

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, special_tokens=special_tokens)
    return bpe


def make_tiny_roberta(texts: Iterable[str], directory: str | os.PathLike[str], vocab_size: int = 400,
                      hidden_size: int = 32, num_layers: int = 6, num_heads: int = 2, seed: int = 0) -> Path:
    """Train a byte-level BPE vocabulary on texts and save a randomly initialised RoBERTa
    with it, in the layout of ``distilroberta-base`` (``config.json``, weights,
    ``vocab.json``, ``merges.txt``): a stand-in for BERTScore's model in tests.

    Args:
        texts: raw texts to learn the vocabulary from.
        directory: the folder to write (created if needed).
        vocab_size: the vocabulary's size at most (special tokens included).
        hidden_size: the hidden size.
        num_layers: the layers (distilroberta-base has 6).
        num_heads: the attention heads.
        seed: seeds the random weights.

    Returns:
        The folder.
    """
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    folder = Path(directory)
    bpe = _byte_level_bpe(texts, folder, vocab_size, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"),
                                 model_max_length=512)
    tokenizer.save_pretrained(folder)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
                           num_attention_heads=num_heads, intermediate_size=2 * hidden_size,
                           max_position_embeddings=514, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           type_vocab_size=1)
    torch.manual_seed(seed)
    RobertaModel(config).save_pretrained(folder)
    return folder


def _reproducible_bert(reports: Iterable[str], folder: Path, seed: int, model_class: Any = None,
                       **config: Any) -> Path:
    """A tiny BERT whose WordPiece vocabulary is the characters and the 200 most frequent
    words of the reports (not trained, so the same reports always give the same model),
    with BERT's ``[CLS] ... [SEP]`` post-processing, saved with random weights."""
    import re
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = Counter(w for r in reports for w in re.findall(r"\w+|[^\w\s]", r.lower()))
    characters = sorted({c for w in words for c in w})
    frequent = sorted(words, key=lambda w: (-words[w], w))[:200]
    tokens = [*BERT_SPECIAL_TOKENS, *characters, *(f"##{c}" for c in characters)]
    tokens += [w for w in frequent if w not in tokens]
    wordpiece = Tokenizer(models.WordPiece({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.decoder = decoders.WordPiece()
    wordpiece.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    BertTokenizerFast(
        tokenizer_object=wordpiece, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    ).save_pretrained(folder)
    torch.manual_seed(seed)
    size = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
    bert_config = BertConfig(vocab_size=len(tokens), max_position_embeddings=512, pad_token_id=0,
                             **(size | config))
    (model_class or BertModel)(bert_config).save_pretrained(folder)
    return folder


RADGRAPH_ENTITIES = ("ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA")
RADGRAPH_RELATIONS = ("modify", "located_at", "suggestive_of")


def make_tiny_radgraph(reports: Iterable[str], directory: str | os.PathLike[str], max_length: int = 512,
                       max_span_width: int = 8, hidden: int = 16, seed: int = 0,
                       bert_size: dict[str, int] | None = None) -> Path:
    """Write a randomly initialised RadGraph model in the published layout (what
    ``StanfordAIMI/RRG_scorers``' ``radgraph.tar.gz`` unpacks to: ``config.json``,
    ``vocabulary/``, ``weights.th``), with a tiny BERT (``directory/bert``, named in
    ``config.json``; its WordPiece vocabulary the characters and the 200 most frequent
    words of the reports, so that the same reports give the same model): a stand-in for
    `cknet.metrics.radgraph` in tests.

    The weights of the DyGIE++ heads read by RadGraph (span width embedding, NER scorer,
    mention pruner, relation scorer, two-layer feed-forward networks) are drawn from
    N(0, 0.5²), the label biases shifted down so that most spans are not entities.

    Args:
        reports: raw reports to take the BERT vocabulary from.
        directory: the folder to write (created if needed).
        max_length: BERT's segment length in ``config.json`` (longer reports are folded).
        max_span_width: the longest span, in words.
        hidden: the feed-forward networks' width and the width embedding's size.
        seed: seeds the random weights.
        bert_size: BERT's size instead of the tiny one (``hidden_size``, ``num_hidden_layers``,
            ``num_attention_heads``, ``intermediate_size``), e.g. the published model's
            for speed measurements.

    Returns:
        The model's folder, ``directory/radgraph``.
    """
    import json

    folder = Path(directory)
    bert = _reproducible_bert(reports, folder / "bert", seed, **(bert_size or {}))
    model = folder / "radgraph"
    (model / "vocabulary").mkdir(parents=True, exist_ok=True)
    (model / "vocabulary" / "non_padded_namespaces.txt").write_text("*tags\n*labels\n")
    (model / "vocabulary" / "radgraph__ner_labels.txt").write_text("\n".join(("", *RADGRAPH_ENTITIES)) + "\n")
    (model / "vocabulary" / "radgraph__relation_labels.txt").write_text("\n".join(RADGRAPH_RELATIONS) + "\n")
    embedder = {"type": "pretrained_transformer_mismatched", "model_name": str(bert.resolve()),
                "max_length": max_length}
    config = {
        "dataset_reader": {"type": "dygie", "max_span_width": max_span_width,
                           "token_indexers": {"bert": embedder}},
        "model": {
            "type": "dygie", "embedder": {"token_embedders": {"bert": embedder}},
            "initializer": {}, "module_initializer": {}, "feature_size": hidden,
            "max_span_width": max_span_width, "target_task": "relation",
            "feedforward_params": {"num_layers": 2, "hidden_dims": hidden, "dropout": 0.4},
            "loss_weights": {"ner": 0.2, "relation": 1.0, "coref": 0.0, "events": 0.0},
            "modules": {"coref": {"spans_per_word": 0.3, "max_antecedents": 100, "coref_prop": 0},
                        "ner": {}, "relation": {"spans_per_word": 0.5},
                        "events": {"trigger_spans_per_word": 0.3, "argument_spans_per_word": 0.8,
                                   "loss_weights": {"trigger": 1.0, "arguments": 0.5}}},
        },
    }
    (model / "config.json").write_text(json.dumps(config, indent=2))
    generator = torch.Generator().manual_seed(seed)
    span = 2 * (bert_size or {}).get("hidden_size", 32) + hidden

    def linear(name: str, inputs: int, outputs: int, shift: float = 0.0) -> dict[str, torch.Tensor]:
        weight = torch.randn(outputs, inputs, generator=generator) * 0.5
        bias = torch.randn(outputs, generator=generator) * 0.5 + shift
        return {f"{name}.weight": weight, f"{name}.bias": bias}

    def feedforward(name: str, inputs: int) -> dict[str, torch.Tensor]:
        first = linear(f"{name}._linear_layers.0", inputs, hidden)
        return {**first, **linear(f"{name}._linear_layers.1", hidden, hidden)}

    ner, rel = "radgraph__ner_labels", "radgraph__relation_labels"
    width_embedding = torch.randn(max_span_width, hidden, generator=generator)
    state = {
        "_endpoint_span_extractor._span_width_embedding.weight": width_embedding,
        **feedforward(f"_ner._ner_scorers.{ner}.0._module", span),
        **linear(f"_ner._ner_scorers.{ner}.1._module", hidden, len(RADGRAPH_ENTITIES), shift=-6.0),
        **feedforward(f"_relation._mention_pruners.{rel}._scorer.0._module", span),
        **linear(f"_relation._mention_pruners.{rel}._scorer.1._module", hidden, 1),
        **feedforward(f"_relation._relation_feedforwards.{rel}", 3 * span),
        **linear(f"_relation._relation_scorers.{rel}", hidden, len(RADGRAPH_RELATIONS), shift=-8.0),
    }
    from safetensors.torch import load_file

    prefix = "_embedder.token_embedder_bert._matched_embedder.transformer_model."
    state.update({prefix + k: v for k, v in load_file(bert / "model.safetensors").items()})
    torch.save(state, model / "weights.th")
    return model


RATESCORE_TYPES = ("ABNORMALITY", "NON-ABNORMALITY", "DISEASE", "NON-DISEASE", "ANATOMY")


def make_tiny_ratescore(
    reports: Iterable[str], directory: str | os.PathLike[str], seed: int = 0
) -> tuple[Path, Path]:
    """Write a random RaTEScore NER model (a token classifier with the B-/I- tags of
    RaTEScore's five entity types, in the role of ``Angelakeke/RaTE-NER-Deberta``) and a
    random entity encoder (in the role of ``FremyCompany/BioLORD-2023-C``), both tiny
    BERTs with a vocabulary taken from the reports and weights drawn from N(0, 0.3²) (so
    that tags and embeddings vary from token to token): stand-ins for
    `cknet.metrics.ratescore` in tests.

    Args:
        reports: raw reports to take the vocabulary from.
        directory: the folder to write (``ner/`` and ``embedding/`` inside).
        seed: seeds the random weights.

    Returns:
        The NER model's folder and the encoder's.
    """
    from transformers import BertForTokenClassification

    folder = Path(directory)
    reports = list(reports)
    labels = ["O", *(f"{prefix}-{kind}" for kind in RATESCORE_TYPES for prefix in ("B", "I"))]
    ner = _reproducible_bert(reports, folder / "ner", seed, BertForTokenClassification, initializer_range=0.3,
                             id2label=dict(enumerate(labels)), label2id={t: i for i, t in enumerate(labels)})
    return ner, _reproducible_bert(reports, folder / "embedding", seed + 1, initializer_range=0.3)


def make_tiny_causal_lm(texts: Iterable[str], directory: str | os.PathLike[str], vocab_size: int = 300,
                        seed: int = 0) -> Path:
    """Train a byte-level BPE vocabulary on texts and save a randomly initialised GPT-2
    (2 layers of 32) with it, ``<|endoftext|>`` its end-of-text token: a stand-in for
    GREEN's judge (`cknet.metrics.green`) in tests.

    Args:
        texts: raw texts to learn the vocabulary from.
        directory: the folder to write (created if needed).
        vocab_size: the vocabulary's size at most.
        seed: seeds the random weights.

    Returns:
        The folder.
    """
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = Path(directory)
    end = "<|endoftext|>"
    bpe = _byte_level_bpe(texts, folder, vocab_size, [end])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=end, bos_token=end,
                                        unk_token=end)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=4096,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder
