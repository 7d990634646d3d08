"""`cknet app`'s handlers (`cknet.app.ReportApp`), without Gradio or a browser: the page
shows what the model and `explain` give, with the model's warnings, and names a bad file."""

import json

import pytest
import torch
from conftest import SAMPLES, require, small_config

from cknet import CKNet
from cknet.app import ReportApp


@pytest.fixture(scope="module")
def saved(tmp_path_factory, iu_tokenizer):
    folder = tmp_path_factory.mktemp("app")
    torch.manual_seed(0)
    model = CKNet(small_config(num_views=2, knowledge_source="random"), iu_tokenizer)
    model.generation_config = model.generation_config.updated(max_new_tokens=8)
    model.save_pretrained(folder / "demo", training_info={"synthetic": True})
    return folder / "demo"


def test_the_page_shows_the_models_report_its_figure_and_warnings(saved, tmp_path):
    study = sorted(require(SAMPLES / "iu_xray" / "CXR7_IM-2263").glob("*.png"))
    app = ReportApp(saved, device="cpu")
    result = app.analyse(study)
    expected = CKNet.from_pretrained(saved).generate([study])[0]
    assert result.report == expected  # as generate writes it, readable
    assert result.figure.size[0] > 300 and result.figure.mode == "RGB"
    assert any("synthetic radiographs only" in w for w in result.warnings)
    assert any("2 views (frontal first)" in w for w in result.warnings)
    record = json.loads(app.download(result, tmp_path).read_text())
    assert record["report"] == result.report and record["images"] == [p.name for p in study]


def test_one_view_for_a_two_view_model_is_said_and_bad_files_are_named(saved, tmp_path):
    study = sorted(require(SAMPLES / "iu_xray" / "CXR7_IM-2263").glob("*.png"))
    app = ReportApp(saved, device="cpu")
    assert "fills every view" in app.analyse(study[:1]).warnings[0]
    with pytest.raises(ValueError, match="drop the study's images"):
        app.analyse([])
    with pytest.raises(ValueError, match="reads 2 view"):
        app.analyse(study * 2)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises((ValueError, OSError), match="broken.png"):
        app.analyse([broken])


def test_without_gradio_the_command_names_the_extra(saved, monkeypatch):
    import builtins

    from cknet.app import build_page

    real_import = builtins.__import__

    def no_gradio(name, *args, **kwargs):
        if name == "gradio":
            raise ImportError("No module named 'gradio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gradio)
    with pytest.raises(ImportError, match=r'pip install "cknet\[app\]"'):
        build_page(ReportApp(saved, device="cpu"))
