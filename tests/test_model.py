import dataclasses
import json

import pytest
import torch
from conftest import small_config

from cknet import CKNet, KnowledgeGraph
from cknet.explain import knowledge_attention
from cknet.modules.cache import DecoderCache


@pytest.fixture(scope="module")
def model(iu_tokenizer):
    torch.manual_seed(0)
    return CKNet(small_config(), iu_tokenizer).eval()


def images_for(config, batch=2):
    return torch.randn(batch, config.num_views, 3, config.image_size, config.image_size)


@pytest.mark.parametrize("source", ["image", "static", "random", "none"])
def test_forward_shapes_and_loss(iu_tokenizer, source):
    model = CKNet(small_config(knowledge_source=source), iu_tokenizer)
    ids, _ = iu_tokenizer.encode_batch(["the heart is normal. no effusion.", "lungs are clear."])
    out = model(images_for(model.config), ids, labels=ids)
    assert out.logits.shape == (2, ids.shape[1], iu_tokenizer.vocab_size)
    # The loss is the mean cross-entropy over real target tokens, shifted by one.
    logp = out.logits[:, :-1].log_softmax(-1)
    targets = ids[:, 1:]
    mask = targets != iu_tokenizer.pad_id
    expected = -logp.gather(-1, targets[..., None])[..., 0][mask].mean()
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert model.lm_head.weight.grad is not None
    assert (model.cross_modal is None) == (source == "none")


@pytest.mark.parametrize("source", ["image", "static"])
def test_knowledge_stage_is_frozen(iu_tokenizer, source):
    model = CKNet(small_config(knowledge_source=source), iu_tokenizer).train()
    frozen = model.knowledge_source.graph_model if source == "image" else model
    prefix = "" if source == "image" else "knowledge_source.matrix"
    before = {k: v.clone() for k, v in frozen.state_dict().items() if k.startswith(prefix)}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    ids, _ = iu_tokenizer.encode_batch(["no effusion.", "heart is normal."])
    for _ in range(2):
        optimizer.zero_grad()
        model(images_for(model.config), ids, labels=ids).loss.backward()
        optimizer.step()
    after = frozen.state_dict()
    assert before and all(torch.equal(before[k], after[k]) for k in before)
    if source == "image":
        assert not any(p.requires_grad for p in model.knowledge_source.graph_model.parameters())
        assert not model.knowledge_source.graph_model.training  # e.g. batch norm statistics never move


def test_decoder_is_causal(model, iu_tokenizer):
    ids = iu_tokenizer.encode("the heart is normal in size . the lungs are clear .")
    ids = torch.tensor([ids, ids])
    changed = ids.clone()
    t = 5
    changed[:, t + 1:] = torch.randint(4, iu_tokenizer.vocab_size, changed[:, t + 1:].shape)
    images = images_for(model.config)
    with torch.no_grad():
        a, b = model(images, ids).logits, model(images, changed).logits
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


@pytest.mark.parametrize("source", ["image", "static", "random", "none"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_cached_decoding_equals_full_recomputation(iu_tokenizer, source, norm_first):
    model = CKNet(small_config(knowledge_source=source, norm_first=norm_first), iu_tokenizer).eval()
    ids = torch.randint(4, iu_tokenizer.vocab_size, (3, 12))
    ids[:, 0] = iu_tokenizer.bos_id
    images = images_for(model.config, 3)
    with torch.no_grad():
        full = model(images, ids).logits
        encoding = model.encode(images)
        cache = DecoderCache()
        steps = [model.decode(ids[:, :4], encoding, cache)]  # a prefix at once, then one by one
        for t in range(4, 12):
            steps.append(model.decode(ids[:, t:t + 1], encoding, cache))
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=1e-5)


def test_greedy_generation_matches_argmax_of_full_recomputation(model, iu_tokenizer):
    images = images_for(model.config, 3)
    texts = model.generate(images, num_beams=1, max_new_tokens=8, readable=False)
    assert len(texts) == 3
    ids = torch.full((3, 1), iu_tokenizer.bos_id)
    with torch.no_grad():
        for _ in range(8):
            logits = model(images, ids).logits[:, -1]
            logits[:, [iu_tokenizer.pad_id, iu_tokenizer.bos_id]] = float("-inf")  # never generated
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    expected = []
    for row in ids.tolist():  # cut each row at its first <eos> as generate does
        expected.append(iu_tokenizer.decode(row))
    assert texts == expected


def test_save_load_identical_logits(tmp_path, iu_tokenizer):
    graph = KnowledgeGraph(["effusion", "atelectasis", "cardiomegaly", "edema", "nodule"],
                           [("effusion", "atelectasis"), ("cardiomegaly", "edema")])
    model = CKNet(small_config(knowledge_weighting="sum"), iu_tokenizer, graph).eval()
    model.save_pretrained(tmp_path / "m")
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == ["README.md", "cknet.json", "config.json", "generation_config.json", "graph.json",
                     "model.safetensors", "tokenizer.json"]
    card = (tmp_path / "m" / "README.md").read_text()
    assert "not a medical device" in card and "Not recorded" in card and "resnet18" in card
    loaded = CKNet.from_pretrained(tmp_path / "m").eval()
    assert loaded.config == model.config and loaded.graph == graph
    assert loaded.tokenizer.id_to_token == iu_tokenizer.id_to_token
    images = images_for(model.config)
    ids, _ = iu_tokenizer.encode_batch(["no effusion.", "heart is enlarged."])
    with torch.no_grad():
        assert torch.equal(model(images, ids).logits, loaded(images, ids).logits)


def test_save_refuses_to_overwrite(tmp_path, model):
    model.save_pretrained(tmp_path / "m")
    with pytest.raises(FileExistsError, match="overwrite"):
        model.save_pretrained(tmp_path / "m")
    model.save_pretrained(tmp_path / "m", overwrite=True)
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.endswith(".tmp")]


def test_loading_into_incompatible_config_fails_clearly(tmp_path, model):
    model.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    config["d_model"] = 32
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"do not fit.*shape mismatch"):
        CKNet.from_pretrained(tmp_path / "m")


def test_loading_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        CKNet.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: it holds no saved CKNet model"):
        CKNet.from_pretrained(tmp_path / "empty")


def test_hub_id_offline_says_what_to_do(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(OSError, match=r"could not download CKNet model 'someone/cknet-iu'.*local"):
        CKNet.from_pretrained("someone/cknet-iu")


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.randn(2, 3, 64, 64), r"shape \(B, 2, 3, 64, 64\)"),             # wrong rank
        (torch.randn(2, 1, 3, 64, 64), r"1 view\(s\) per study but this model takes 2"),
        (torch.randn(2, 2, 3, 32, 32), r"images must have shape"),              # wrong size
        (torch.randint(0, 255, (2, 2, 3, 64, 64)), r"float tensor"),
        (torch.randn(2, 2, 1, 64, 64), r"images must have shape"),
    ],
)
def test_bad_images(model, iu_tokenizer, images, match):
    ids, _ = iu_tokenizer.encode_batch(["no effusion.", "heart is normal."])
    with pytest.raises(ValueError, match=match):
        model(images, ids)


@pytest.mark.parametrize(
    "ids, match",
    [
        (torch.tensor([[1, 5, 10_000], [1, 5, 6]]), r"input_ids must lie in \[0, 763\)"),
        (torch.tensor([[1, -1, 2], [1, 5, 6]]), r"input_ids must lie"),
        (torch.zeros(2, 0, dtype=torch.long), "empty"),                 # an empty report
        (torch.tensor([1, 5, 6]), r"input_ids must have shape \(B, T\)"),
        (torch.tensor([[1.0, 5.0]] * 2), "integer tensor"),
        (torch.tensor([[1, 5, 6]]), "1 rows but images has 2"),
    ],
)
def test_bad_input_ids(model, ids, match):
    with pytest.raises(ValueError, match=match):
        model(images_for(model.config), ids)


def test_config_and_tokenizer_must_agree(iu_tokenizer):
    with pytest.raises(ValueError, match="vocab_size"):
        CKNet(small_config(vocab_size=10), iu_tokenizer)
    with pytest.raises(ValueError, match="max_length"):
        CKNet(small_config(max_length=80), iu_tokenizer)
    with pytest.raises(ValueError, match="gamma"):
        CKNet(small_config(gamma=7), iu_tokenizer, KnowledgeGraph(["a", "b"]))


def test_single_view_model_accepts_rank_4(iu_annotation):
    from cknet import ReportTokenizer

    tok = ReportTokenizer.from_reports([e["report"] for e in iu_annotation["train"]],
                                       dataset="mimic_cxr", threshold=3)
    cfg = dataclasses.replace(small_config(), dataset="mimic_cxr", num_views=1, max_length=100)
    model = CKNet(cfg, tok).eval()
    ids, _ = tok.encode_batch(["no effusion."])
    with torch.no_grad():
        a = model(torch.zeros(1, 3, 64, 64), ids).logits
        b = model(torch.zeros(1, 1, 3, 64, 64), ids).logits
    assert torch.equal(a, b)


@pytest.mark.slow
def test_overfits_eight_real_reports(iu_annotation, iu_tokenizer):
    """A small CKNet memorises 8 IU X-Ray reports paired with random images."""
    torch.manual_seed(0)
    reports = [e["report"] for e in iu_annotation["train"][:8]]
    model = CKNet(small_config(max_length=60), iu_tokenizer)
    images = torch.randn(8, 2, 3, 64, 64)
    ids, _ = iu_tokenizer.encode_batch(reports)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(400):
        optimizer.zero_grad()
        loss = model(images, ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.05, f"loss {loss.item():.3f} after 400 steps"
    expected = [iu_tokenizer.decode(iu_tokenizer.encode(r)) for r in reports]
    assert model.generate(images, num_beams=1, readable=False) == expected


def test_generate_accepts_sample_study_folders(model):
    from conftest import SAMPLES, require

    folder = require(SAMPLES / "iu_xray" / "CXR7_IM-2263")
    from_folder = model.generate([folder], max_new_tokens=6)
    from_paths = model.generate([[folder / "0.png", folder / "1.png"]], max_new_tokens=6)
    assert from_folder == from_paths and len(from_folder) == 1
    with pytest.raises(ValueError, match="view"):
        model.generate(folder / "0.png")


@pytest.mark.parametrize("source", ["image", "random"])
def test_knowledge_attention_matches_a_float64_rederivation(iu_tokenizer, source):
    model = CKNet(small_config(knowledge_source=source), iu_tokenizer).eval()
    images = images_for(model.config)
    ids, _ = iu_tokenizer.encode_batch(["the heart is normal .", "no effusion ."])
    patch_weights, token_weights = knowledge_attention(model, images, ids)

    km, cfg = model.cross_modal, model.config
    with torch.no_grad():
        maps = model.visual_extractor.backbone(images).double()  # (B, V, C, h, w)
        patches = maps.flatten(3).transpose(2, 3).flatten(1, 2)  # (B, V*h*w, C)
        v_s = patches @ model.visual_extractor.projection.weight.double().T \
            + model.visual_extractor.projection.bias.double()
        v_t = model.text_encoder(ids, 0).double()
        knowledge = model.knowledge_vectors(images).double()
    if knowledge.dim() == 2:
        knowledge = knowledge.expand(len(images), -1, -1)
    d_head = cfg.d_model // cfg.num_heads
    for features, got in ((v_s, patch_weights), (v_t, token_weights)):
        expected = torch.zeros(got.shape, dtype=torch.float64)
        for b in range(len(images)):
            for h in range(cfg.num_heads):
                heads = slice(h * d_head, (h + 1) * d_head)
                q = features[b] @ km.query_proj.weight.double()[heads].T  # eq. (4)
                k = knowledge[b] @ km.key_proj.weight.double()[heads].T
                scores = q @ k.T / d_head**0.5  # eq. (5)
                top = scores.topk(cfg.gamma, dim=-1)
                weights = top.values.softmax(dim=-1)  # eq. (6)
                expected[b].scatter_add_(-1, top.indices, weights / cfg.num_heads)
        torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got.sum(-1), torch.ones(got.shape[:2]))
    assert patch_weights.shape == (2, cfg.num_views * 4, model.graph.num_nodes + 1)


def test_knowledge_attention_needs_a_knowledge_matrix(iu_tokenizer):
    model = CKNet(small_config(knowledge_source="none"), iu_tokenizer)
    with pytest.raises(ValueError, match="no knowledge matrix"):
        knowledge_attention(model, images_for(model.config))


@pytest.mark.parametrize("source", ["image", "static", "random", "none"])
def test_encode_from_images_equals_encode_from_their_cached_features(iu_tokenizer, source):
    from cknet.inputs.features import StudyFeatures

    model = CKNet(small_config(knowledge_source=source), iu_tokenizer).eval()
    images = images_for(model.config, batch=3)
    with torch.no_grad():
        direct = model.encode(images)
        features = model.study_features(images)
        assert (features.knowledge_matrix is not None) == (source == "image")  # only a per-study G is cached
        # cached in float16 on the CPU, as FeatureCache stores them, and moved back
        half = StudyFeatures(features.maps.half(), features.knowledge_matrix)
        cached = model.encode(features=half.to("cpu"))
        exact = model.encode(features=features)
    torch.testing.assert_close(exact.memory, direct.memory)
    torch.testing.assert_close(cached.memory, direct.memory, atol=2e-2, rtol=2e-2)
    with pytest.raises(ValueError, match="exactly one"):
        model.encode(images, features)
    with pytest.raises(ValueError, match="exactly one"):
        model.encode()
    if source == "image":
        with pytest.raises(ValueError, match="cached features hold none"):
            model.encode(features=StudyFeatures(features.maps))


def test_images_are_scanned_for_nan_once_per_call(iu_tokenizer, monkeypatch):
    import cknet.inputs.checks

    model = CKNet(small_config(), iu_tokenizer).eval()
    scans = []
    real_isfinite = torch.isfinite

    def counting_isfinite(tensor):
        if tensor.dim() == 5:  # a batch of images
            scans.append(tuple(tensor.shape))
        return real_isfinite(tensor)

    monkeypatch.setattr(cknet.inputs.checks.torch, "isfinite", counting_isfinite)
    images = images_for(model.config, batch=2)
    ids, _ = iu_tokenizer.encode_batch(["the heart is normal.", "no effusion."])
    model(images, ids, labels=ids)
    assert len(scans) == 1
    scans.clear()
    model.generate(images, num_beams=1, max_new_tokens=3)
    assert len(scans) == 1
    bad = images.clone()
    bad[1, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.generate(bad, num_beams=1, max_new_tokens=3)
