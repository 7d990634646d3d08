
import numpy as np
import pytest
import torch

from cknet import CKNetConfig
from cknet.data.synthetic import FINDINGS, SyntheticDataset, SyntheticReports, render_study
from cknet.labeler import CheXpertLabeler


def test_rendering_is_deterministic_and_varies_between_studies():
    a = render_study(["cardiomegaly"], seed=3, size=64)
    assert a.shape == (2, 64, 64) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert np.array_equal(a, render_study(["cardiomegaly"], seed=3, size=64))
    assert not np.array_equal(a, render_study(["cardiomegaly"], seed=4, size=64))
    assert render_study([], seed=0, size=100, views=1).shape == (1, 100, 100)
    with pytest.raises(ValueError, match="unknown findings"):
        render_study(["pneumonia of the toe"], seed=0)


def _centre_of_change(finding, seed=5, size=128):
    diff = np.abs(render_study([finding], seed, size)[0] - render_study([], seed, size)[0])
    diff[diff < 0.05] = 0  # ignore noise-level differences
    assert diff.sum() > 0, f"{finding} does not change the frontal view"
    ys, xs = np.mgrid[0:size, 0:size] / size
    return (ys * diff).sum() / diff.sum(), (xs * diff).sum() / diff.sum()


@pytest.mark.parametrize("finding", FINDINGS)
def test_each_finding_changes_the_image_where_expected(finding):
    y, x = _centre_of_change(finding)
    if finding.startswith("left "):  # the patient's left is the image's right
        assert x > 0.55
    elif finding.startswith("right "):
        assert x < 0.45
    if "effusion" in finding or "atelectasis" in finding:
        assert y > 0.5  # at the lung base
    if "pneumothorax" in finding:
        assert y < 0.5  # at the apex
    if finding == "cardiomegaly":
        assert 0.4 < x < 0.65 and y > 0.5



def test_reports_follow_the_findings():
    rng = np.random.default_rng(0)
    labeler = CheXpertLabeler()
    names = labeler.observations
    report = SyntheticReports.write(["cardiomegaly", "left pleural effusion", "right pneumothorax"], rng)
    row = labeler.label([report])[0]
    assert row[names.index("Cardiomegaly")] == 1 and row[names.index("Pleural Effusion")] == 1
    assert row[names.index("Pneumothorax")] == 1 and row[names.index("Edema")] != 1
    normal = labeler.label([SyntheticReports.write([], rng)])[0]
    assert normal[names.index("No Finding")] == 1 and normal[names.index("Pleural Effusion")] == 0
    phrasings = {SyntheticReports.write(["cardiomegaly"], np.random.default_rng(s)) for s in range(20)}
    assert len(phrasings) > 5  # varied phrasing


def test_dataset_items():
    config = CKNetConfig.iu_xray(image_size=48)
    data = SyntheticDataset(20, config, seed=1)
    item = data[3]
    assert item["images"].shape == (2, 3, 48, 48) and item["labels"].shape == (len(FINDINGS),)
    assert torch.equal(item["images"], SyntheticDataset(20, config, seed=1)[3]["images"])
    np.testing.assert_array_equal(data.label_matrix()[3], item["labels"].numpy())
    blank = SyntheticDataset(20, config, seed=1, blank=True)[3]
    assert blank["report"] == item["report"] and (blank["images"].std(dim=(-1, -2)) == 0).all()
    assert 0.05 < data.label_matrix().mean() < 0.3


def test_read_inverts_write_on_raw_and_cleaned_text():
    from cknet.tokenizers import clean_report

    reports = SyntheticReports()
    rng = np.random.default_rng(1)
    for _ in range(300):
        findings = reports.sample(rng)
        text = reports.write(findings, rng)
        expected = reports.labels(findings)
        np.testing.assert_array_equal(reports.read([text])[0], expected)
        np.testing.assert_array_equal(reports.read([clean_report(text, "iu_xray")])[0], expected)
    # Negations and normal sentences state nothing; a finding's sentence in any report does.
    assert reports.read(["No pleural effusion. No pneumothorax. No pulmonary edema."]).sum() == 0
    row = reports.read(["the heart is enlarged . there is a right pneumothorax ."])[0]
    assert {FINDINGS[j] for j in np.flatnonzero(row)} == {"cardiomegaly", "right pneumothorax"}
    with pytest.raises(ValueError, match="list of report texts"):
        reports.read("There is cardiomegaly.")


def test_synthetic_graph_covers_the_findings():
    from cknet.data.synthetic import synthetic_graph

    graph = synthetic_graph()
    graph.validate()
    assert graph.nodes == list(FINDINGS)
    adjacency = graph.adjacency()
    left, right = FINDINGS.index("left pleural effusion"), FINDINGS.index("right pleural effusion")
    assert adjacency[left, right] == 1 and adjacency.sum(axis=1).min() >= 1  # no isolated node


def test_keep_rendered_draws_each_study_once(monkeypatch):
    import cknet.data.synthetic.dataset as synthetic

    config = CKNetConfig.iu_xray(image_size=32)
    calls = []

    def counting_render(*args, **kwargs):
        calls.append(kwargs["seed"])
        return render_study(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render_study", counting_render)
    kept = SyntheticDataset(5, config, seed=2, keep_rendered=True)
    first = [kept[i]["images"] for i in range(5)]
    second = [kept[i]["images"] for i in range(5)]
    assert len(calls) == 5 and all(torch.equal(a, b) for a, b in zip(first, second))
    fresh = SyntheticDataset(5, config, seed=2)
    assert all(torch.equal(a, fresh[i]["images"]) for i, a in enumerate(first))
    assert len(calls) == 10 and not fresh.rendered  # drawn again, nothing kept


# Each rendered finding's CheXpert observation(s): a report stating it is positive there.
_OBSERVED_AS = {
    "cardiomegaly": {"Cardiomegaly"}, "pleural effusion": {"Pleural Effusion"},
    "pneumothorax": {"Pneumothorax"}, "lung opacity": {"Lung Opacity", "Consolidation"},
    "lung nodule": {"Lung Lesion"}, "atelectasis": {"Atelectasis"}, "pulmonary edema": {"Edema"},
    "rib fracture": {"Fracture"}, "support devices": {"Support Devices"},
    "hiatal hernia": set(), "scoliosis": set(), "calcified granuloma": set(),
}


@pytest.mark.parametrize("convention", ["chexbert", "chexpert"])
def test_the_labeler_reads_every_rendered_finding_as_the_renderer_drew_it(convention):
    from cknet.data.synthetic import FINDINGS, SyntheticReports
    from cknet.labeler import OBSERVATIONS

    labeler = CheXpertLabeler(convention)
    for finding in FINDINGS:
        observed = _OBSERVED_AS[finding.removeprefix("left ").removeprefix("right ")]
        reports = sorted({SyntheticReports.write([finding], np.random.default_rng(s)) for s in range(40)})
        assert len(reports) >= 2, finding  # every phrasing of the finding is drawn
        for report, row in zip(reports, labeler.label(reports)):
            stated = {o for o, v in zip(OBSERVATIONS, row) if v == 1 and o != "No Finding"}
            assert stated == observed or (len(observed) == 2 and len(stated) == 1 and stated <= observed), (
                finding, report, stated)
            assert not (row[1:] == -1).any(), (finding, report)  # nothing the renderer drew is hedged
            no_finding = row[0] == 1
            assert no_finding == (not observed - {"Support Devices"} and convention == "chexbert"
                                  or finding == "support devices"), (finding, report)
    normal = sorted({SyntheticReports.write([], np.random.default_rng(s)) for s in range(40)})
    labels = labeler.label(normal)
    assert (labels[:, 0] == 1).all() and not (labels[:, 1:] == 1).any() and not (labels[:, 1:] == -1).any()
