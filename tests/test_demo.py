import json
import re

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

from cknet import CKNet
from cknet.cli import main
from cknet.data.synthetic import FINDINGS, SyntheticDataset, SyntheticReports
from cknet.demo import SUMMARY_FILE, DemoResult, DemoSettings, format_result, run_demo

QUICK_MARGIN = 0.3  # CE F1 on images minus CE F1 on blank images, `cknet demo` (quick settings)


@pytest.mark.slow
def test_quick_demo_reads_the_images(tmp_path, capsys, monkeypatch):
    out = tmp_path / "cknet-demo"
    status = main(["demo", "--output", str(out), "--min-ce-margin", str(QUICK_MARGIN)])
    printed = capsys.readouterr().out
    assert status == 0, printed[-2000:]
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["ce"]["scores"]["f1"] - summary["ce_blank"]["scores"]["f1"] >= QUICK_MARGIN
    assert "REFERENCE" in printed and "CE F1 with blank images" in printed

    # The saved model loads and writes the same reports; re-score them independently:
    # labels read from the generated text against the findings the renderer drew.
    model = CKNet.from_pretrained(out / "model")
    config = model.config
    test = SyntheticDataset(summary["settings"]["test_studies"], config, seed=2)
    images = torch.stack([test[i]["images"] for i in range(len(test))])
    reports = model.generate(images, num_beams=3)
    assert [r for r, _ in summary["examples"]] == [test.report(i) for i in range(4)]
    assert [g for _, g in summary["examples"]] == reports[:4]
    predicted = SyntheticReports.read(reports).astype(bool)
    truth = test.label_matrix().astype(bool)
    tp, fp, fn = (predicted & truth).sum(), (predicted & ~truth).sum(), (~predicted & truth).sum()
    assert summary["ce"]["scores"]["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert "not a medical device" in (out / "model" / "README.md").read_text()

    # A few held-out studies kept as study folders, to try generate on (README's snippet).
    samples = sorted((out / "samples").iterdir())
    assert [s.name for s in samples] == sorted(test.study_id(i) for i in range(3))
    for folder in samples:
        index = test.study_ids().index(folder.name)
        assert (folder / "report.txt").read_text().strip() == test.report(index)
        assert sorted(p.name for p in folder.glob("*.png")) == [f"{v}.png" for v in range(config.num_views)]
    assert len(model.generate(samples)) == 3

    # README's snippet runs as written on what the demo saved (from the folder above it).
    monkeypatch.chdir(tmp_path)
    (block,) = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(), re.S | re.M)
    namespace: dict = {}
    with pytest.warns(UserWarning, match="synthetic radiographs only"):
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["reports"] == model.generate(samples)
    assert namespace["explanation"].words and namespace["explanation"].node_attention is not None

    # The picture: the study's view on the left, its top knowledge nodes in the summary.
    from cknet.study_figure import HEADER, TILE

    picture = np.asarray(Image.open(out / "study.png").convert("L"), dtype=float) / 255
    view = Image.fromarray((test.render(0)[0] * 255).astype(np.uint8)).resize((TILE, TILE))
    assert np.abs(picture[HEADER:HEADER + TILE, :TILE] - np.asarray(view, dtype=float) / 255).mean() < 0.02
    assert picture.shape[0] < HEADER + 2 * TILE  # as tall as its text, no large empty area
    names = {"(global node)", *FINDINGS}
    for kind in ("patches", "tokens"):
        rows = summary["figure_nodes"][kind]
        assert len(rows) == 5 and {name for name, _ in rows} <= names
        weights = [w for _, w in rows]
        assert weights == sorted(weights, reverse=True) and 0 < sum(weights) <= 1 + 1e-6
    detected = [name for name, p in summary["figure_nodes"]["detected"] if p > 0.5]
    assert set(detected) <= set(FINDINGS)


def test_demo_trains_and_saves_the_backbone_of_its_settings(tmp_path):
    tiny = DemoSettings(backbone="mobilenet_v3_small", image_size=64, train_studies=24, val_studies=8,
                        test_studies=8, graph_epochs=1, epochs=1, d_model=16, d_knowledge=8, layers=1,
                        num_heads=2, gamma=2)
    result = run_demo(tmp_path / "demo", settings=tiny, progress=False)
    model = CKNet.from_pretrained(result.model_dir)
    assert model.config.backbone == "mobilenet_v3_small" and model.config.share_backbone
    assert model.knowledge_source.graph_model.config.backbone == "mobilenet_v3_small"
    assert model.knowledge_source.graph_model.backbone.num_channels == 576  # MobileNetV3-Small's last map
    summary = json.loads((tmp_path / "demo" / SUMMARY_FILE).read_text())
    assert summary["settings"]["backbone"] == "mobilenet_v3_small"


def test_demo_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    (tmp_path / "cknet-demo.json").write_text("{}")  # looks like a demo's, but cknet did not mark it
    assert main(["demo", "--output", str(tmp_path), "--quiet"]) == 1
    assert "holds no cknet demo" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_a_demo_replaces_its_own_folder_whole_and_never_the_users_files(tmp_path, capsys, monkeypatch):
    import cknet.demo

    tiny = DemoSettings(backbone="resnet18", image_size=64, train_studies=16, val_studies=8, test_studies=8,
                        graph_epochs=1, epochs=1, d_model=16, d_knowledge=8, layers=1, num_heads=2, gamma=2)
    out = tmp_path / "demo"
    first = run_demo(out, settings=tiny, progress=False)
    assert first.model_dir == out / "model" and sorted(p.name for p in out.iterdir()) == sorted(
        cknet.demo.DEMO_ENTRIES - {"base-run"})  # base-run/ with --base only
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def killed(*args, **kwargs):  # the next demo dies half-way through
        raise KeyboardInterrupt

    monkeypatch.setattr(cknet.demo, "draw_study", killed)
    with pytest.raises(KeyboardInterrupt):
        run_demo(out, settings=tiny, progress=False, seed=1)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no half-written folder left
    monkeypatch.undo()

    (out / "notes.txt").write_text("my notes")  # the user's own file in the demo's folder
    with pytest.raises(FileExistsError, match=r"also holds \['notes.txt'\]"):
        run_demo(out, settings=tiny, progress=False)
    assert (out / "notes.txt").read_text() == "my notes"


def test_format_result_puts_reports_side_by_side():
    scores = {"precision": 0.9, "recall": 0.8, "f1": 0.85}
    result = DemoResult(
        ce={"scores": scores}, ce_blank={"scores": {**scores, "f1": 0.1}},
        nlg={"scores": {"BLEU_4": 0.5, "METEOR": None}}, graph_auc=0.99,
        examples=[("The heart is enlarged. " * 5, "the heart is enlarged .")],
        model_dir="m", figure="f.png", figure_nodes={}, seconds={"total": 1.0},
    )
    text = format_result(result, width=80)
    rows = [line for line in text.splitlines() if " | " in line]
    assert rows[0].startswith("REFERENCE") and all(line.index(" | ") == 38 for line in rows)
    assert "margin +0.750" in text and "BLEU_4 0.500" in text and "METEOR" not in text
    assert np.isclose(result.ce_margin, 0.75)


def test_demo_with_base_reports_what_the_knowledge_path_adds(tmp_path, capsys):
    """--base trains Base on the same cached studies and recipe: its scores equal the
    saved Base model's reports re-scored, and the printout puts them beside CKNet's."""
    tiny = DemoSettings(image_size=64, train_studies=24, val_studies=8, test_studies=8, graph_epochs=1,
                        epochs=1, d_model=16, d_knowledge=8, layers=1, num_heads=2, gamma=2)
    result = run_demo(tmp_path / "demo", settings=tiny, progress=True, base=True)
    printed = capsys.readouterr().out
    base = CKNet.from_pretrained(tmp_path / "demo" / "base-run" / "best")
    assert base.config.knowledge_source == "none" and base.cross_modal is None
    test = SyntheticDataset(tiny.test_studies, base.config, seed=2)
    reports = base.generate(torch.stack([test[i]["images"] for i in range(len(test))]), num_beams=3)
    predicted = SyntheticReports.read(reports).astype(bool)
    truth = test.label_matrix().astype(bool)
    tp, fp, fn = (predicted & truth).sum(), (predicted & ~truth).sum(), (~predicted & truth).sum()
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    assert result.base["ce"]["scores"]["f1"] == pytest.approx(f1)
    assert "Base (no knowledge matrix): CE F1" in printed
    assert f"CE F1 {result.ce['scores']['f1'] - f1:+.3f} (CKNet - Base)" in printed


def test_demo_output_on_a_disk_that_takes_no_folders_is_named_before_any_work(capsys):
    assert main(["demo", "--output", "/proc/cknet-demo", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "cannot write the demo to /proc/cknet-demo" in err and ".tmp" not in err
