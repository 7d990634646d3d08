import subprocess
import sys

import pytest
from conftest import REPO, SHARED, require


@pytest.mark.slow
def test_quickstart_fits_and_reproduces_the_sample_reports():
    data = require(SHARED / "data")
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py"), "--data-dir", str(data)],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    references = [line.removeprefix("reference: ") for line in lines if line.startswith("reference: ")]
    generated = [line.removeprefix("generated: ") for line in lines if line.startswith("generated: ")]
    assert len(references) == 2 and generated == references


@pytest.mark.slow
def test_quickstart_without_shared_data(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py"), "--data-dir", str(tmp_path),
         "--steps", "5"],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "generated images" in out.stdout and out.stdout.count("generated: ") == 2


@pytest.mark.slow
def test_custom_graph_example(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "custom_graph.py"), "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr
    auc = float(out.stdout.split("mean validation AUC ")[1].split()[0])
    assert auc >= 0.9
    assert "saved and reloaded" in out.stdout
    assert (tmp_path / "graph_model" / "graph_model.safetensors").is_file()
