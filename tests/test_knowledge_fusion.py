"""`CKNetConfig.knowledge_fusion` and `knowledge_dropout` in a whole model: what a saved
folder means, dropout in training only, and the gated model equal to Base at the start."""

import json

import pytest
import torch
from conftest import small_config


def test_a_config_without_the_fields_is_the_papers():
    from cknet import CKNetConfig

    data = small_config().to_dict()
    del data["knowledge_fusion"], data["knowledge_dropout"]
    config = CKNetConfig.from_dict(data)
    assert (config.knowledge_fusion, config.knowledge_dropout) == ("concat", 0.0)


@pytest.mark.parametrize("field, value, match", [("knowledge_fusion", "sum", "knowledge_fusion"),
                                                 ("knowledge_dropout", 1.0, "knowledge_dropout"),
                                                 ("knowledge_dropout", -0.1, "knowledge_dropout")])
def test_bad_fusion_settings_are_named(field, value, match):
    with pytest.raises(ValueError, match=match):
        small_config(**{field: value})


def test_a_folder_saved_before_the_fields_loads_as_saved(iu_tokenizer, tmp_path):
    from cknet import CKNet

    model = CKNet(small_config(knowledge_source="random"), iu_tokenizer).eval()
    model.save_pretrained(tmp_path / "m")
    config_file = tmp_path / "m" / "config.json"
    data = json.loads(config_file.read_text())
    del data["knowledge_fusion"], data["knowledge_dropout"]
    config_file.write_text(json.dumps(data))
    loaded = CKNet.from_pretrained(tmp_path / "m")
    images, ids = torch.randn(2, 2, 3, 64, 64), torch.tensor([[iu_tokenizer.bos_id, 5, 6]] * 2)
    assert loaded.config.knowledge_fusion == "concat"
    torch.testing.assert_close(loaded(images, ids).logits, model(images, ids).logits)


def test_knowledge_dropout_in_training_only(iu_tokenizer):
    """A dropped study retrieves nothing: with every study dropped, training-mode encoding
    equals that of the same model whose knowledge matrix is all zeros (r = 0); in
    evaluation nothing is dropped."""
    from cknet import CKNet

    model = CKNet(small_config(knowledge_source="random", knowledge_dropout=0.999999), iu_tokenizer)
    zeroed = CKNet(small_config(knowledge_source="random"), iu_tokenizer)
    zeroed.load_state_dict(model.state_dict())
    with torch.no_grad():
        zeroed.knowledge_source.matrix.zero_()
    images = torch.randn(3, 2, 3, 64, 64)
    torch.manual_seed(1)
    model.train(), zeroed.train()
    torch.testing.assert_close(model.encode(images).memory, zeroed.encode(images).memory)
    model.eval(), zeroed.eval()
    assert not torch.allclose(model.encode(images).memory, zeroed.encode(images).memory)


def test_gated_cknet_starts_as_base(iu_tokenizer):
    """With the gate closed (its initial value), +CKNet's logits are those of Base with the
    same weights: the knowledge path can only add from there."""
    from cknet import CKNet

    gated = CKNet(small_config(knowledge_source="random", knowledge_fusion="gated"), iu_tokenizer).eval()
    base = CKNet(small_config(knowledge_source="none"), iu_tokenizer).eval()
    base.load_state_dict({k: v for k, v in gated.state_dict().items() if k in base.state_dict()})
    images, ids = torch.randn(2, 2, 3, 64, 64), torch.tensor([[iu_tokenizer.bos_id, 5, 6, 7]] * 2)
    torch.testing.assert_close(gated(images, ids).logits, base(images, ids).logits)
