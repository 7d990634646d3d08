"""Saved folders: marked by kind, never written across kinds, and cknet 0.1 folders still load."""

import json
import logging

import pytest
import torch
from conftest import small_config
from safetensors.torch import load_file, save_file

from cknet import CKNet, KnowledgeGraph
from cknet.hub import MARKER, folder_kind, save_folder
from cknet.modules.graph_model import KnowledgeGraphModel

# The weight names a cknet 0.1 model saved, by prefix (the format as it was released).
OLD_PREFIXES = {"cross_modal.": "knowledge_matrix.", "knowledge.graph_model.": "graph_model.",
                "knowledge.matrix": "knowledge_bank", "text_encoder.": "text_embedding."}


def as_saved_by_0_1(folder):
    """Rewrite a saved model folder in the cknet 0.1 layout: no marker, old weight names,
    ``top_k`` in the config."""
    (folder / MARKER).unlink()
    state = load_file(folder / "model.safetensors")
    old = {}
    for name, tensor in state.items():
        for new, previous in OLD_PREFIXES.items():
            if name.startswith(new):
                name = previous + name[len(new):]
                break
        old[name] = tensor
    save_file(old, folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    config["top_k"] = config.pop("gamma")
    (folder / "config.json").write_text(json.dumps(config))
    return old


@pytest.mark.parametrize("source", ["image", "static", "random", "none"])
def test_a_model_saved_by_cknet_0_1_loads_with_identical_outputs(tmp_path, iu_tokenizer, source, caplog):
    model = CKNet(small_config(knowledge_source=source), iu_tokenizer).eval()
    model.save_pretrained(tmp_path / "m")
    old = as_saved_by_0_1(tmp_path / "m")
    assert source == "none" or any(k.startswith(("knowledge_bank", "graph_model.")) for k in old)
    with caplog.at_level(logging.WARNING):
        loaded = CKNet.from_pretrained(tmp_path / "m")
    assert "cknet 0.1" in caplog.text and loaded.config.gamma == model.config.gamma
    images = torch.randn(2, 2, 3, 64, 64)
    ids, _ = iu_tokenizer.encode_batch(["no effusion.", "the heart is normal."])
    with torch.no_grad():
        assert torch.equal(loaded(images, ids).logits, model(images, ids).logits)


def test_folders_say_what_they_hold_and_no_writer_crosses_kinds(tmp_path, iu_tokenizer):
    model = CKNet(small_config(knowledge_source="random"), iu_tokenizer)
    graph_model = KnowledgeGraphModel(KnowledgeGraph(["a", "b"], [(0, 1)]), "resnet18", 16)
    model.save_pretrained(tmp_path / "model")
    graph_model.save_pretrained(tmp_path / "graph")
    assert folder_kind(tmp_path / "model") == "model" and folder_kind(tmp_path / "graph") == "graph_model"
    before = {p.name: p.read_bytes() for p in (tmp_path / "graph").iterdir()}
    with pytest.raises(FileExistsError, match="knowledge-graph model, not a saved CKNet"):
        model.save_pretrained(tmp_path / "graph", overwrite=True)
    with pytest.raises(FileExistsError, match="CKNet model, not a saved knowledge-graph"):
        graph_model.save_pretrained(tmp_path / "model", overwrite=True)
    with pytest.raises(ValueError, match="not a saved CKNet model"):
        CKNet.from_pretrained(tmp_path / "graph")
    with pytest.raises(ValueError, match="not a saved knowledge-graph model"):
        KnowledgeGraphModel.from_pretrained(tmp_path / "model")
    assert {p.name: p.read_bytes() for p in (tmp_path / "graph").iterdir()} == before
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        model.save_pretrained(tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_failed_folder_write_leaves_the_old_folder_whole(tmp_path):
    def write(folder, text):
        (folder / "a.txt").write_text(text)
        (folder / "b.txt").write_text(text)

    target = tmp_path / "model"
    save_folder(target, "model", lambda folder: write(folder, "old"))

    def interrupted(folder):
        (folder / "a.txt").write_text("new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_folder(target, "model", interrupted, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no leftovers
    assert [(target / n).read_text() for n in ("a.txt", "b.txt")] == ["old", "old"]
    save_folder(target, "model", lambda folder: write(folder, "new"), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert [(target / n).read_text() for n in ("a.txt", "b.txt")] == ["new", "new"]
    assert folder_kind(target) == "model"


def test_a_graph_model_with_its_own_cnn_and_depth_reloads_with_identical_outputs(tmp_path, iu_tokenizer):
    """The graph stage's CNN and GCN depth come from the graph model, not the config: the
    saved config must record them, or the reloaded model rebuilds the wrong graph stage."""
    graph_model = KnowledgeGraphModel(KnowledgeGraph.openi40(), "resnet34", 32, num_gcn_layers=3)
    model = CKNet(small_config(), iu_tokenizer, graph_model=graph_model).eval()
    assert (model.config.graph_backbone, model.config.num_gcn_layers) == ("resnet34", 3)
    model.save_pretrained(tmp_path / "model")
    loaded = CKNet.from_pretrained(tmp_path / "model").eval()
    images = torch.rand(2, 2, 3, 64, 64)
    ids, _ = iu_tokenizer.encode_batch(["the heart is normal .", "no effusion ."])
    with torch.no_grad():
        torch.testing.assert_close(loaded(images, ids).logits, model(images, ids).logits)
    with pytest.raises(ValueError, match="graph_backbone is 'resnet18' but the graph_model's CNN is"):
        CKNet(small_config(graph_backbone="resnet18"), iu_tokenizer, graph_model=graph_model)
