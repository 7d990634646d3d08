import argparse
import json
import subprocess
import sys

import pytest

import cknet
from cknet import CKNetConfig
from cknet.cli import main


def test_config_command_prints_the_preset(capsys):
    assert main(["config", "mimic_cxr"]) == 0
    assert CKNetConfig.from_dict(json.loads(capsys.readouterr().out)) == CKNetConfig.mimic_cxr()


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: cknet" in capsys.readouterr().out


def test_import_is_light():
    code = "import sys, cknet; print('torch' in sys.modules, cknet.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", cknet.__version__]


def test_generate_command(tmp_path, capsys, iu_annotation, iu_tokenizer):
    import torch
    from conftest import SAMPLES, require, small_config

    from cknet import CKNet

    samples = require(SAMPLES / "iu_xray")
    torch.manual_seed(0)
    model = CKNet(small_config(), iu_tokenizer).eval()
    model.save_pretrained(tmp_path / "model")
    folders = sorted(samples.iterdir())
    expected = model.generate(folders, num_beams=2, max_new_tokens=6)

    assert main(["generate", "--model", str(tmp_path / "model"), *map(str, folders),
                 "--num-beams", "2", "--max-new-tokens", "6", "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t") for line in lines] == [[str(f), t] for f, t in zip(folders, expected)]

    by_id = {e["id"]: e for e in iu_annotation["train"]}
    annotation = {"test": [by_id[f.name] for f in folders]}
    (tmp_path / "annotation.json").write_text(json.dumps(annotation))
    out = tmp_path / "preds.json"
    args = ["generate", "--model", str(tmp_path / "model"), "--annotation",
            str(tmp_path / "annotation.json"), "--image-dir", str(samples), "--num-beams", "2",
            "--max-new-tokens", "6", "--output", str(out), "--quiet"]
    assert main(args) == 0
    records = json.loads(out.read_text())
    assert [r["id"] for r in records] == [f.name for f in folders]
    assert [r["prediction"] for r in records] == expected
    assert [r["reference"] for r in records] == [by_id[f.name]["report"] for f in folders]
    before = out.read_bytes()
    capsys.readouterr()
    assert main(args) == 1 and "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    csv_out = tmp_path / "preds.csv"
    assert main(args[:-3] + ["--output", str(csv_out), "--quiet"]) == 0
    import csv

    rows = list(csv.DictReader(csv_out.open()))
    assert [r["prediction"] for r in rows] == expected
    capsys.readouterr()
    # the progress bar counts studies: 2 of 2 in a batch of up to 16, not 16 of 2
    assert main(args[:-3] + ["--output", str(tmp_path / "bar.json"), "--batch-size", "16"]) == 0
    bar = capsys.readouterr().err
    assert "2/2" in bar and "16/2" not in bar
    (tmp_path / "folder.json").mkdir()
    assert main(args[:-3] + ["--output", str(tmp_path / "folder.json")]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_generate_command_reports_bad_input(tmp_path, capsys, iu_tokenizer):
    from conftest import small_config

    from cknet import CKNet

    CKNet(small_config(), iu_tokenizer).save_pretrained(tmp_path / "model")
    single = tmp_path / "frontal.png"
    from PIL import Image

    Image.new("L", (32, 32)).save(single)
    assert main(["generate", "--model", str(tmp_path / "model"), str(single), "--quiet"]) == 1
    assert f"study '{single}' has 1 view(s) but the model takes 2" in capsys.readouterr().err
    assert main(["generate", "--model", str(tmp_path / "model"), str(tmp_path / "none.png"),
                 "--repeat-single-view", "--quiet"]) == 1
    assert "image file not found" in capsys.readouterr().err


def test_generate_warns_once_when_the_model_never_saw_a_real_radiograph(tmp_path, capsys, iu_tokenizer):
    """A model saved as trained on synthetic radiographs (the demo's) keeps that fact in
    training_info.json; cknet generate says so once, whatever the number of batches, and
    keeps the saved decoding defaults unless an option is given."""
    from conftest import small_config
    from PIL import Image

    from cknet import CKNet, GenerationConfig

    model = CKNet(small_config(num_views=1), iu_tokenizer)
    model.generation_config = GenerationConfig(num_beams=1, max_new_tokens=3)
    model.save_pretrained(tmp_path / "demo", training_info={"synthetic": True})
    model.save_pretrained(tmp_path / "real", training_info={"training data": "IU X-Ray"})
    images = []
    for i in range(3):
        Image.new("L", (32, 32), color=40 * i).save(tmp_path / f"{i}.png")
        images.append(str(tmp_path / f"{i}.png"))
    assert CKNet.from_pretrained(tmp_path / "demo").training_info == {"synthetic": True}
    assert main(["generate", "--model", str(tmp_path / "demo"), *images, "--batch-size", "1", "--quiet"]) == 0
    out = capsys.readouterr()
    assert out.err.count("trained on synthetic radiographs only") == 1
    reports = [line.split("\t")[1] for line in out.out.splitlines()]
    assert len(reports) == 3 and all(len(r.split()) <= 3 for r in reports)  # the saved max_new_tokens
    assert main(["generate", "--model", str(tmp_path / "real"), *images, "--quiet"]) == 0
    assert "synthetic" not in capsys.readouterr().err


def test_rexrank_test_sets_in_and_prediction_files_out(tmp_path, capsys, iu_annotation, iu_tokenizer):
    """ReXrank's layout (rajpurkarlab/ReXrank data/iu_xray/ReXRank_IUXray_test.json):
    `cknet generate --rexrank` adds model_prediction to each study and keeps the rest;
    `cknet evaluate` scores it against "Findings: ... Impression: ...", as ReXrank does."""
    import torch
    from conftest import SAMPLES, require, small_config

    from cknet import CKNet

    samples = require(SAMPLES / "iu_xray")
    torch.manual_seed(0)
    model = CKNet(small_config(), iu_tokenizer).eval()
    model.save_pretrained(tmp_path / "model")
    folders = sorted(samples.iterdir())
    expected = model.generate(folders, num_beams=2, max_new_tokens=6)
    test_set = {
        f.name: {"key_image_path": f"{f.name}/0.png", "image_path": [f"{f.name}/0.png", f"{f.name}/1.png"],
                 "report": "Findings: Lungs clear. Impression: Normal.", "section_findings": "Lungs clear.",
                 "section_impression": None if k else "Normal.", "split": "test",
                 "frontal_lateral": ["Frontal", "Lateral"], "context": "Indication: cough"}
        for k, f in enumerate(folders)}
    (tmp_path / "test.json").write_text(json.dumps(test_set))
    out = tmp_path / "predictions.json"
    assert main(["generate", "--model", str(tmp_path / "model"), "--rexrank", str(tmp_path / "test.json"),
                 "--image-dir", str(samples), "--num-beams", "2", "--max-new-tokens", "6",
                 "--output", str(out), "--quiet"]) == 0
    written = json.loads(out.read_text())
    assert list(written) == [f.name for f in folders]
    for (key, study), text in zip(written.items(), expected):
        assert study == {**test_set[key], "model_prediction": text}

    assert main(["evaluate", "--predictions", str(out), "--metrics", "nlg", "--reference-form", "raw",
                 "--resamples", "0", "--output", str(tmp_path / "a.json")]) == 0
    ours = [{"id": f.name, "prediction": text, "reference": reference}
            for f, text, reference in zip(folders, expected, ["Findings: Lungs clear. Impression: Normal.",
                                                              "Findings: Lungs clear. Impression: None"])]
    (tmp_path / "ours.json").write_text(json.dumps(ours))
    assert main(["evaluate", "--predictions", str(tmp_path / "ours.json"), "--metrics", "nlg",
                 "--reference-form", "raw", "--resamples", "0", "--output", str(tmp_path / "b.json")]) == 0
    scores = [json.loads((tmp_path / name).read_text())["nlg"]["scores"] for name in ("a.json", "b.json")]
    assert scores[0] == scores[1]
    capsys.readouterr()
    assert main(["evaluate", "--predictions", str(tmp_path / "test.json"), "--metrics", "nlg"]) == 1
    assert "have no 'model_prediction'" in capsys.readouterr().err


def test_rexrank_single_view_models_read_the_key_image():
    from cknet.data.rexrank import rexrank_views

    study = {"key_image_path": "s/1.png", "image_path": ["s/0.png", "s/1.png"]}
    assert rexrank_views(study, "s", 1) == ["s/1.png"]
    assert rexrank_views(study, "s", 2) == ["s/0.png", "s/1.png"]
    assert rexrank_views({"key_image_path": "s/1.png"}, "s", 2) == ["s/1.png"]


def test_the_python_api_warns_once_per_synthetic_model(tmp_path, iu_tokenizer):
    """A notebook user who loads the demo's model is told, as the CLI user is: a
    UserWarning naming the folder; a model trained on real data loads silently."""
    import warnings

    from conftest import small_config

    from cknet import CKNet
    from cknet.persistence.model_files import SyntheticModelWarning

    model = CKNet(small_config(num_views=1), iu_tokenizer)
    model.save_pretrained(tmp_path / "demo", training_info={"synthetic": True})
    model.save_pretrained(tmp_path / "real", training_info={"training data": "IU X-Ray"})
    with pytest.warns(SyntheticModelWarning, match=f"{tmp_path / 'demo'} was trained on synthetic"):
        CKNet.from_pretrained(tmp_path / "demo")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CKNet.from_pretrained(tmp_path / "real")


def test_dataset_names_are_taken_with_hyphen_or_underscore(capsys):
    """`cknet prepare` names datasets iu-xray, mimic-cxr, chexpert-plus; --dataset and
    cknet config take those words and the underscore forms alike, and chexpert-plus is one."""
    for word in ("iu-xray", "iu_xray", "mimic-cxr", "chexpert-plus", "chexpert_plus"):
        assert main(["config", word]) == 0, word
        assert json.loads(capsys.readouterr().out)["dataset"] == word.replace("-", "_")
    with pytest.raises(SystemExit):
        main(["config", "padchest"])
    assert "unknown dataset 'padchest'" in capsys.readouterr().err


def _option_defaults(command: str) -> dict[str, object]:
    """The defaults of one sub-command's options, by option string."""
    from cknet.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {option: action.default for action in sub._actions for option in action.option_strings}


def test_an_option_shared_by_commands_has_one_default():
    """--uncertain means the same in every command that has it (what -1 counts as), with
    the same default: 0, as the field's CE scores count it; and pretrain-graph's defaults
    are GraphRun's (written once)."""
    from cknet.training.graph_stage import GraphRun

    commands = ("pretrain-graph", "evaluate", "compare")
    assert {_option_defaults(c)["--uncertain"] for c in commands} == {0}
    pre = _option_defaults("pretrain-graph")
    defaults = GraphRun()
    for field in ("backbone", "backbone_weights", "image_size", "d_knowledge", "num_gcn_layers", "epochs",
                  "batch_size", "lr", "seed", "num_workers", "uncertain", "dataset"):
        assert pre["--" + field.replace("_", "-")] == getattr(defaults, field), field


def test_every_sub_command_is_a_module_of_the_cli_package():
    """cknet.cli lists each sub-command once, from a module of its own named after it,
    and python -m cknet.cli (what torchrun runs) is the same command line."""
    import importlib

    from cknet.cli import COMMANDS, build_parser

    parser = build_parser()
    names = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert len(names) == len(COMMANDS)
    for name in names:
        module = importlib.import_module(f"cknet.cli.{name.replace('-', '_')}")
        assert module in COMMANDS and callable(module.run), name
    done = subprocess.run([sys.executable, "-m", "cknet.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("cknet ")
