"""Generation: beam search against exhaustive enumeration and full recomputation."""

import itertools

import numpy as np
import pytest
import torch
from conftest import DEVICE, SAMPLES, require, small_config
from PIL import Image

from cknet import CKNet, ReportTokenizer
from cknet.generation import BanTokens
from cknet.generation.search import Specials, beam_search, sample_search


@pytest.fixture(scope="module")
def model(iu_tokenizer):
    torch.manual_seed(1)
    return CKNet(small_config(), iu_tokenizer).eval()


@pytest.fixture(scope="module")
def tiny():
    """A model over a 6-token vocabulary (4 specials + 2 words): small enough to enumerate."""
    torch.manual_seed(2)
    tok = ReportTokenizer(["effusion", "normal"], max_length=60)
    return CKNet(small_config(d_model=32, num_heads=2, d_ff=32), tok).eval()


def sequence_logprob(model, images, body):
    """Summed log-probability of ``body`` (ids after <bos>) by a full forward pass."""
    ids = torch.tensor([[model.tokenizer.bos_id] + list(body)])
    with torch.no_grad():
        logp = model(images, ids).logits[0, :-1].log_softmax(-1)
    return float(logp.gather(1, ids[0, 1:, None]).sum())


def all_sequences(tok, max_new_tokens):
    """Every report the search can produce: ends with <eos> or is cut at the limit."""
    allowed = [tok.eos_id, tok.unk_id] + [tok.token_to_id[w] for w in tok.words]
    words = [i for i in allowed if i != tok.eos_id]
    for length in range(1, max_new_tokens + 1):
        for prefix in itertools.product(words, repeat=length - 1):
            yield list(prefix) + [tok.eos_id]
    yield from (list(p) for p in itertools.product(words, repeat=max_new_tokens))


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, -0.5])
def test_wide_beam_equals_exhaustive_enumeration(tiny, length_penalty):
    images = torch.randn(1, 2, 3, 64, 64)
    steps = 4
    scored = []
    for body in all_sequences(tiny.tokenizer, steps):
        total = sequence_logprob(tiny, images, body)
        scored.append((total / len(body) ** length_penalty if length_penalty else total, body))
    scored.sort(key=lambda item: -item[0])
    results = tiny.generate(images, num_beams=3 ** steps, max_new_tokens=steps,
                            length_penalty=length_penalty, num_return_sequences=5,
                            return_scores=True)[0]
    for (score, body), found in zip(scored[:5], results):
        assert found.token_ids == body
        assert found.score == pytest.approx(score, abs=1e-4)


def test_one_beam_equals_greedy(model):
    images = torch.randn(4, 2, 3, 64, 64)
    tok = model.tokenizer
    specials, processors = Specials(tok.bos_id, tok.eos_id, tok.pad_id), [BanTokens(tok.non_report_ids)]
    with torch.no_grad():
        encoding = model.encode(images)
        greedy = sample_search(model, encoding, 4, specials, 12, processors)
        beam = beam_search(model, encoding, 4, specials, 12, 1, processors)
    assert torch.equal(greedy.tokens, beam.tokens)
    torch.testing.assert_close(greedy.scores, beam.scores)


def test_scores_equal_full_recomputation_and_finished_are_never_extended(model):
    images = torch.randn(3, 2, 3, 64, 64)
    results = model.generate(images, num_beams=4, num_return_sequences=4, max_new_tokens=15,
                             min_new_tokens=2, return_scores=True)
    eos = model.tokenizer.eos_id
    for study, image in zip(results, images):
        scores = [r.score for r in study]
        assert scores == sorted(scores, reverse=True)  # best first
        for r in study:
            assert eos not in r.token_ids[:-1]  # nothing after <eos>
            assert len(r.token_ids) >= 2
            assert r.score == pytest.approx(sequence_logprob(model, image[None], r.token_ids), abs=1e-4)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_batch_equals_each_study_alone(model, num_beams):
    images = torch.randn(4, 2, 3, 64, 64)
    together = model.generate(images, num_beams=num_beams, max_new_tokens=20)
    alone = [model.generate(images[i:i + 1], num_beams=num_beams, max_new_tokens=20)[0] for i in range(4)]
    assert together == alone
    assert model.generate(images, num_beams=num_beams, max_new_tokens=20, batch_size=3) == together


@pytest.mark.parametrize("num_beams", [1, 3])
def test_no_repeat_ngram_blocking(model, num_beams):
    images = torch.randn(3, 2, 3, 64, 64)
    plain = model.generate(images, num_beams=num_beams, max_new_tokens=30, min_new_tokens=29)

    def repeats(text, n):
        words = text.split()
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        return len(grams) != len(set(grams))

    assert any(repeats(t, 2) for t in plain)  # this random model repeats itself...
    blocked = model.generate(images, num_beams=num_beams, max_new_tokens=30, min_new_tokens=29,
                             no_repeat_ngram_size=2)
    assert not any(repeats(t, 2) for t in blocked)  # ...until told not to


def test_sampling(model):
    images = torch.randn(2, 2, 3, 64, 64)
    first = model.generate(images, do_sample=True, num_beams=1, max_new_tokens=10,
                           num_return_sequences=3, generator=torch.Generator().manual_seed(0))
    again = model.generate(images, do_sample=True, num_beams=1, max_new_tokens=10,
                           num_return_sequences=3, generator=torch.Generator().manual_seed(0))
    assert first == again and len(first) == 2 and all(len(s) == 3 for s in first)
    top1 = model.generate(images, do_sample=True, num_beams=1, top_k=1, max_new_tokens=10)
    assert top1 == model.generate(images, num_beams=1, max_new_tokens=10)
    tiny_p = model.generate(images, do_sample=True, num_beams=1, top_p=1e-6, max_new_tokens=10)
    assert tiny_p == top1


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(num_beams=2, num_return_sequences=3), "num_return_sequences"),
     (dict(num_beams=3, do_sample=True), "do_sample"),
     (dict(num_beams=0), "num_beams"), (dict(max_new_tokens=0), "max_new_tokens"),
     (dict(temperature=0.0, do_sample=True, num_beams=1), "temperature"),
     (dict(top_p=0.0), "top_p"), (dict(batch_size=0), "batch_size")],
)
def test_generate_argument_errors(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.generate(torch.randn(1, 2, 3, 64, 64), **kwargs)


def test_bfloat16_generation(iu_tokenizer):
    model = CKNet(small_config(), iu_tokenizer).eval().to(DEVICE, torch.bfloat16)
    texts = model.generate(torch.randn(2, 2, 3, 64, 64, device=DEVICE), max_new_tokens=6)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_every_input_form_gives_the_same_report(model, tmp_path):
    folder = require(SAMPLES / "iu_xray" / "CXR1900_IM-0584")
    paths = [folder / "0.png", folder / "1.png"]
    pil = [Image.open(p) for p in paths]
    arrays = [np.array(p) for p in pil]
    reference = model.generate([paths], max_new_tokens=8)
    assert model.generate([folder], max_new_tokens=8) == reference
    assert model.generate([pil], max_new_tokens=8) == reference
    assert model.generate([arrays], max_new_tokens=8) == reference
    tensors = [torch.from_numpy(a).permute(2, 0, 1) for a in arrays]
    assert model.generate([tensors], max_new_tokens=8) == reference
    grey8 = []
    for p in pil:  # stretched to 0..255, so that 16-bit min-max rescaling is exact
        g = np.asarray(p.convert("L")).astype(float)
        grey8.append(np.round((g - g.min()) * 255 / (g.max() - g.min())).astype(np.uint8))
    grey16 = [g.astype(np.uint16) * 257 for g in grey8]
    assert model.generate([grey16], max_new_tokens=8) == model.generate([grey8], max_new_tokens=8)
    rgba = [p.convert("RGBA") for p in pil]
    assert model.generate([rgba], max_new_tokens=8) == reference
    nih = sorted(require(SAMPLES / "nih").glob("*.png"))
    assert len(model.generate(nih[:2], max_new_tokens=4, repeat_single_view=True)) == 2


def reference_beam_search(model, image, beams, steps, length_penalty):
    """Plain beam search per study, by full recomputation, always run to the length limit."""
    tok = model.tokenizer
    running, finished = [([], 0.0)], []
    for _ in range(steps):
        candidates = []
        for body, score in running:
            ids = torch.tensor([[tok.bos_id] + body])
            with torch.no_grad():
                logp = model(image, ids).logits[0, -1].float().log_softmax(-1)
            logp[[tok.pad_id, tok.bos_id]] = float("-inf")
            for token, value in enumerate(logp.tolist()):
                candidates.append((score + value, body + [token]))
        candidates.sort(key=lambda c: -c[0])
        running = []
        for rank, (score, body) in enumerate(candidates[: 2 * beams]):
            if body[-1] == tok.eos_id:
                if rank < beams:
                    finished.append((score / len(body) ** length_penalty, body))
            elif len(running) < beams:
                running.append((body, score))
    finished += [(score / steps ** length_penalty, body) for body, score in running]
    return sorted(finished, key=lambda f: -f[0])[:beams]


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_early_stopping_beam_search_equals_reference_run_to_the_end(iu_tokenizer, length_penalty):
    torch.manual_seed(4)
    model = CKNet(small_config(), iu_tokenizer).eval()
    with torch.no_grad():  # make <eos> likely so that hypotheses finish early and often
        model.lm_head.bias[iu_tokenizer.eos_id] += 2.0
    images = torch.randn(3, 2, 3, 64, 64)
    steps, beams = 12, 3
    found = model.generate(images, num_beams=beams, num_return_sequences=beams, max_new_tokens=steps,
                           length_penalty=length_penalty, return_scores=True)
    for image, study in zip(images, found):
        expected = reference_beam_search(model, image[None], beams, steps, length_penalty)
        assert [r.token_ids for r in study] == [body for _, body in expected]
        assert [r.score for r in study] == pytest.approx([s for s, _ in expected], abs=1e-4)


def test_the_models_generation_defaults_are_used_saved_and_overridden(tiny, tmp_path):
    """generate starts from model.generation_config (saved as generation_config.json); a
    call's options override it; a bad saved file is refused with its name."""
    import json

    from cknet import GenerationConfig

    images = torch.randn(2, 2, 3, 64, 64)
    greedy = tiny.generate(images, num_beams=1, max_new_tokens=4)
    wide = tiny.generate(images, num_beams=6, max_new_tokens=4)
    tiny.generation_config = GenerationConfig(num_beams=6, max_new_tokens=4)
    try:
        assert tiny.generate(images) == wide
        assert tiny.generate(images, num_beams=1) == greedy
        tiny.save_pretrained(tmp_path / "m")
    finally:
        tiny.generation_config = GenerationConfig()
    saved = json.loads((tmp_path / "m" / "generation_config.json").read_text())
    assert (saved["num_beams"], saved["max_new_tokens"]) == (6, 4)
    loaded = CKNet.from_pretrained(tmp_path / "m")
    assert loaded.generation_config == GenerationConfig(num_beams=6, max_new_tokens=4)
    assert loaded.generate(images) == wide
    (tmp_path / "m" / "generation_config.json").write_text(json.dumps({**saved, "beams": 2}))
    with pytest.raises(ValueError, match=r"generation_config\.json.*beams"):
        CKNet.from_pretrained(tmp_path / "m")
