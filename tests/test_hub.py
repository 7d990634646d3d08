"""Saved folders: marked by kind, never written across kinds, never taken for cknet's without the marker."""

import json

import pytest
import torch
from conftest import small_config

from cknet import CKNet, KnowledgeGraph
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.persistence.folders import MARKER, folder_kind, save_folder


@pytest.mark.parametrize("marker_of", ["model", "run"])
def test_a_folder_cknet_did_not_mark_is_never_replaced_nor_read(tmp_path, iu_tokenizer, marker_of):
    """A Hugging Face model folder (its own config.json and model.safetensors) or a folder
    with a run.json looks like cknet's by its files; only the marker makes it so."""
    model = CKNet(small_config(knowledge_source="random"), iu_tokenizer)
    model.save_pretrained(tmp_path / "saved")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    if marker_of == "model":  # every file of a cknet model but the marker, and the user's own
        for path in (tmp_path / "saved").iterdir():
            if path.name != MARKER and path.is_file():
                (theirs / path.name).write_bytes(path.read_bytes())
    else:
        (theirs / "run.json").write_text("{}")
    (theirs / "vocab.txt").write_text("the user's file")
    before = {p.name: p.read_bytes() for p in theirs.iterdir()}
    assert folder_kind(theirs) is None
    with pytest.raises(FileExistsError, match="holds no cknet model"):
        model.save_pretrained(theirs, overwrite=True)
    if marker_of == "model":
        with pytest.raises(ValueError, match="has no cknet.json"):
            CKNet.from_pretrained(theirs)
    assert {p.name: p.read_bytes() for p in theirs.iterdir()} == before


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


def test_a_graph_model_keeps_its_settings_under_the_names_cknet_config_uses(tmp_path, iu_tokenizer):
    from cknet.modules.graph_model import GraphModelConfig

    graph_model = KnowledgeGraphModel(KnowledgeGraph(["a", "b"], [(0, 1)]), "resnet18", 16, num_gcn_layers=3)
    assert graph_model.config == GraphModelConfig(backbone="resnet18", d_knowledge=16, num_gcn_layers=3)
    graph_model.save_pretrained(tmp_path / "g")
    saved = json.loads((tmp_path / "g" / "graph_model.json").read_text())
    names = ("backbone", "d_knowledge", "num_gcn_layers")
    assert {k: saved[k] for k in names} == graph_model.config.to_dict()
    assert KnowledgeGraphModel.from_pretrained(tmp_path / "g").config == graph_model.config
    model = CKNet(small_config(knowledge_source="image", d_knowledge=16, gamma=2), iu_tokenizer,
                  graph_model=graph_model)
    assert (model.config.graph_backbone, model.config.num_gcn_layers) == (None, 3)  # the same names
    saved["gcn_layers"] = saved.pop("num_gcn_layers")  # a setting under another name is refused, named
    (tmp_path / "g" / "graph_model.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="gcn_layers"):
        KnowledgeGraphModel.from_pretrained(tmp_path / "g")


def test_overwriting_through_a_symlinked_folder_replaces_its_target_and_leaves_no_litter(tmp_path,
                                                                                         iu_tokenizer):
    first = CKNet(small_config(knowledge_source="random"), iu_tokenizer).eval()
    second = CKNet(small_config(knowledge_source="random"), iu_tokenizer).eval()
    first.save_pretrained(tmp_path / "models" / "v1")
    (tmp_path / "current").symlink_to(tmp_path / "models" / "v1", target_is_directory=True)
    second.save_pretrained(tmp_path / "current", overwrite=True)
    assert (tmp_path / "current").is_symlink()  # still the user's link
    loaded = CKNet.from_pretrained(tmp_path / "models" / "v1")  # the target holds the new model
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), second.state_dict().values()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "models"]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["v1"]


@pytest.mark.parametrize("views", [1, 2])
def test_every_saved_cards_usage_snippet_runs_on_its_model(tmp_path, monkeypatch, iu_tokenizer, views):
    import re

    from PIL import Image

    model = CKNet(small_config(knowledge_source="random", num_views=views), iu_tokenizer).eval()
    model.save_pretrained(tmp_path / "m", training_info={"synthetic": True})
    card = (tmp_path / "m" / "README.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    for name in re.findall(r'"(\w+\.png)"', snippet):  # the snippet's images, of another size
        Image.new("L", (100, 80), color=128).save(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(snippet.replace("path/to/this/folder", str(tmp_path / "m")), namespace)
    assert len(namespace["reports"]) == 1 and isinstance(namespace["reports"][0], str)
    assert f"its {views} view(s)" in snippet
    assert "synthetic radiographs" in card and "never seen a real radiograph" in card
