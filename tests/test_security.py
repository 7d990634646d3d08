"""What cknet never does with the files it is given (docs/reliability.md, "Security"):
run code from a model folder, or read or write outside the folders a command was given,
or let an output replace one of the same command's inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPORTS = ["no acute disease . heart size is normal .", "small left pleural effusion ."] * 20

EVIL = '''from pathlib import Path
Path(__file__).with_name("RAN").write_text("the folder's code ran")
from transformers import BertConfig, BertModel
class EvilConfig(BertConfig):
    model_type = "evil-bert"
class EvilModel(BertModel):
    config_class = EvilConfig
'''


@pytest.fixture(scope="module")
def evil_bert(tmp_path_factory) -> Path:
    """A tiny BERT folder whose config.json maps its classes to the folder's own evil.py
    (``auto_map``), which leaves a file behind when it is imported."""
    from cknet.testing import make_tiny_bert

    folder = make_tiny_bert(REPORTS, tmp_path_factory.mktemp("evil") / "bert", vocab_size=200,
                            hidden_size=16, num_layers=1, num_heads=2)
    (folder / "evil.py").write_text(EVIL)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    config["model_type"] = "evil-bert"  # no class of transformers' own: only the folder's code reads it
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _loaders(folder: Path):
    from cknet import PretrainedReportTokenizer
    from cknet.metrics.bertscore import BERTScorer
    from cknet.modules.language_model import PretrainedTextEncoder

    yield "text encoder", lambda: PretrainedTextEncoder.from_pretrained(folder, d_model=16)
    yield "text encoder from config", lambda: PretrainedTextEncoder.from_config(folder, d_model=16)
    yield "tokenizer", lambda: PretrainedReportTokenizer.from_pretrained(folder)
    yield "BERTScore", lambda: BERTScorer(folder, num_layers=1, rescale_with_baseline=False)


def test_no_code_runs_from_a_model_folder(evil_bert, monkeypatch):
    """Every loader of a Hugging Face folder refuses the folder's own code: what needs it
    fails with an error that says so (the tokenizer needs none and loads with
    transformers' own class); the folder's evil.py never runs, even for a user who would
    answer "y" at transformers' prompt (cknet never lets it ask)."""
    monkeypatch.setattr("builtins.input", lambda *a: "y")
    for name, load in _loaders(evil_bert):
        if name == "tokenizer":
            load()
        else:
            with pytest.raises(ValueError, match="custom code"):
                load()
        assert not (evil_bert / "RAN").exists(), f"the {name} loader ran the folder's code"


def test_trust_remote_code_is_refused():
    from transformers import AutoConfig

    from cknet.io import load_hf_pretrained

    with pytest.raises(ValueError, match="never runs code"):
        load_hf_pretrained(AutoConfig, "somewhere", "text encoder", trust_remote_code=True)


def _tiny_saved_model(folder: Path) -> Path:
    import torch
    from conftest import small_config

    from cknet import CKNet, ReportTokenizer

    torch.manual_seed(0)
    config = small_config(knowledge_source="random", d_model=32, num_heads=2, d_ff=32, d_knowledge=16,
                          num_encoder_layers=1, num_decoder_layers=1)
    CKNet(config, ReportTokenizer(["heart", "normal", "effusion"])).save_pretrained(folder)
    return folder


def _unchanged(paths: list[Path]):
    return {p: p.read_bytes() for p in paths}


def test_an_output_never_replaces_or_lies_inside_an_input(tmp_path, capsys):
    """--overwrite replaces an earlier output, never the command's own inputs: the model's
    config, a study's radiograph, the labeler's CSV (each refused before any work, the
    input named, its bytes unchanged)."""
    import shutil

    from conftest import SAMPLES, require

    from cknet.cli import main

    model = _tiny_saved_model(tmp_path / "model")
    study = tmp_path / "study"
    shutil.copytree(sorted(require(SAMPLES / "iu_xray").iterdir())[0], study)
    labels = tmp_path / "lab.csv"
    labels.write_text("Report Impression," + ",".join(["No Finding"] * 1) + "\nno effusion .,1\n")
    predictions = tmp_path / "preds.json"
    predictions.write_text(json.dumps([{"id": "a", "prediction": "no effusion .", "reference": "no effusion ."}]))
    before = _unchanged([model / "config.json", study / "0.png", labels, predictions])
    commands = [
        ["generate", "--model", str(model), str(study), "--output", str(model / "config.json"), "--overwrite"],
        ["generate", "--model", str(model), str(study), "--output", str(model / "new.json")],
        ["explain", str(study), "--model", str(model), "--output", str(study / "0.png"), "--overwrite"],
        ["evaluate", "--predictions", str(predictions), "--labeler", str(labels), "--per-report", str(labels),
         "--overwrite"],
        ["evaluate", "--predictions", str(predictions), "--output", str(predictions), "--overwrite"],
    ]
    for command in commands:
        assert main(command) == 1, command
        err = capsys.readouterr().err
        assert "input" in err and "write elsewhere" in err, (command, err)
    assert _unchanged(list(before)) == before
    assert not (model / "new.json").exists()
