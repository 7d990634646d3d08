"""docs/tutorials/custom_graph.md runs as written, for two-view and one-view data: its
shell commands, on a miniature dataset in each layout, with only the sizes made tiny
(appended; the ImageNet weights, which cannot be downloaded here, left out)."""

import json
import re
import shlex

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from cknet import CKNet
from cknet.cli import main

NODES = ["effusion", "atelectasis", "cardiomegaly", "edema", "pneumothorax"]
TINY_GRAPH_STAGE = ["--epochs", "1", "--image-size", "32", "--backbone", "resnet18", "--d-knowledge", "16",
                    "--batch-size", "4"]
TINY_MODEL = ["--epochs", "1", "--image-size", "32", "--backbone", "resnet18", "--d-model", "32",
              "--num-heads", "2", "--d-ff", "32", "--num-encoder-layers", "1", "--num-decoder-layers", "1",
              "--batch-size", "4", "--eval-num-beams", "1", "--backbone-weights", "null"]


def commands() -> list[list[list[str]]]:
    """The tutorial's bash blocks, each a list of commands (words)."""
    text = (REPO / "docs" / "tutorials" / "custom_graph.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)
    return [[shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]
            for block in blocks]


def miniature(root, views: int, id_field: str):
    """A dataset of 30 studies in R2Gen's layout (each report often enough for MIMIC-CXR's
    vocabulary threshold of 10), and labels.csv of the tutorial's graph."""
    rng = np.random.default_rng(0)
    entries, rows = {"train": [], "val": [], "test": []}, []
    for i in range(30):
        split = "train" if i < 24 else "val" if i < 28 else "test"
        study = f"s{i}"
        paths = [f"{study}/{v}.png" for v in range(views)]
        for path in paths:
            (root / "images" / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(root / "images" / path)
        report = "small left effusion ." if i % 2 else "no acute disease ."
        entries[split].append({"id": f"d{i}" if id_field == "study_id" else study, "study_id": study,
                               "report": report, "image_path": paths})
        rows.append([study] + ["1" if (i % 2 and n == "effusion") else "0" for n in NODES])
    (root / "annotation.json").write_text(json.dumps(entries))
    header = ",".join([id_field, *NODES])
    (root.parent / "labels.csv").write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("block, views, data, id_field",
                         [(0, 2, "iu_xray", "id"), (1, 1, "mimic_cxr", "study_id")])
def test_the_tutorial_commands_run_as_written(tmp_path, monkeypatch, capsys, block, views, data, id_field):
    import cknet

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / data).mkdir(parents=True)
    miniature(tmp_path / "data" / data, views, id_field)
    (tmp_path / "data" / "labels.csv").rename(tmp_path / "labels.csv")
    cknet.KnowledgeGraph(NODES, edges=[("effusion", "atelectasis"), ("cardiomegaly", "edema"),
                                       ("effusion", "edema")], name="my-graph").to_json("my-graph.json")
    pretrain, train = commands()[block]
    assert pretrain[:2] == ["cknet", "pretrain-graph"] and train[:2] == ["cknet", "train"]
    weights = pretrain.index("--backbone-weights")  # imagenet: no download here
    pretrain = pretrain[:weights] + pretrain[weights + 2:]
    assert main(pretrain[1:] + TINY_GRAPH_STAGE + ["--quiet"]) == 0
    output = train[train.index("--output") + 1]
    assert main(train[1:] + TINY_MODEL + ["--quiet"]) == 0
    err = capsys.readouterr().err
    assert "gamma 8 lowered to 6" in err
    model = CKNet.from_pretrained(tmp_path / output / "best")
    assert (model.config.d_knowledge, model.config.gamma, model.config.num_views) == (16, 6, views)
    assert model.graph.nodes == NODES
