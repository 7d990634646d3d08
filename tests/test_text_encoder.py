"""A pretrained language model as text encoder (the paper's BioClinicalBERT, Section III.B),
exercised offline with a tiny BERT saved exactly like a downloaded one."""

import json
import shutil

import pytest
import torch
from conftest import small_config
from safetensors.torch import load_file
from test_generation import sequence_logprob

from cknet import CKNet, PretrainedReportTokenizer, PretrainedTextEncoder, ReportTokenizer
from cknet.modules.cache import DecoderCache
from cknet.tokenizers import clean_report, load_tokenizer


@pytest.fixture(scope="module")
def bert_tokenizer(tiny_bert_dir):
    return PretrainedReportTokenizer.from_pretrained(tiny_bert_dir)


def bert_config(tiny_bert_dir, **overrides):
    return small_config(text_encoder=str(tiny_bert_dir), knowledge_source="random", **overrides)


@pytest.fixture(scope="module")
def model(tiny_bert_dir, bert_tokenizer):
    torch.manual_seed(3)
    return CKNet(bert_config(tiny_bert_dir), bert_tokenizer).eval()


# ---------------------------------------------------------------- tokenizer
def test_wordpiece_round_trip_gives_back_every_cleaned_iu_report(bert_tokenizer, iu_annotation):
    tok = bert_tokenizer
    reports = [e["report"] for e in iu_annotation["train"]]
    pieces = words = 0
    for report in reports:
        ids = tok.encode(report, max_length=400)
        assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
        assert tok.decode(ids) == clean_report(report)  # pieces merged, hyphens glued back
        pieces += len(ids) - 2
        words += len(clean_report(report).split())
    assert pieces > words  # the vocabulary of 800 splits words into pieces
    hyphenated = "the t-spine is well-aligned . no right-sided effusion ."
    assert tok.decode(tok.encode(hyphenated)) == hyphenated


def test_tokenizer_specials_truncation_and_batches(bert_tokenizer):
    tok = bert_tokenizer
    hf = tok.tokenizer
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (
        hf.pad_token_id, hf.cls_token_id, hf.sep_token_id, hf.unk_token_id)
    assert set(tok.non_report_ids) == set(hf.all_special_ids) - {hf.sep_token_id, hf.unk_token_id}
    long_report = "the heart is normal. " * 40
    ids = tok.encode(long_report, max_length=12)
    assert len(ids) == 12 and ids[-1] == tok.eos_id
    assert tok.decode(ids + [tok.tokenizer.convert_tokens_to_ids("heart")]) == tok.decode(ids)
    batch, mask = tok.encode_batch(["No effusion.", "The heart is normal. No pneumothorax."])
    assert batch.shape[0] == 2 and (batch[0, mask[0].sum():] == tok.pad_id).all()
    with pytest.raises(ValueError, match="outside"):
        tok.decode([tok.vocab_size])
    longer = PretrainedReportTokenizer(hf, max_length=90)  # counts word pieces...
    assert longer.reference_length == 60  # ...but references are cut as the peers cut them


def test_tokenizer_saves_and_loads_offline(bert_tokenizer, iu_annotation, tmp_path):
    bert_tokenizer.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert isinstance(loaded, PretrainedReportTokenizer)
    assert (tmp_path / "text_encoder" / "tokenizer_config.json").is_file()
    reports = [e["report"] for e in iu_annotation["val"][:50]]
    assert loaded.encode_batch(reports)[0].equal(bert_tokenizer.encode_batch(reports)[0])
    assert loaded.max_length == bert_tokenizer.max_length and loaded.dataset == "iu_xray"
    bert_tokenizer.save(tmp_path / "tokenizer.json")  # saving again replaces the folder whole
    assert load_tokenizer(tmp_path / "tokenizer.json").vocab_size == bert_tokenizer.vocab_size


# ---------------------------------------------------------------- causality
def test_features_at_t_do_not_depend_on_later_tokens(model, bert_tokenizer):
    ids, _ = bert_tokenizer.encode_batch(["The heart is normal. No effusion. Lungs are clear."])
    changed = ids.clone()
    changed[:, 6:] = torch.randint(5, bert_tokenizer.vocab_size, changed[:, 6:].shape)
    model.train()  # training mode (dropout is 0 in this config): the teacher-forced path
    try:
        first, second = model.text_features(ids), model.text_features(changed)
        images = torch.randn(1, 2, 3, 64, 64)
        torch.manual_seed(0)
        logits = model(images, ids).logits
        torch.manual_seed(0)
        logits_changed = model(images, changed).logits
    finally:
        model.eval()
    torch.testing.assert_close(first[:, :6], second[:, :6], rtol=0, atol=0)
    assert not torch.allclose(first[:, 6:], second[:, 6:])
    torch.testing.assert_close(logits[:, :6], logits_changed[:, :6], rtol=0, atol=0)


def test_a_bidirectional_encoder_is_refused():
    from transformers import BertConfig, BertModel

    encoder = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=32))  # is_decoder=False
    with pytest.raises(ValueError, match="later tokens"):
        PretrainedTextEncoder(encoder, d_model=32)


@pytest.mark.parametrize("capacity", [0, 40])
def test_incremental_features_with_the_cache_equal_the_full_prefix(model, bert_tokenizer, capacity):
    reports = ["The heart is normal. No effusion.", "Clear lungs. No pneumothorax."]
    ids, _ = bert_tokenizer.encode_batch(reports)
    with torch.no_grad():
        full = model.text_features(ids)
        cache = DecoderCache(capacity)
        steps = [model.text_features(ids[:, :3], cache)]
        cache.advance(3)
        for t in range(3, ids.shape[1]):
            steps.append(model.text_features(ids[:, t:t + 1], cache))
            cache.advance(1)
        cache.select(torch.tensor([1]))  # rows dropped and reordered together with ours
        again = DecoderCache(capacity)
        assert again.text_cache is None
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)
    assert cache.text_cache.get_seq_length() == ids.shape[1]
    if capacity:
        with pytest.raises(ValueError, match="cache holds 40 tokens"):
            model.text_features(torch.ones(1, capacity, dtype=torch.long), cache)


# ---------------------------------------------------------------- generation
def test_beam_scores_equal_a_full_forward_pass(model):
    images = torch.randn(3, 2, 3, 64, 64)
    results = model.generate(images, num_beams=4, num_return_sequences=4, max_new_tokens=12,
                             return_scores=True)
    for study, image in zip(results, images):
        for r in study:
            assert r.score == pytest.approx(sequence_logprob(model, image[None], r.token_ids), abs=1e-3)
            assert not set(r.token_ids) & set(model.tokenizer.non_report_ids)


def test_greedy_with_the_cache_equals_greedy_by_recomputation(model):
    images = torch.randn(2, 2, 3, 64, 64)
    found = model.generate(images, num_beams=1, max_new_tokens=10, return_scores=True)
    tok = model.tokenizer
    banned = list(tok.non_report_ids)
    with torch.no_grad():
        encoding = model.encode(images)
        ids = torch.full((2, 1), tok.bos_id)
        for _ in range(10):
            logits = model.decode(ids, encoding)[:, -1]
            logits[:, banned] = float("-inf")
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    for row, study in enumerate(found):
        body = ids[row, 1:].tolist()
        if tok.eos_id in body:
            body = body[: body.index(tok.eos_id) + 1]
        assert study[0].token_ids == body
        assert study[0].tokenized == tok.decode(body)


# ---------------------------------------------------------------- training and saving
def test_frozen_encoder_is_unchanged_by_training_steps(tiny_bert_dir, bert_tokenizer):
    model = CKNet(bert_config(tiny_bert_dir, dropout=0.1), bert_tokenizer).train()
    language_model = model.text_encoder.language_model
    assert not language_model.training and not any(p.requires_grad for p in language_model.parameters())
    assert list(model.text_encoder.language_model.parameters()) and all(
        not p.requires_grad for p in list(model.text_encoder.language_model.parameters()))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids, _ = bert_tokenizer.encode_batch(["The heart is normal.", "No effusion. Clear lungs."])
    for _ in range(3):
        loss = model(torch.randn(2, 2, 3, 64, 64), ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    lm_keys = [k for k in after if k.startswith("text_encoder.language_model.")]
    assert lm_keys and all(torch.equal(before[k], after[k]) for k in lm_keys)
    projection = "text_encoder.projection.weight"
    assert not torch.equal(before[projection], after[projection])
    original = load_file(tiny_bert_dir / "model.safetensors")  # the weights as downloaded
    prefix = "text_encoder.language_model."
    shared = [k for k in original if prefix + k in after]
    assert len(shared) == len(lm_keys) and all(torch.equal(original[k], after[prefix + k]) for k in shared)


def test_saved_model_reloads_offline_with_identical_outputs(
    tiny_bert_dir, bert_tokenizer, tmp_path, monkeypatch
):
    local = shutil.copytree(tiny_bert_dir, tmp_path / "bert")
    torch.manual_seed(4)
    model = CKNet(bert_config(local), PretrainedReportTokenizer.from_pretrained(local)).eval()
    model.save_pretrained(tmp_path / "saved")
    shutil.rmtree(local)  # nothing of the original folder is needed any more
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = CKNet.from_pretrained(tmp_path / "saved")
    saved_files = sorted(p.name for p in (tmp_path / "saved" / "text_encoder").iterdir())
    assert "config.json" in saved_files and "model.safetensors" not in saved_files
    images = torch.randn(2, 2, 3, 64, 64)
    ids, _ = bert_tokenizer.encode_batch(["The heart is normal.", "No effusion."])
    with torch.no_grad():
        torch.testing.assert_close(loaded(images, ids).logits, model(images, ids).logits, rtol=0, atol=0)
    assert loaded.generate(images, max_new_tokens=12) == model.generate(images, max_new_tokens=12)
    assert loaded.config.text_encoder == str(local)
    descriptor = json.loads((tmp_path / "saved" / "tokenizer.json").read_text())
    assert descriptor["type"] == "PretrainedReportTokenizer"
    card = (tmp_path / "saved" / "README.md").read_text()
    assert f"the language model `{local}` run causally, frozen" in card


def test_fine_tuning_uses_its_own_learning_rate(tmp_path, tiny_bert_dir):
    from test_training import dataset_without_test, tiny

    from cknet.training import train

    annotation = dataset_without_test(tmp_path / "data", count=12)
    model_config, training = tiny(epochs=1, text_encoder=str(tiny_bert_dir), train_text_encoder=True,
                                  lr_text_encoder=3e-4)
    result = train(model_config, training, annotation, tmp_path / "run", device="cpu", progress=False)
    assert result.history[0]["lr_text_encoder"] == pytest.approx(3e-4 * training.lr_decay)
    best = CKNet.from_pretrained(tmp_path / "run" / "best")
    original = load_file(tiny_bert_dir / "model.safetensors")
    tuned = best.state_dict()["text_encoder.language_model.embeddings.word_embeddings.weight"]
    assert not torch.equal(tuned, original["embeddings.word_embeddings.weight"])
    assert isinstance(load_tokenizer(tmp_path / "run" / "tokenizer.json"), PretrainedReportTokenizer)


# ---------------------------------------------------------------- errors
def test_mismatched_tokenizers_are_refused(tiny_bert_dir, bert_tokenizer, iu_tokenizer):
    with pytest.raises(ValueError, match="PretrainedReportTokenizer.from_pretrained"):
        CKNet(bert_config(tiny_bert_dir), iu_tokenizer)
    with pytest.raises(ValueError, match="must be a ReportTokenizer"):
        CKNet(small_config(knowledge_source="random"), bert_tokenizer)
    with pytest.raises(ValueError, match="train_text_encoder"):
        small_config(train_text_encoder=True)
    assert isinstance(iu_tokenizer, ReportTokenizer)


def test_unreachable_hub_id_says_how_to_work_offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no retries against an unreachable network
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError, match="local-dir") as err:
        PretrainedTextEncoder.from_pretrained("cknet-tests/no-such-clinical-bert", d_model=32)
    assert "pass its path instead of the hub id" in str(err.value)
    with pytest.raises(OSError, match="no-such-clinical-bert"):
        PretrainedReportTokenizer.from_pretrained("cknet-tests/no-such-clinical-bert")


def test_a_folder_laid_out_like_the_hub_repository_loads(tiny_bert_dir, bert_tokenizer, tmp_path):
    """emilyalsentzer/Bio_ClinicalBERT ships vocab.txt, config.json and pytorch_model.bin
    (no tokenizer.json, no safetensors): the same folder layout must load, the weights
    through torch.load(weights_only=True)."""
    from transformers import AutoConfig

    hub = tmp_path / "Bio_ClinicalBERT"
    hub.mkdir()
    vocabulary = sorted(bert_tokenizer.tokenizer.get_vocab().items(), key=lambda item: item[1])
    (hub / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocabulary))
    AutoConfig.from_pretrained(tiny_bert_dir).save_pretrained(hub)
    weights = load_file(tiny_bert_dir / "model.safetensors")
    torch.save(weights, hub / "pytorch_model.bin")

    tok = PretrainedReportTokenizer.from_pretrained(hub)
    report = "The t-spine is normal. No right-sided effusion."
    assert tok.encode(report) == bert_tokenizer.encode(report)
    assert tok.decode(tok.encode(report)) == clean_report(report)
    encoder = PretrainedTextEncoder.from_pretrained(hub, d_model=32)
    loaded = encoder.language_model.state_dict()
    assert all(torch.equal(weights[k], loaded[k]) for k in weights if k in loaded)
    assert len([k for k in weights if k in loaded]) == len(loaded)
