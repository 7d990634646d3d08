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
