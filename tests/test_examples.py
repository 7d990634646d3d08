import shlex
import subprocess
import sys

import pytest
from conftest import REPO, SHARED, require


def run_example(name, *args, timeout=600):
    """Run ``examples/NAME`` with this interpreter; return its standard output."""
    out = subprocess.run([sys.executable, str(REPO / "examples" / name), *map(str, args)],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.slow
def test_quickstart_fits_and_reproduces_the_sample_reports():
    data = require(SHARED / "data")
    lines = run_example("quickstart.py", "--data-dir", data).splitlines()
    references = [line.removeprefix("reference: ") for line in lines if line.startswith("reference: ")]
    generated = [line.removeprefix("generated: ") for line in lines if line.startswith("generated: ")]
    assert len(references) == 2 and generated == references


@pytest.mark.slow
def test_quickstart_without_shared_data(tmp_path):
    stdout = run_example("quickstart.py", "--data-dir", tmp_path, "--steps", 5)
    assert "generated images" in stdout and stdout.count("generated: ") == 2


@pytest.mark.slow
def test_custom_graph_example(tmp_path):
    stdout = run_example("custom_graph.py", "--output", tmp_path, timeout=900)
    auc = float(stdout.split("mean validation AUC ")[1].split()[0])
    assert auc >= 0.9
    assert "saved and reloaded" in stdout
    assert (tmp_path / "graph_model" / "graph_model.safetensors").is_file()


@pytest.mark.slow
def test_text_encoder_example_fits_saves_and_reloads_offline(tmp_path, tiny_bert_dir):
    for folder in ([], ["--text-encoder", tiny_bert_dir]):  # its own tiny BERT, then a given folder
        lines = run_example("text_encoder.py", "--output", tmp_path / "model", "--steps", 60,
                            *folder).splitlines()
        references = [line.removeprefix("reference: ") for line in lines if line.startswith("reference: ")]
        generated = [line.removeprefix("generated: ") for line in lines if line.startswith("generated: ")]
        assert lines[-1].endswith("reloaded from that folder alone: same reports")
        assert (tmp_path / "model" / "text_encoder" / "config.json").is_file()
    assert len(references) == 2 and generated == references  # fitted with the IU-trained vocabulary


@pytest.mark.slow
def test_evaluate_reports_example_scores_the_baselines():
    data = require(SHARED / "data")
    sections = run_example("evaluate_reports.py", "--data-dir", data).split("== ")[1:]
    assert [s.splitlines()[0] for s in sections] == ["most frequent training report",
                                                     "another study's report"]
    # The constant normal report predicts "No Finding" for all 590 studies and nothing else.
    no_finding = next(line for line in sections[0].splitlines() if "No Finding" in line).split()
    assert no_finding[-2] == "590"
    assert "BLEU_4" in sections[1] and "average: micro" in sections[1]


def _shell_commands(script):
    """The `cknet ...` command lines of a shell script, continuation lines joined."""
    text = script.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("cknet "):
            yield shlex.split(line.replace("$DATA", "data/iu_xray").replace("$RUNS", "runs"))[1:]


def test_train_iu_xray_script_uses_real_options():
    import dataclasses

    from cknet import CKNetConfig
    from cknet.cli import build_parser
    from cknet.cli.train import overrides
    from cknet.training import TrainingConfig, apply_overrides, load_recipe

    script = REPO / "examples" / "train_iu_xray.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    commands = list(_shell_commands(script))
    assert [c[0] for c in commands] == ["pretrain-graph", "train", "generate", "evaluate"]
    for argv in commands:
        args, extra = build_parser().parse_known_args(argv)  # exits on an unknown option
        if argv[0] != "train":
            assert not extra, f"unknown options {extra} in: cknet {' '.join(argv)}"
            continue
        model, training = apply_overrides(*load_recipe(args.config), overrides(extra))
        assert isinstance(model, CKNetConfig) and isinstance(training, TrainingConfig)
        assert training.mixed_precision == "bf16" and model.backbone_weights == "imagenet"
        assert dataclasses.replace(training, mixed_precision="no", num_workers=2) == load_recipe("iu_xray")[1]


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    require(SHARED / "data" / "samples" / "iu_xray")
    notebook = nbformat.read(REPO / "examples" / "quickstart.ipynb", as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO / "examples")}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert text.count("generated:") == 2 and "patches drew on:" in text
    pictures = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(pictures) == 2
    assert not list((REPO / "examples").glob("*.png"))  # nothing left beside the notebook
