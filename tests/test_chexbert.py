"""CheXbert from a checkpoint written in the published layout, offline, with a tiny BERT;
labels from another labeler's CSV; the labeler choice of `cknet evaluate`."""

import csv
import json

import numpy as np
import pytest
import torch
from torch import nn

from cknet.cli import main
from cknet.labeler import OBSERVATIONS, CheXbertLabeler, CsvLabeler, make_labeler
from cknet.labeler.chexbert import HEADS

# CheXbert's class indices, and what CheXpert calls them
FOUR_WAY = {0: np.nan, 1: 1.0, 2: 0.0, 3: -1.0}


@pytest.fixture(scope="module")
def published(tiny_bert_dir, tmp_path_factory):
    """A checkpoint laid out like chexbert.pth: DataParallel's ``module.`` prefix, BERT with
    its pooler, 13 four-way heads and a two-way head, plus optimizer state and epoch."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    bert = BertModel(BertConfig.from_pretrained(tiny_bert_dir))
    heads = nn.ModuleList([nn.Linear(bert.config.hidden_size, 4) for _ in range(13)]
                          + [nn.Linear(bert.config.hidden_size, 2)])
    state = {f"module.bert.{k}": v for k, v in bert.state_dict().items()}
    state.update({f"module.linear_heads.{k}": v for k, v in heads.state_dict().items()})
    path = tmp_path_factory.mktemp("chexbert") / "chexbert.pth"
    torch.save({"epoch": 3, "model_state_dict": state, "optimizer_state_dict": {"state": {}}}, path)
    return path, bert.eval(), heads


def test_labels_equal_an_independent_forward_pass(published, tiny_bert_dir):
    path, bert, heads = published
    labeler = CheXbertLabeler(path, tiny_bert_dir, device="cpu", batch_size=2)
    reports = ["No acute cardiopulmonary abnormality.", "Large left pleural effusion.\n\nCardiomegaly.",
               "", "The heart is enlarged. " * 3]
    labels = labeler.label(reports)
    assert labels.shape == (4, 14) and list(labeler.observations) == list(OBSERVATIONS)
    for report, row in zip(reports, labels):
        ids = torch.tensor([labeler.encode(report)])
        with torch.no_grad():
            cls = bert(input_ids=ids).last_hidden_state[:, 0]
            classes = [int(h(cls).argmax()) for h in heads]
        expected = {name: FOUR_WAY[c] for name, c in zip(HEADS[:13], classes[:13])}
        expected["No Finding"] = {0: np.nan, 1: 1.0}[classes[13]]
        np.testing.assert_array_equal(row, [expected[o] for o in OBSERVATIONS])


def test_the_class_mapping_and_column_order(published, tiny_bert_dir, tmp_path):
    path, bert, heads = published
    chosen = [1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 1]  # a class per head, CheXbert's order
    with torch.no_grad():
        for head, c in zip(heads, chosen):
            head.weight.zero_()
            head.bias.fill_(-1.0)
            head.bias[c] = 1.0
    saved = torch.load(path, weights_only=True)
    saved["model_state_dict"].update({f"module.linear_heads.{k}": v for k, v in heads.state_dict().items()})
    torch.save(saved, tmp_path / "forced.pth")
    row = CheXbertLabeler(tmp_path / "forced.pth", tiny_bert_dir, device="cpu").label(["any report"])[0]
    by_name = dict(zip(OBSERVATIONS, row))
    assert by_name["Enlarged Cardiomediastinum"] == 1 and by_name["Cardiomegaly"] == 0  # positive, negative
    assert by_name["Lung Opacity"] == -1 and np.isnan(by_name["Lung Lesion"])  # uncertain, blank
    assert by_name["Support Devices"] == 1 and by_name["No Finding"] == 1


def test_long_and_empty_reports_are_prepared_as_chexbert_does(published, tiny_bert_dir):
    labeler = CheXbertLabeler(published[0], tiny_bert_dir, device="cpu")
    tokenizer = labeler.tokenizer
    long = labeler.encode("effusion " * 700)
    assert len(long) == 512 and long[0] == tokenizer.cls_token_id and long[-1] == tokenizer.sep_token_id
    assert long[1:511] == tokenizer.convert_tokens_to_ids(tokenizer.tokenize("effusion " * 700))[:510]
    assert labeler.encode("") == [tokenizer.cls_token_id, tokenizer.sep_token_id]
    assert labeler.encode("  no\n effusion  ") == labeler.encode("no effusion")
    assert labeler.label(["effusion " * 700]).shape == (1, 14)


def test_a_wrong_file_is_named_with_what_is_wrong(published, tiny_bert_dir, tmp_path):
    path = published[0]
    saved = torch.load(path, weights_only=True)
    state = saved["model_state_dict"]
    broken = {k: v for k, v in state.items() if k != "module.linear_heads.13.bias"}
    broken["module.classifier.weight"] = torch.zeros(2)
    torch.save({"model_state_dict": broken}, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"missing \['linear_heads.13.bias'\], unexpected \['classifier.wei"):
        CheXbertLabeler(tmp_path / "broken.pth", tiny_bert_dir)
    torch.save(state, tmp_path / "bare.pth")  # a state dict without the wrapper
    with pytest.raises(ValueError, match="holds no 'model_state_dict'"):
        CheXbertLabeler(tmp_path / "bare.pth", tiny_bert_dir)
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        CheXbertLabeler(tmp_path / "text.pth", tiny_bert_dir)
    with pytest.raises(FileNotFoundError, match="CheXbert checkpoint not found"):
        CheXbertLabeler(tmp_path / "none.pth", tiny_bert_dir)
    # both missing: the checkpoint is named, not a failed download of the BERT folder
    with pytest.raises(FileNotFoundError, match="CheXbert checkpoint not found: .*none.pth"):
        CheXbertLabeler(tmp_path / "none.pth", tmp_path / "no-bert-here")


def write_label_csv(path, rows, column="Report Impression"):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([column, *OBSERVATIONS])
        for report, labels in rows:
            writer.writerow([report, *["" if np.isnan(v) else v for v in labels]])


def test_labels_from_another_labelers_csv(tmp_path):
    positive = np.full(14, np.nan)
    positive[OBSERVATIONS.index("Cardiomegaly")] = 1.0
    normal = np.full(14, np.nan)
    normal[0] = 1.0
    write_label_csv(tmp_path / "labels.csv", [("The heart is enlarged.", positive),
                                              ("Normal chest.", normal)])
    labeler = make_labeler(str(tmp_path / "labels.csv"))
    assert isinstance(labeler, CsvLabeler)
    labels = labeler.label(["Normal  chest.", "The heart is enlarged."])  # whitespace folded
    np.testing.assert_array_equal(labels, np.stack([normal, positive]))
    with pytest.raises(ValueError, match="holds no labels for the report 'Small effusion.'"):
        labeler.label(["Small effusion."])
    write_label_csv(tmp_path / "bad.csv", [("x", np.full(14, 2.0))], column="Reports")
    with pytest.raises(ValueError, match="line 2, column 'No Finding': expected 1, 0, -1 or blank"):
        CsvLabeler(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="a labeler is 'rules'"):
        make_labeler("chexpert")


def test_evaluate_scores_with_the_chosen_labeler_and_every_variant(tmp_path, capsys, published,
                                                                   tiny_bert_dir):
    records = [{"id": "1", "prediction": "The heart is enlarged.", "reference": "The heart is enlarged."},
               {"id": "2", "prediction": "Normal chest.", "reference": "Small left effusion."}]
    (tmp_path / "p.json").write_text(json.dumps(records))
    labels = {"The heart is enlarged.": "Cardiomegaly", "Normal chest.": "No Finding",
              "Small left effusion.": "Pleural Effusion"}
    rows = []
    for text, name in labels.items():
        row = np.full(14, np.nan)
        row[OBSERVATIONS.index(name)] = 1.0
        rows.append((text, row))
    write_label_csv(tmp_path / "labels.csv", rows)
    out = tmp_path / "s.json"
    assert main(["evaluate", "--predictions", str(tmp_path / "p.json"), "--labeler",
                 str(tmp_path / "labels.csv"), "--output", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert set(scores["ce_variants"]) == {"micro-14", "macro-14", "micro-5", "example-14"}
    # micro-14: tp 1 (cardiomegaly), fp 1 (no finding), fn 1 (effusion)
    assert scores["ce"]["scores"]["f1"] == pytest.approx(0.5)
    assert scores["ce_variants"]["micro-5"]["scores"]["f1"] == pytest.approx(2 / 3)  # no "No Finding" in it
    assert "labeler " in capsys.readouterr().out
    assert main(["evaluate", "--predictions", str(tmp_path / "p.json"), "--labeler",
                 f"chexbert:{published[0]},{tiny_bert_dir}"]) == 0


@pytest.mark.slow
def test_training_validates_and_tests_with_the_chosen_labeler(published, tiny_bert_dir, tmp_path):
    from test_annotation import write_dataset
    from test_training import tiny

    from cknet.metrics import ce_scores
    from cknet.training import train

    path, _, _ = published
    write_dataset(tmp_path / "data", count=24)
    model, training = tiny(epochs=1, labeler=f"chexbert:{path},{tiny_bert_dir}")
    train(model, training, tmp_path / "data" / "annotation.json", tmp_path / "run", device="cpu",
          progress=False)
    test = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    records = json.loads((tmp_path / "run" / "test_predictions.json").read_text())
    references = [r["reference"] for r in records]
    predictions = [r["prediction"] for r in records]
    chexbert = CheXbertLabeler(path, tiny_bert_dir, device="cpu")
    expected = ce_scores(chexbert(references), chexbert(predictions))
    assert test["ce"]["scores"] == pytest.approx(dict(expected))
    assert test["ce"]["scores"] != pytest.approx(dict(ce_scores(references, predictions)))  # not the rules
    with pytest.raises(ValueError, match="labeler"):
        tiny(labeler="mesh")


def test_semb_score_is_the_cosine_of_chexberts_cls_states(published, tiny_bert_dir):
    from cknet.metrics.semb import semb_scores

    path, bert, _ = published
    labeler = CheXbertLabeler(path, tiny_bert_dir, device="cpu", batch_size=3)
    references = ["No acute cardiopulmonary abnormality.", "Large left pleural effusion.", "Cardiomegaly."]
    predictions = ["Normal chest.", "Large left pleural effusion.", "No cardiomegaly. Small effusion."]
    scores = semb_scores(labeler, references, predictions)
    for reference, prediction, score in zip(references, predictions, scores):
        with torch.no_grad():
            a = bert(input_ids=torch.tensor([labeler.encode(reference)])).last_hidden_state[0, 0].double()
            b = bert(input_ids=torch.tensor([labeler.encode(prediction)])).last_hidden_state[0, 0].double()
        assert score == pytest.approx(float(a @ b / (a.norm() * b.norm())), abs=1e-6)
    assert scores[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="CheXbert's embeddings"):
        semb_scores(make_labeler("rules"), references, predictions)


def test_evaluate_command_with_model_based_metrics(published, tiny_bert_dir, tmp_path, capsys):
    from cknet.metrics.bertscore import BERTScorer
    from cknet.metrics.model_based import ModelMetrics
    from cknet.metrics.radcliq import bleu2_per_study, radcliq_v1
    from cknet.metrics.radgraph import RadGraph
    from cknet.metrics.ratescore import RaTEScorer, period_sentences
    from cknet.metrics.semb import semb_scores
    from cknet.testing import make_tiny_radgraph, make_tiny_ratescore, make_tiny_roberta

    references = ["The heart is normal.", "Large left pleural effusion.", "No pneumothorax.", "Cardiomegaly."]
    predictions = ["Heart size normal.", "Left effusion.", "No pneumothorax.", "The heart is large."]
    rows = [{"id": f"s{i}", "prediction": p, "reference": r}
            for i, (r, p) in enumerate(zip(references, predictions))]
    (tmp_path / "p.json").write_text(json.dumps(rows))
    roberta = make_tiny_roberta(references * 20, tmp_path / "distilroberta-base")
    radgraph = make_tiny_radgraph(references * 20, tmp_path / "rrg")
    rate = make_tiny_ratescore(references * 20, tmp_path / "rate")
    out = tmp_path / "s.json"
    assert main(["evaluate", "--predictions", str(tmp_path / "p.json"), "--metrics", "rexrank",
                 "--bertscore-model", str(roberta), "--chexbert", f"{published[0]},{tiny_bert_dir}",
                 "--radgraph", str(radgraph), "--ratescore", f"{rate[0]},{rate[1]}", "--ratescore-sentences",
                 "periods", "--output", str(out), "--resamples", "200"]) == 0
    scores = json.loads(out.read_text())
    assert scores["metrics"] == ["nlg", "ce", "bertscore", "semb", "radgraph", "radcliq", "ratescore"]
    model = scores["model_based"]
    expected_f1 = BERTScorer(roberta).score(references, predictions).f1  # distilroberta-base defaults
    np.testing.assert_allclose(model["per_study"]["BERTScore_F1"], expected_f1)
    chexbert = CheXbertLabeler(published[0], tiny_bert_dir, device="cpu")
    expected_semb = semb_scores(chexbert, references, predictions)
    np.testing.assert_allclose(model["per_study"]["SembScore"], expected_semb)
    assert model["per_study"]["id"] == ["s0", "s1", "s2", "s3"]
    assert model["scores"]["SembScore"] == pytest.approx(np.mean(model["per_study"]["SembScore"]))
    interval = scores["intervals"]["scores"]["BERTScore_F1"]
    assert interval["low"] <= interval["value"] <= interval["high"]
    assert min(expected_f1) <= interval["low"] and interval["high"] <= max(expected_f1)
    graph = RadGraph(radgraph).score(references, predictions)
    np.testing.assert_allclose(model["per_study"]["RadGraph_complete"], graph.complete)
    bleu2 = bleu2_per_study(references, predictions)
    radcliq = radcliq_v1(graph.combined, expected_f1, expected_semb, bleu2)  # no idf, as ReXrank
    np.testing.assert_allclose(model["per_study"]["RadCliQ-v1"], radcliq)
    assert model["scores"]["RadCliQ-v1"] == pytest.approx(radcliq.mean())
    assert model["scores"].get("1/RadCliQ-v1") == (pytest.approx(1 / radcliq.mean()) if radcliq.mean() > 0
                                                    else None)
    assert scores["intervals"]["scores"]["RadCliQ-v1"]["value"] == pytest.approx(radcliq.mean())
    bertscore_idf = BERTScorer(roberta, idf=True).score(references, predictions).f1
    radeval = ModelMetrics(["radcliq"], roberta, chexbert, radgraph, radcliq_idf=True).score(references,
                                                                                             predictions)
    np.testing.assert_allclose(radeval.per_study["RadCliQ-v1"],
                               radcliq_v1(graph.combined, bertscore_idf, expected_semb, bleu2))
    expected_rate = RaTEScorer(*rate, split_sentences=period_sentences).score(references, predictions)
    np.testing.assert_allclose(model["per_study"]["RaTEScore"], expected_rate)
    assert "GREEN (ReXrank's 7B judge) runs only when asked" in capsys.readouterr().out
    other = [dict(row, prediction=r) for row, r in zip(rows, ["Normal heart.", "Large left pleural effusion.",
                                                               "No pneumothorax.", "Cardiomegaly."])]
    (tmp_path / "b.json").write_text(json.dumps(other))
    assert main(["compare", str(tmp_path / "p.json"), str(tmp_path / "b.json"), "--metrics", "bertscore,semb",
                 "--bertscore-model", str(roberta), "--chexbert", f"{published[0]},{tiny_bert_dir}",
                 "--output", str(tmp_path / "c.json"), "--resamples", "100", "--trials", "100"]) == 0
    compared = json.loads((tmp_path / "c.json").read_text())["metrics"]
    expected_b = BERTScorer(roberta).score(references, [r["prediction"] for r in other]).f1
    assert compared["BERTScore_F1"]["difference"] == pytest.approx(expected_b.mean() - expected_f1.mean())
    assert compared["SembScore"]["a"] == pytest.approx(expected_semb.mean())
    assert main(["evaluate", "--predictions", str(tmp_path / "p.json"), "--metrics", "semb"]) == 1
    assert "semb need(s) CheXbert" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(tmp_path / "p.json"), "--metrics", "radgraph"]) == 1
    assert "--radgraph radgraph.tar.gz" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(tmp_path / "p.json"), "--metrics", "bleu"]) == 1
    assert "unknown metric 'bleu'" in capsys.readouterr().err
