import json

import pytest

from cknet import CKNetConfig


def test_paper_defaults():
    cfg = CKNetConfig()
    assert (cfg.d_model, cfg.num_encoder_layers, cfg.num_decoder_layers, cfg.num_heads) == (512, 3, 3, 8)
    assert (cfg.d_ff, cfg.dropout, cfg.gamma, cfg.d_knowledge) == (512, 0.1, 8, 512)
    assert cfg.backbone == "densenet121"
    assert CKNetConfig.iu_xray().max_length == 60 and CKNetConfig.iu_xray().num_views == 2
    mimic = CKNetConfig.mimic_cxr()
    assert mimic.max_length == 100 and mimic.num_views == 1 and mimic.dataset == "mimic_cxr"
    assert CKNetConfig.iu_xray(backbone="resnet101").backbone == "resnet101"


def test_json_round_trip(tmp_path):
    cfg = CKNetConfig.mimic_cxr(d_model=256, knowledge_weighting="sum", backbone_weights="/w.pt")
    again = CKNetConfig.from_json(cfg.to_json())
    assert again == cfg
    path = tmp_path / "config.json"
    cfg.to_json_file(path)
    assert CKNetConfig.from_json_file(path) == cfg
    assert json.loads(path.read_text())["image_mean"] == list(cfg.image_mean)


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="d_modle"):
        CKNetConfig.from_dict({"d_modle": 256})


@pytest.mark.parametrize(
    "key, value",
    [("d_model", "512"), ("d_model", 1.5), ("dropout", "0.1"), ("norm_first", 1),
     ("knowledge_source", "graphs"), ("backbone_weights", 3), ("image_mean", [0.5, 0.5]),
     ("gamma", True)],
)
def test_ill_typed_value_is_named(key, value):
    with pytest.raises(ValueError, match=key):
        CKNetConfig.from_dict({key: value})


@pytest.mark.parametrize(
    "overrides, name",
    [({"d_model": 100, "num_heads": 8}, "d_model"), ({"dropout": 1.0}, "dropout"),
     ({"gamma": 0}, "gamma"), ({"max_length": 2}, "max_length"), ({"num_views": 0}, "num_views")],
)
def test_out_of_range_value_is_named(overrides, name):
    with pytest.raises(ValueError, match=name):
        CKNetConfig(**overrides)


def test_bad_json_file_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        CKNetConfig.from_json_file(path)
