"""One backbone pass per image: ``share_backbone`` and the feature cache's single pass.

The reference for each check is a second code path: a model whose visual extractor owns
a copy of the graph model's CNN, run the ordinary two-pass way."""

import pytest
import torch
from conftest import small_config

from cknet import CKNet
from cknet.graph import KnowledgeGraph
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.training.feature_cache import FeatureCache, same_backbone


def graph_model():
    torch.manual_seed(1)
    model = KnowledgeGraphModel(KnowledgeGraph.openi40(), "resnet18", 32)
    with torch.no_grad():  # non-trivial batch-norm statistics, so that eval mode matters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model


def pair(iu_tokenizer):
    """The shared model, and a two-pass model with the same weights."""
    shared = CKNet(small_config(share_backbone=True), iu_tokenizer, graph_model=graph_model()).eval()
    copy = CKNet(small_config(), iu_tokenizer, graph_model=graph_model()).eval()
    state = shared.state_dict()
    state.update({"visual_extractor.backbone." + k: v
                  for k, v in shared.knowledge_source.graph_model.backbone.state_dict().items()})
    copy.load_state_dict(state)
    return shared, copy


def count_calls(module):
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


def test_shared_backbone_runs_once_and_equals_two_passes(iu_tokenizer):
    shared, copy = pair(iu_tokenizer)
    images = torch.randn(3, 2, 3, 64, 64)
    shared_calls = count_calls(shared.visual_extractor.backbone)
    copy_calls = (count_calls(copy.visual_extractor.backbone),
                  count_calls(copy.knowledge_source.graph_model.backbone))
    with torch.no_grad():
        one, two = shared.encode(images), copy.encode(images)
    assert len(shared_calls) == 1 and [len(c) for c in copy_calls] == [1, 1]
    torch.testing.assert_close(one.memory, two.memory)
    torch.testing.assert_close(one.projected_knowledge.keys, two.projected_knowledge.keys)
    assert shared.generate(images, max_new_tokens=8) == copy.generate(images, max_new_tokens=8)


def test_the_shared_cnn_is_stored_once_frozen_and_saved(iu_tokenizer, tmp_path):
    shared, _ = pair(iu_tokenizer)
    assert shared.visual_extractor.backbone is shared.knowledge_source.graph_model.backbone
    assert not any(k.startswith("visual_extractor.backbone.") for k in shared.state_dict())
    names = [name for name, p in shared.named_parameters() if p.requires_grad]
    assert names and not any("backbone" in name for name in names)
    shared.train()
    assert not shared.visual_extractor.backbone.training  # batch-norm statistics stay the graph stage's
    shared.save_pretrained(tmp_path / "model")
    loaded = CKNet.from_pretrained(tmp_path / "model")
    assert loaded.config.share_backbone
    assert loaded.visual_extractor.backbone is loaded.knowledge_source.graph_model.backbone
    images = torch.randn(2, 2, 3, 64, 64)
    assert loaded.generate(images, max_new_tokens=8) == shared.eval().generate(images, max_new_tokens=8)


def test_share_backbone_needs_the_image_source_and_one_cnn(iu_tokenizer):
    with pytest.raises(ValueError, match="knowledge_source 'image'"):
        small_config(share_backbone=True, knowledge_source="static")
    with pytest.raises(ValueError, match="graph_backbone"):
        small_config(share_backbone=True, graph_backbone="resnet34")
    other = KnowledgeGraphModel(KnowledgeGraph.openi40(), "mobilenet_v3_small", 32)
    with pytest.raises(ValueError, match="share_backbone"):
        CKNet(small_config(share_backbone=True), iu_tokenizer, graph_model=other)


def test_the_feature_cache_runs_one_pass_when_the_weights_agree(iu_tokenizer):
    shared, copy = pair(iu_tokenizer)
    data = [{"id": str(i), "report": "the heart is normal", "images": torch.randn(2, 3, 64, 64)}
            for i in range(5)]
    images = torch.stack([d["images"] for d in data])
    for model in (shared, copy):
        assert same_backbone(model)
        passes = []  # every backbone forward, whichever module runs it
        for backbone in {model.visual_extractor.backbone, model.knowledge_source.graph_model.backbone}:
            backbone.register_forward_hook(lambda *args, passes=passes: passes.append(1))
        cache = FeatureCache(model, data, batch_size=2, dtype=torch.float32)
        assert len(passes) == 3  # one pass per batch (of 2, 2, 1 studies), not two
        with torch.no_grad():
            torch.testing.assert_close(torch.stack([i["knowledge_matrix"] for i in cache]),
                                       model.knowledge_source.graph_model(images).node_embeddings)
            torch.testing.assert_close(torch.stack([i["maps"] for i in cache]),
                                       model.visual_extractor.maps(images))
    with torch.no_grad():
        copy.visual_extractor.backbone.trunk[0].weight.add_(1e-3)
    assert not same_backbone(copy)


def test_a_cache_built_by_one_model_serves_another(iu_tokenizer):
    """A +MEN model scored on the cache an 'image' model filled equals it scored on images:
    it takes the cached maps and ignores the cached G."""
    from cknet.evaluation import evaluate

    shared, _ = pair(iu_tokenizer)
    men = CKNet(small_config(knowledge_source="random"), iu_tokenizer).eval()
    men.visual_extractor.backbone.load_state_dict(shared.visual_extractor.backbone.state_dict())
    data = [{"id": str(i), "report": "the heart is normal .", "images": torch.randn(2, 3, 64, 64)}
            for i in range(4)]
    cache = FeatureCache(shared, data, batch_size=4, dtype=torch.float32)
    on_cache = evaluate(men, cache, batch_size=4)
    on_images = evaluate(men, data, batch_size=4)
    assert on_cache.loss == pytest.approx(on_images.loss, rel=1e-5)
    assert [p["prediction"] for p in on_cache.predictions] == [p["prediction"] for p in on_images.predictions]
