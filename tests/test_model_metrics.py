"""Model-based report metrics from local weights, against independent computations on
tiny checkpoints written in the published layouts (no download)."""

import math

import numpy as np
import pytest
import torch
from conftest import IU_ANNOTATION

from cknet.metrics.bertscore import BASELINES, BERTScorer, model_name
from cknet.testing import make_tiny_roberta

REFERENCES = ["The heart is normal in size. The lungs are clear.", "Large left pleural effusion.",
              "No pneumothorax.", "", "Mild cardiomegaly with small bilateral effusions."]
PREDICTIONS = ["Heart size is normal. Lungs are clear.", "Small left effusion.", "", "Clear lungs.",
               "Cardiomegaly. Bilateral pleural effusions, small."]


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    """A random 6-layer RoBERTa with a byte-level BPE vocabulary: distilroberta-base's layout."""
    import json

    texts = [e["report"] for e in json.loads(IU_ANNOTATION.read_text())["train"][:300]]
    return make_tiny_roberta(texts, tmp_path_factory.mktemp("distilroberta-base"))


def brute_force(folder, references, predictions, layer, idf):
    """BERTScore by its definition, in float64, one token pair at a time, from the full
    model's hidden states (not the truncated model the scorer runs)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, add_prefix_space=True)
    model = AutoModel.from_pretrained(folder).eval()

    def ids(text):
        text = text.strip()
        return tokenizer.encode(text) if text else [tokenizer.cls_token_id, tokenizer.sep_token_id]

    documents = [set(ids(r)) for r in references]

    def weight(token):
        if token in (tokenizer.cls_token_id, tokenizer.sep_token_id):
            return 0.0
        if not idf:
            return 1.0
        return math.log((len(documents) + 1) / (sum(token in d for d in documents) + 1))

    def vectors(text):
        with torch.no_grad():
            hidden = model(torch.tensor([ids(text)]), output_hidden_states=True).hidden_states[layer][0]
        return [v.double() / v.double().norm() for v in hidden]

    out = []
    for reference, prediction in zip(references, predictions):
        if not reference.strip() or not prediction.strip():
            out.append((0.0, 0.0, 0.0))
            continue
        x, y = vectors(reference), vectors(prediction)
        wx, wy = [weight(t) for t in ids(reference)], [weight(t) for t in ids(prediction)]
        p = sum(w * max(float(a @ b) for a in x) for b, w in zip(y, wy)) / sum(wy)
        r = sum(w * max(float(a @ b) for b in y) for a, w in zip(x, wx)) / sum(wx)
        out.append((p, r, 2 * p * r / (p + r)))
    return np.array(out)


@pytest.mark.parametrize("idf", [False, True])
def test_bertscore_equals_its_definition(roberta, idf):
    scorer = BERTScorer(roberta, num_layers=5, idf=idf, rescale_with_baseline=False, batch_size=2)
    scores = scorer.score(REFERENCES, PREDICTIONS)
    expected = brute_force(roberta, REFERENCES, PREDICTIONS, 5, idf)
    np.testing.assert_allclose(np.stack([scores.precision, scores.recall, scores.f1], 1), expected, atol=1e-6)
    assert scores.f1[2] == scores.f1[3] == 0.0  # an empty text scores 0


def test_bertscore_rescaling_and_defaults(roberta, tmp_path):
    raw = BERTScorer(roberta, num_layers=5, rescale_with_baseline=False).score(REFERENCES, PREDICTIONS)
    baseline = BASELINES[("distilroberta-base", 5)]
    rescaled = BERTScorer(roberta, num_layers=5, baseline=baseline).score(REFERENCES, PREDICTIONS)
    np.testing.assert_allclose(rescaled.f1, (raw.f1 - baseline[2]) / (1 - baseline[2]))
    np.testing.assert_allclose(rescaled.precision, (raw.precision - baseline[0]) / (1 - baseline[0]))
    snapshot = tmp_path / "hub" / "models--distilroberta-base" / "snapshots" / "abc123"
    assert model_name(snapshot) == "distilroberta-base"
    with pytest.raises(ValueError, match="no default layer"):
        BERTScorer(roberta)  # a folder named otherwise than a known model: the layer must be given
    with pytest.raises(ValueError, match="no baseline"):
        BERTScorer(roberta, num_layers=4)
    with pytest.raises(OSError, match="distilroberta"):
        BERTScorer(tmp_path / "distilroberta-base-missing", num_layers=5, rescale_with_baseline=False)


# ReXrank's published IU X-Ray rows (rajpurkarlab/ReXrank: results/result_iu_xray.csv, which
# shows RadCliQ-v1, and results/findings_result_iu_xray.csv, which shows 1/RadCliQ-v1):
# BLEU (BLEU-2), BertScore, SembScore, RadGraph, and the published RadCliQ column.
REXRANK_MEAN = [(0.102, 0.38, 0.494, 0.157, 1.137), (0.227, 0.449, 0.594, 0.187, 0.884),
                (0.195, 0.518, 0.601, 0.244, 0.692), (0.035, 0.175, 0.061, 0.023, 2.072),
                (0.079, 0.235, 0.403, 0.16, 1.462), (0.242, 0.404, 0.609, 0.283, 0.825)]
REXRANK_INVERSE = [(0.116, 0.353, 0.488, 0.139, 0.827), (0.198, 0.453, 0.593, 0.211, 1.179),
                   (0.206, 0.527, 0.606, 0.235, 1.46), (0.033, 0.186, 0.057, 0.023, 0.486),
                   (0.376, 0.636, 0.701, 0.398, 4.804), (0.277, 0.525, 0.641, 0.341, 1.922)]


def test_radcliq_rebuilds_rexranks_published_rows_from_their_components():
    """ReXrank's RadCliQ-v1 column follows from its own BertScore (no idf), SembScore,
    RadGraph and BLEU columns by cknet's formula, within the tables' rounding (each
    component is printed to 3 decimals: 0.0005 each moves RadCliQ-v1 by at most
    0.0005 * sum |c_k / sigma_k| = 0.0019)."""
    from cknet.metrics.radcliq import radcliq_v1

    for rows, inverse in ((REXRANK_MEAN, False), (REXRANK_INVERSE, True)):
        bleu, bert, semb, graph, published = map(np.array, zip(*rows))
        ours = radcliq_v1(graph, bert, semb, bleu)
        np.testing.assert_allclose(ours, 1 / published if inverse else published, atol=0.0025)


def test_a_text_whose_idf_weights_sum_to_zero_scores_zero_as_bert_score(roberta):
    """"." in every reference has idf log((M + 1) / (M + 1)) = 0: a prediction of "." alone
    has no weight; bert-score fills its precision (and F1) with 0, never 0/0."""
    references = ["no effusion .", "heart is normal .", "lungs are clear ."]
    scorer = BERTScorer(roberta, num_layers=5, idf=True, rescale_with_baseline=False)
    scores = scorer.score(references, [".", ".", "clear ."])
    assert np.isfinite(scores.f1).all()
    assert scores.precision[0] == 0 and scores.f1[0] == 0 and scores.f1[2] > 0


def test_a_non_finite_metric_is_an_error_naming_the_studies():
    from cknet.metrics.bertscore import BERTScores
    from cknet.metrics.model_based import ModelMetrics

    class Broken:
        def score(self, references, predictions, idf=None):
            f1 = np.array([0.5, np.nan, 0.25])
            return BERTScores(f1, f1, f1)

    metrics = ModelMetrics(["bertscore"])
    metrics._loaded["bertscore"] = Broken()
    with pytest.raises(ValueError, match=r"BERTScore_F1 is not a finite number for 1 of 3 studies.*'s2'"):
        metrics.score(["a", "b", "c"], ["a", "b", "c"], resamples=10, ids=["s1", "s2", "s3"])


def test_a_metric_model_missing_from_the_cache_fails_at_once_without_the_hub(tmp_path, monkeypatch):
    """`cknet evaluate` is offline: a metric model neither in a folder nor in the cache is
    an error with the download command, and the Hub is never asked (no retries)."""
    import socket

    asked = []
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def connect(self, address):
        asked.append(address)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", connect)
    with pytest.raises(OSError, match="(?s)nor in the Hugging Face cache.*hf download distilroberta-base"):
        BERTScorer("distilroberta-base")
    assert asked == []
