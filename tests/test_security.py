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

    from cknet.persistence.hub import load_hf_pretrained

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
    record = {"id": "a", "prediction": "no effusion .", "reference": "no effusion ."}
    predictions.write_text(json.dumps([record]))
    before = _unchanged([model / "config.json", study / "0.png", labels, predictions])
    commands = [
        ["generate", "--model", str(model), str(study), "--output", str(model / "config.json"),
         "--overwrite"],
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


def _gz_rows(path: Path) -> list[list[str]]:
    import csv
    import gzip

    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _write_gz(path: Path, rows: list[list[str]]) -> None:
    import csv
    import gzip

    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)


@pytest.mark.parametrize("image_size", [None, 16])
def test_prepare_never_reads_or_writes_outside_its_folders(tmp_path, image_size):
    """A split table whose dicom_id climbs out of the release (and a file waiting there)
    is refused, naming the study, before anything is read or written outside."""
    from test_prepare import _image, mimic_miniature

    from cknet.data.prepare import prepare_mimic_cxr

    jpg, reports = mimic_miniature(tmp_path)
    split = jpg / "mimic-cxr-2.0.0-split.csv.gz"
    rows = _gz_rows(split)
    evil = "../../../../../outside/evil"
    rows.append([evil, "50414267", "10000032", "train"])
    _write_gz(split, rows)
    outside = tmp_path / "outside" / "evil.jpg"
    _image(outside)
    before = outside.read_bytes()
    with pytest.raises(ValueError, match="study d01|evil"):
        prepare_mimic_cxr(jpg, reports, tmp_path / "out", image_size=image_size, progress=False)
    assert outside.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["evil.jpg"]


def test_prepare_refuses_an_absolute_image_path_by_line(tmp_path):
    from test_prepare import _image, _table

    from cknet.data.prepare import prepare_chexpert_plus

    images = tmp_path / "PNG"
    _image(images / "train/patient00001/study1/view1_frontal.png")
    secret = tmp_path / "secret" / "view1_frontal.png"
    _image(secret)
    table = tmp_path / "df_chexpert_plus_240401.csv"
    _table(table, ["path_to_image", "split", "section_findings", "section_impression"],
           [["train/patient00001/study1/view1_frontal.jpg", "train", "Clear.", ""],
            [str(secret.with_suffix(".jpg")), "train", "Clear.", ""]], gz=False)
    with pytest.raises(ValueError, match=r"line 3: path_to_image .* leaves the image folder"):
        prepare_chexpert_plus(table, images, tmp_path / "out", image_size=16, progress=False)
    assert not (tmp_path / "out" / "images").exists()


def test_prepare_refuses_a_study_or_patient_in_two_splits(tmp_path):
    """No split leak: a MIMIC-CXR study with images in train and test, or a CheXpert Plus
    patient in the release's train and valid splits, is refused naming the ids."""
    from test_prepare import _image, _table, mimic_miniature

    from cknet.data.prepare import prepare_chexpert_plus, prepare_mimic_cxr

    jpg, reports = mimic_miniature(tmp_path / "mimic")
    split = jpg / "mimic-cxr-2.0.0-split.csv.gz"
    rows = [[d, s, p, "test" if d == "d02" else sp] for d, s, p, sp in _gz_rows(split)[1:]]
    _write_gz(split, [["dicom_id", "study_id", "subject_id", "split"], *rows])
    with pytest.raises(ValueError, match=r"study 50414267 in test and train"):
        prepare_mimic_cxr(jpg, reports, tmp_path / "mimic-out", progress=False)

    images = tmp_path / "PNG"
    rows = []
    for split_name, study in (("train", "study1"), ("valid", "study2")):
        path = f"{split_name}/patient00001/{study}/view1_frontal.jpg"
        _image((images / path).with_suffix(".png"))
        rows.append([path, split_name, "Clear.", ""])
    table = tmp_path / "df_chexpert_plus_240401.csv"
    _table(table, ["path_to_image", "split", "section_findings", "section_impression"], rows, gz=False)
    with pytest.raises(ValueError, match=r"patient patient00001 in (test and train|test and val)"):
        prepare_chexpert_plus(table, images, tmp_path / "plus-out", progress=False)


def test_reports_zip_keys_by_subject_and_study_and_caps_sizes(tmp_path):
    """A member of another subject with the same study id never replaces a report (the
    zip is keyed by subject and study, as the folder); two members of one study are
    refused; a report file larger than any real one is refused before it is read."""
    import zipfile

    from cknet.data.prepare.tables import MAX_REPORT_BYTES, ReportFiles

    archive = tmp_path / "mimic-cxr-reports.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("mimic-cxr-reports/files/p11/p11000011/s51000001.txt", "FINDINGS: real report.")
        zf.writestr("mimic-cxr-reports/files/p99/p99999999/s51000001.txt", "FINDINGS: someone else's.")
    reports = ReportFiles(archive)
    assert reports.read("11000011", "51000001") == "FINDINGS: real report."
    assert reports.read("99999999", "51000001") == "FINDINGS: someone else's."
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("elsewhere/p11/p11000011/s51000001.txt", "FINDINGS: a duplicate.")
    with pytest.raises(ValueError, match="two reports of subject 11000011, study 51000001"):
        ReportFiles(archive)

    folder = tmp_path / "files" / "p10" / "p10000032"
    folder.mkdir(parents=True)
    (folder / "s50000001.txt").write_text("x" * (MAX_REPORT_BYTES + 1))
    with pytest.raises(ValueError, match="more than any real report"):
        ReportFiles(tmp_path).read("10000032", "50000001")


@pytest.mark.parametrize("field, value", [("num_encoder_layers", 100_000), ("d_model", 10_000_000),
                                          ("image_size", 1_000_000), ("vocab_size", 10_000_000_000),
                                          ("max_length", 10**9), ("num_views", 1000)])
def test_absurd_model_sizes_are_refused_before_allocation(tmp_path, field, value):
    """A config.json asking for sizes past any real model is refused, naming the field,
    at once (nothing built: the test would take minutes and gigabytes otherwise)."""
    import tracemalloc

    from conftest import small_config

    from cknet import CKNet

    model = _tiny_saved_model(tmp_path / "model")
    data = json.loads((model / "config.json").read_text())
    data[field] = value
    if field == "d_model":
        data["num_heads"] = 2
    (model / "config.json").write_text(json.dumps(data))
    tracemalloc.start()
    with pytest.raises(ValueError, match=field):
        CKNet.from_pretrained(model)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200 * 2**20
    with pytest.raises(ValueError, match=field):
        small_config(**{field: value, **({"num_heads": 2} if field == "d_model" else {})})


@pytest.mark.parametrize("options, match", [({"max_new_tokens": 10**9}, "max_new_tokens"),
                                            ({"num_beams": 10**6}, "num_beams"),
                                            ({"num_beams": "4"}, "num_beams")])
def test_absurd_or_mistyped_decoding_options_are_named(options, match):
    from cknet import GenerationConfig

    with pytest.raises(ValueError, match=match):
        GenerationConfig.from_dict(options)


@pytest.mark.parametrize("field, value", [("vocab_size", 10**10), ("hidden_size", 10**8),
                                          ("num_hidden_layers", 10**5)])
def test_absurd_language_model_configs_are_refused_before_building(tmp_path, field, value):
    """RadGraph's and a saved text encoder's BERT are built from config.json alone: sizes
    past any real model are refused, naming the field, before anything is allocated."""
    import shutil

    from cknet.testing import make_tiny_bert

    folder = make_tiny_bert(REPORTS, tmp_path / "bert", vocab_size=200, hidden_size=16, num_layers=1,
                            num_heads=2)
    config = json.loads((folder / "config.json").read_text())
    config[field] = value
    (folder / "config.json").write_text(json.dumps(config))
    from cknet.modules.language_model import PretrainedTextEncoder

    with pytest.raises(ValueError, match=field):
        PretrainedTextEncoder.from_config(folder, d_model=16)
    shutil.rmtree(folder)


def test_a_broken_plugin_is_skipped_with_one_line_naming_it(tmp_path):
    """A plugin that raises at import (skipped), and two plugins registering one name
    (the second replaces the first), leave `cknet --help` and `--version` working, with
    a one-line warning naming each."""
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    dist = site / "broken_plugins-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[cknet.plugins]\nraises = plugin_raises\nfirst = plugin_first\n"
                                           "second = plugin_second\n")
    (site / "plugin_raises.py").write_text("raise RuntimeError('plugin bug')\n")
    register = ("from cknet.graph import register_graph, KnowledgeGraph\n"
                "register_graph('twice', lambda: KnowledgeGraph(['a', 'b'], [(0, 1)]))\n")
    (site / "plugin_first.py").write_text(register)
    (site / "plugin_second.py").write_text(register)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    for argv in (["--version"], ["--help"]):
        done = subprocess.run([sys.executable, "-c", "import sys; from cknet.cli import main; "
                               "sys.exit(main(sys.argv[1:]))", *argv], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        warnings = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(warnings) == 2 and "Traceback" not in done.stderr, done.stderr
        assert "'raises'" in warnings[0] and "plugin bug" in warnings[0]
        assert "'second'" in warnings[1] and "twice" in warnings[1]


def test_a_folder_in_use_is_refused_naming_its_holder_and_a_stale_lock_is_taken_over(tmp_path):
    """Two prepares into one output (or two resumes of one run) never both run: the
    second is refused, naming the first; a lock whose process is gone is taken over."""
    import os
    import socket

    from test_prepare import mimic_miniature

    from cknet.data.prepare import prepare_mimic_cxr
    from cknet.persistence.files import LOCK_FILE, folder_lock

    jpg, reports = mimic_miniature(tmp_path)
    out = tmp_path / "out"
    prepare_mimic_cxr(jpg, reports, out, progress=False)
    (out / "annotation.json").unlink()  # as if interrupted: a rerun finishes it
    host = socket.gethostname()
    (out / LOCK_FILE).write_text(f"{os.getppid()} {host} 2026-12-06T08:00:00 cknet prepare mimic-cxr\n")
    with pytest.raises(FileExistsError, match=r"in use by cknet prepare mimic-cxr \(process \d+"):
        prepare_mimic_cxr(jpg, reports, out, progress=False)
    assert not (out / "annotation.json").exists()
    (out / LOCK_FILE).write_text(f"{2**22 + 12345} {host} 2026-12-06T08:00:00 cknet prepare mimic-cxr\n")
    prepare_mimic_cxr(jpg, reports, out, progress=False)  # the holder is gone: taken over
    assert (out / "annotation.json").is_file() and not (out / LOCK_FILE).exists()
    with folder_lock(out, "cknet train"):
        with pytest.raises(FileExistsError, match="in use by cknet train"):
            with folder_lock(out, "cknet train"):
                pass


def test_machine_and_file_shape_failures_are_said_in_words(tmp_path, capsys, monkeypatch):
    """Deep JSON, a CSV field past the csv module's limit, corrupt gzip, running out of
    memory and Ctrl-C during cknet train: a line naming what happened, never a traceback."""
    import gzip

    from test_prepare import mimic_miniature

    from cknet.cli import main

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["evaluate", "--predictions", str(deep)]) == 1
    assert "not a readable JSON file" in capsys.readouterr().err
    wide = tmp_path / "wide.csv"
    wide.write_text('id,prediction,reference\na,"' + "x" * 200_000 + '",b\n')
    assert main(["evaluate", "--predictions", str(wide)]) == 1
    assert "not a readable CSV file" in capsys.readouterr().err

    jpg, reports = mimic_miniature(tmp_path / "mimic")
    split = jpg / "mimic-cxr-2.0.0-split.csv.gz"
    split.write_bytes(gzip.compress(b"dicom_id,study_id,subject_id,split\n" * 100)[:-30])  # cut short
    assert main(["prepare", "mimic-cxr", "--images", str(jpg), "--reports", str(reports), "--output",
                 str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err

    import cknet.cli.evaluate as evaluate_command

    def exhausted(args):
        raise MemoryError()

    monkeypatch.setattr(evaluate_command, "run", exhausted)
    predictions = tmp_path / "p.json"
    predictions.write_text(json.dumps([{"id": "a", "prediction": "x", "reference": "y"}]))
    status = main(["evaluate", "--predictions", str(predictions)])
    err = capsys.readouterr().err
    assert status == 1 and "out of memory" in err and "smaller" in err

    import cknet.cli.train as train_command

    def interrupted(args, extra):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "run", interrupted)
    assert main(["train", "--resume", str(tmp_path / "run")]) == 130
    assert "cknet train --resume" in capsys.readouterr().err


def test_inputs_read_whole_are_capped_before_reading(tmp_path, capsys):
    """A prediction of megabytes and a tokenizer file of hundreds of MB are refused, named,
    before they are scored or parsed."""
    from cknet.cli import main
    from cknet.limits import MAX_TOKENIZER_BYTES
    from cknet.tokenizers import load_tokenizer

    predictions = tmp_path / "p.json"
    record = {"id": "a", "prediction": "x " * 1_000_000, "reference": "no effusion ."}
    predictions.write_text(json.dumps([record]))
    assert main(["evaluate", "--predictions", str(predictions)]) == 1
    assert "more than any real report" in capsys.readouterr().err
    huge = tmp_path / "tokenizer.json"
    with open(huge, "wb") as fh:
        fh.truncate(MAX_TOKENIZER_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ValueError, match="more than any tokenizer file"):
        load_tokenizer(huge)
