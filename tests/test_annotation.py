import json

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import FINDINGS, make_studies

from cknet import CKNetConfig, KnowledgeGraph
from cknet.cli import main
from cknet.data import AnnotationDataset, evaluation_transform, load_image
from cknet.modules.graph_model import KnowledgeGraphModel


def write_dataset(root, count=24, size=64, views=2, seed=0):
    """An R2Gen-format dataset on disk: annotation.json and PNG images."""
    images, labels, reports = make_studies(count, size=size, views=views, seed=seed)
    splits = {"train": [], "val": [], "test": []}
    for index in range(count):
        study = f"S{index:03d}"
        paths = []
        for view in range(views):
            folder = root / "images" / study
            folder.mkdir(parents=True, exist_ok=True)
            pixels = images[index, view, 0].numpy()
            pixels = ((pixels - pixels.min()) / (pixels.max() - pixels.min()) * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / f"{view}.png")
            paths.append(f"{study}/{view}.png")
        split = "train" if index < count * 2 // 3 else ("val" if index % 2 else "test")
        splits[split].append({"id": study, "report": reports[index], "image_path": paths, "split": split})
    (root / "annotation.json").write_text(json.dumps(splits))
    return splits, labels


def test_dataset_reads_views_in_order(tmp_path):
    splits, _ = write_dataset(tmp_path, count=6)
    config = CKNetConfig.iu_xray(image_size=32)
    data = AnnotationDataset(tmp_path / "annotation.json", split="train", config=config)
    item = data[0]
    entry = splits["train"][0]
    assert item["id"] == entry["id"] and item["report"] == entry["report"]
    expected = torch.stack([evaluation_transform(load_image(tmp_path / "images" / p), config)
                            for p in entry["image_path"]])
    torch.testing.assert_close(item["images"], expected)
    torch.manual_seed(0)
    train_item = AnnotationDataset(tmp_path / "annotation.json", split="train", config=config, train=True)[0]
    assert train_item["images"].shape == (2, 3, 32, 32)
    assert not torch.equal(train_item["images"], expected)  # a random crop, not the plain resize


def test_missing_and_corrupt_images(tmp_path):
    write_dataset(tmp_path, count=6)
    (tmp_path / "images" / "S000" / "1.png").unlink()
    (tmp_path / "images" / "S001" / "0.png").write_bytes(b"not a png")
    config = CKNetConfig.iu_xray(image_size=32)
    data = AnnotationDataset(tmp_path / "annotation.json", split="train", config=config)
    with pytest.raises(FileNotFoundError, match=r"study S000: image file not found: .*S000/1.png"):
        data[0]
    with pytest.raises(ValueError, match=r"study S001: .*S001/0.png is not a readable image"):
        data[1]
    skipping = AnnotationDataset(tmp_path / "annotation.json", split="train", config=config,
                                 skip_invalid=True)
    assert skipping.skipped == ["S000", "S001"] and len(skipping) == len(data) - 2


@pytest.mark.slow
def test_pretrain_graph_command(tmp_path, capsys):
    write_dataset(tmp_path / "data", count=24)
    graph = KnowledgeGraph(FINDINGS, [("effusion", "atelectasis")])
    graph.to_json(tmp_path / "graph.json")
    args = ["pretrain-graph", "--data-dir", str(tmp_path / "data"), "--graph", str(tmp_path / "graph.json"),
            "--backbone", "resnet18", "--image-size", "64", "--d-knowledge", "16", "--epochs", "2",
            "--batch-size", "8", "--output", str(tmp_path / "graph_model"), "--quiet", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "kept epoch" in out
    history = json.loads((tmp_path / "graph_model" / "history.json").read_text())
    assert len(history["history"]) == 2 and history["nodes"] == FINDINGS
    model = KnowledgeGraphModel.from_pretrained(tmp_path / "graph_model")
    assert model.graph == graph and model.has_static_knowledge
    assert main(args) == 1 and "already holds a graph model" in capsys.readouterr().err


def test_sixteen_bit_views_are_read_like_their_eight_bit_versions(tmp_path):
    write_dataset(tmp_path, count=3)
    eight = np.asarray(Image.open(tmp_path / "images" / "S000" / "0.png"))
    stretched = np.round((eight - eight.min()) * 255.0 / (eight.max() - eight.min())).astype(np.uint8)
    Image.fromarray(stretched, mode="L").save(tmp_path / "images" / "S000" / "0.png")
    reference = AnnotationDataset(tmp_path / "annotation.json", split="train",
                                  config=CKNetConfig.iu_xray(image_size=32))[0]["images"]
    Image.fromarray(stretched.astype(np.uint16) * 257).save(tmp_path / "images" / "S000" / "0.png")
    with Image.open(tmp_path / "images" / "S000" / "0.png") as image:
        assert image.mode.startswith("I")
    sixteen = AnnotationDataset(tmp_path / "annotation.json", split="train",
                                config=CKNetConfig.iu_xray(image_size=32))[0]["images"]
    torch.testing.assert_close(sixteen, reference)
