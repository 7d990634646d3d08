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
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
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
