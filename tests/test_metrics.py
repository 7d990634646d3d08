import csv
import json
import time

import numpy as np
import pytest
from conftest import SHARED, require

from cknet.cli import main
from cknet.labeler import OBSERVATIONS, CheXpertLabeler
from cknet.metrics import ce_scores, meteor_score, nlg_scores
from cknet.tokenizers import clean_report

REFERENCES = ["the heart is normal in size . no pleural effusion .", "lungs are clear . no pneumothorax .",
              "mild cardiomegaly . small left pleural effusion .", "no acute cardiopulmonary abnormality ."]
PREDICTIONS = ["the heart is normal . no effusion .", "the lungs are clear .",
               "cardiomegaly . no pleural effusion .", "no acute cardiopulmonary abnormality ."]


def direct_pycocoevalcap(references, predictions):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: [r] for i, r in enumerate(references)}
    res = {i: [p] for i, p in enumerate(predictions)}
    bleu = Bleu(4).compute_score(gts, res, verbose=0)[0]
    out = {f"BLEU_{i + 1}": b for i, b in enumerate(bleu)}
    out["METEOR"] = Meteor().compute_score(gts, res)[0]
    out["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    out["CIDEr"] = Cider().compute_score(gts, res)[0]
    return out


@pytest.mark.slow
def test_nlg_scores_equal_a_direct_pycocoevalcap_call(iu_annotation):
    references = [e["report"].lower() for e in iu_annotation["test"][:40]]
    predictions = [e["report"].lower() for e in iu_annotation["test"][40:80]]
    ours = nlg_scores(references, predictions, reference_form="raw")
    assert ours.settings["references"] == "raw" and not ours.notes
    expected = direct_pycocoevalcap(references, predictions)
    assert ours.scores == pytest.approx(expected, rel=0, abs=0)


def test_cleaned_references_are_truncated_like_the_peers(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # BLEU suffices here: skip METEOR's Java start
    long = ". ".join(["The lungs are clear"] * 30)
    cleaned = nlg_scores([long], ["the lungs are clear ."], "cleaned", max_length=10)
    assert cleaned.settings == {"references": "cleaned", "dataset": "iu_xray", "max_length": "10"}
    raw_truncated = nlg_scores(["the lungs are clear . the lungs are clear"], ["the lungs are clear ."],
                               "raw")
    assert cleaned["BLEU_1"] == raw_truncated["BLEU_1"]


def r2gen_reference(report, dataset, token2idx, max_seq_length):
    """R2Gen's reference, written from its code (cuhksz-nlp/R2Gen, modules/tokenizers.py,
    datasets.py, trainer.py): ids = [0] + ids + [0], cut to max_seq_length in the
    dataset, then decode_batch(reports_ids[:, 1:]), which stops at the first id 0."""
    ids = [0] + [token2idx[token] for token in clean_report(report, dataset).split()] + [0]
    ids = ids[:max_seq_length][1:]
    idx2token = {i: t for t, i in token2idx.items()}
    words = []
    for idx in ids:
        if idx <= 0:
            break
        words.append(idx2token[idx])
    return " ".join(words)


@pytest.mark.parametrize("dataset, max_length", [("iu_xray", 60), ("iu_xray", 20), ("mimic_cxr", 100)])
def test_cleaned_references_equal_r2gens_on_every_iu_test_report(iu_annotation, dataset, max_length):
    """Every IU X-Ray test reference as R2Gen scores it (its vocabulary taken over all the
    words, so that no <unk> enters: cknet keeps the words, docs/evaluation.md)."""
    from cknet.metrics.nlg import prepare_texts

    reports = [e["report"] for e in iu_annotation["test"]]
    vocabulary = sorted({t for r in reports for t in clean_report(r, dataset).split()})
    token2idx = {t: i + 1 for i, t in enumerate(vocabulary)}
    expected = [r2gen_reference(r, dataset, token2idx, max_length) for r in reports]
    ours, _, settings = prepare_texts(reports, reports, "cleaned", dataset, max_length)
    assert settings["max_length"] == str(max_length)
    assert ours == expected
    assert max(len(r.split()) for r in ours) == min(max_length - 1, max(len(clean_report(r, dataset).split())
                                                                        for r in reports))


def test_without_java_meteor_is_unavailable_and_the_rest_computed(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    report = nlg_scores(REFERENCES, PREDICTIONS, "raw")
    assert report["METEOR"] is None and len(report.notes) == 1 and "Java" in report.notes[0]
    assert report["BLEU_4"] is not None and report["CIDEr"] > 0


@pytest.mark.slow
def test_empty_non_ascii_and_multiline_predictions_do_not_hang():
    start = time.perf_counter()
    odd = ["", "poumons clairs \u00e9panchement \u2013 n\u00e9ant", "two\nlines", "|||"]
    report = nlg_scores(REFERENCES, odd, "raw")
    assert report["METEOR"] is not None and 0 <= report["METEOR"] < 1
    # A hang guard, not a speed check: METEOR answers in seconds on any machine seen.
    assert time.perf_counter() - start < 600


@pytest.mark.slow
def test_meteor_matches_pycocoevalcap_per_report():
    from pycocoevalcap.meteor.meteor import Meteor

    gts = {i: [r] for i, r in enumerate(REFERENCES)}
    res = {i: [p] for i, p in enumerate(PREDICTIONS)}
    assert meteor_score(gts, res) == Meteor().compute_score(gts, res)


def brute_force_ce(ref, pred):
    cells = [(r, p) for rr, pp in zip(ref, pred) for r, p in zip(rr, pp)]
    tp = sum(r and p for r, p in cells)
    fp = sum((not r) and p for r, p in cells)
    fn = sum(r and not p for r, p in cells)
    return tp / (tp + fp), tp / (tp + fn), 2 * tp / (2 * tp + fp + fn)


def test_ce_scores_averaging_and_policy():
    rng = np.random.default_rng(0)
    ref = rng.choice([1.0, 0.0, -1.0, np.nan], size=(30, 14))
    pred = rng.choice([1.0, 0.0, -1.0, np.nan], size=(30, 14))
    ref_b = {u: (ref == 1) | ((ref == -1) & (u == 1)) for u in (0, 1)}
    pred_b = {u: (pred == 1) | ((pred == -1) & (u == 1)) for u in (0, 1)}
    for u in (0, 1):
        micro = ce_scores(ref, pred, "micro", uncertain=u)
        expected = brute_force_ce(ref_b[u], pred_b[u])
        assert (micro["precision"], micro["recall"], micro["f1"]) == pytest.approx(expected)
        assert micro.settings["average"] == "micro" and f"-1 -> {u}" in micro.settings["uncertain"]
        macro = ce_scores(ref, pred, "macro", uncertain=u)
        per_obs = [brute_force_ce(ref_b[u][:, [j]], pred_b[u][:, [j]])[2] for j in range(14)]
        assert macro["f1"] == pytest.approx(np.mean(per_obs))
        example = ce_scores(ref, pred, "example", uncertain=u)
        per_report = []
        for i in range(30):
            if not ref_b[u][i].any() and not pred_b[u][i].any():
                per_report.append(1.0)
            else:
                tp = (ref_b[u][i] & pred_b[u][i]).sum()
                per_report.append(2 * tp / (ref_b[u][i].sum() + pred_b[u][i].sum()))
        assert example["f1"] == pytest.approx(np.mean(per_report))
        assert len(micro.table) == 14 and micro.table[0]["observation"] == "No Finding"


def test_ce_scores_accepts_reports_csvs_and_callables(tmp_path):
    labeler = CheXpertLabeler()
    from_text = ce_scores(REFERENCES, PREDICTIONS)
    from_arrays = ce_scores(labeler.label(REFERENCES), labeler.label(PREDICTIONS))
    assert from_text.scores == from_arrays.scores
    path = tmp_path / "labeled_reports.csv"  # the CheXpert labeler's output format
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Reports", *OBSERVATIONS])
        for report, row in zip(REFERENCES, labeler.label(REFERENCES)):
            writer.writerow([report] + ["" if np.isnan(v) else v for v in row])
    assert ce_scores(path, PREDICTIONS).scores == from_arrays.scores
    always_positive = lambda reports: np.ones((len(reports), 14))  # noqa: E731
    assert ce_scores(REFERENCES, PREDICTIONS, labeler=always_positive)["recall"] == 1.0
    with pytest.raises(ValueError, match="average"):
        ce_scores(REFERENCES, PREDICTIONS, average="weighted")


@pytest.mark.parametrize(
    "sentence, observation, expected",
    [
        ("There is a small right pleural effusion.", "Pleural Effusion", 1),
        ("No pleural effusion.", "Pleural Effusion", 0),
        ("Lungs are clear without consolidation.", "Consolidation", 0),
        ("The lungs are free of consolidation.", "Consolidation", 0),
        ("Negative for pneumothorax.", "Pneumothorax", 0),
        ("The lungs are clear of edema.", "Edema", 0),
        ("Previously seen pneumothorax has resolved.", "Pneumothorax", 0),
        ("Left basilar opacity may represent atelectasis.", "Atelectasis", -1),
        ("Possible right lower lobe pneumonia.", "Pneumonia", -1),
        ("Pneumonia cannot be excluded.", "Pneumonia", -1),
        ("Findings suggestive of mild edema.", "Edema", -1),
        ("The heart is enlarged.", "Cardiomegaly", 1),
        ("Right PICC line with tip in the SVC.", "Support Devices", 1),
        ("Healed left rib fractures.", "Fracture", 1),
    ],
)
def test_chexpert_labeler_sentences(sentence, observation, expected):
    labeler = CheXpertLabeler()
    assert labeler.label([sentence])[0, labeler.observations.index(observation)] == expected


def test_chexpert_labeler_scope_and_no_finding():
    labeler = CheXpertLabeler()
    names = list(labeler.observations)
    assert names == list(OBSERVATIONS) and len(names) == 14
    rows = labeler.label(["No effusion but cardiomegaly is present.",
                          "The lungs are clear. Heart size normal.",
                          "Possible edema. A PICC line is in place."])
    assert rows[0, names.index("Pleural Effusion")] == 0 and rows[0, names.index("Cardiomegaly")] == 1
    assert np.isnan(rows[0, 0]) and rows[1, 0] == 1  # No Finding, the CheXpert way
    assert np.isnan(rows[2, 0])  # an uncertain pathology is a finding; the device is not



def test_chexpert_labeler_agrees_with_mesh_on_the_test_split():
    import sys

    from conftest import REPO

    require(SHARED / "data" / "iu_xray")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from chexpert_vs_mesh import compare

    _, micro, _ = compare(SHARED / "data" / "iu_xray", "test", uncertain=0)
    # CheXpert's conventions differ from the MeSH indexers' (devices, calcified nodules,
    # consolidation apart from opacity): 0.757 measured; this guards against regressions.
    assert micro["f1"] >= 0.73


@pytest.mark.slow
def test_evaluate_command(tmp_path, capsys):
    predictions = [{"id": str(i), "prediction": p, "reference": r}
                   for i, (r, p) in enumerate(zip(REFERENCES, PREDICTIONS))]
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(predictions))
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--predictions", str(path), "--output", str(out),
                 "--per-report", str(tmp_path / "labels.csv")]) == 0
    printed = capsys.readouterr().out
    assert "BLEU_4" in printed and "average: micro" in printed and "-1 -> 0" in printed
    saved = json.loads(out.read_text())
    assert saved["nlg"]["scores"] == pytest.approx(nlg_scores(REFERENCES, PREDICTIONS).scores)
    assert saved["ce"]["settings"]["average"] == "micro"
    intervals = saved["intervals"]["scores"]  # 1000 bootstrap resamples by default
    assert saved["intervals"]["settings"]["resamples"] == 1000 and "95% intervals" in printed
    assert intervals["BLEU_4"]["value"] == pytest.approx(saved["nlg"]["scores"]["BLEU_4"], abs=1e-9)
    assert intervals["ce_f1"]["value"] == pytest.approx(saved["ce"]["scores"]["f1"], abs=1e-9)
    assert all(i["low"] <= i["value"] <= i["high"] for i in intervals.values())
    rows = list(csv.DictReader(open(tmp_path / "labels.csv")))
    assert len(rows) == 4 and rows[2]["reference Cardiomegaly"] == "1"
    only_predictions = tmp_path / "only.csv"
    with open(only_predictions, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["id", "prediction"])
        writer.writeheader()
        writer.writerows({"id": r["id"], "prediction": r["prediction"]} for r in predictions)
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps([{"id": r["id"], "reference": r["reference"]} for r in predictions]))
    assert main(["evaluate", "--predictions", str(only_predictions), "--references", str(refs),
                 "--output", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["nlg"] == saved["nlg"]


def test_ce_variants_by_name_state_how_they_were_computed():
    from cknet.metrics import CE_VARIANTS, TOP5

    rng = np.random.default_rng(3)
    ref = rng.choice([1.0, 0.0, -1.0, np.nan], size=(40, 14))
    pred = rng.choice([1.0, 0.0, -1.0, np.nan], size=(40, 14))
    top5 = [OBSERVATIONS.index(o) for o in TOP5]
    for uncertain in (0, 1):
        binary = [((x == 1) | ((x == -1) & (uncertain == 1))) for x in (ref, pred)]
        f1_5 = ce_scores(ref, pred, uncertain=uncertain, variant="micro-5")
        assert f1_5["f1"] == pytest.approx(brute_force_ce(binary[0][:, top5], binary[1][:, top5])[2])
        assert f1_5.settings["variant"] == "micro-5" and f1_5.settings["observations"] == "5"
        assert f1_5.settings["observation set"] == ", ".join(TOP5)
        assert ("positive" if uncertain else "negative") in f1_5.settings["uncertain"]
        for name, (average, subset) in CE_VARIANTS.items():
            assert subset is not None or ce_scores(ref, pred, average, uncertain, variant=name)["f1"] == \
                ce_scores(ref, pred, average, uncertain)["f1"]
    with pytest.raises(ValueError, match="variant must be one of"):
        ce_scores(ref, pred, variant="micro-13")


def test_metric_reports_are_read_only_mappings():
    report = ce_scores(np.ones((2, 14)), np.ones((2, 14)))
    names = ["accuracy", "precision", "recall", "f1", "auc", "exact_match"]
    assert list(report) == list(report.keys()) == names
    assert dict(report)["f1"] == 1.0 and len(report) == 6 and "f1" in report and "bleu" not in report
    assert dict(report.items()) == report.scores and report.settings["average"] == "micro"
    with pytest.raises(TypeError):
        report["f1"] = 0.5
