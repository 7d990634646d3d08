"""RaTEScore.

The reference is the RaTEScore package: ``tests/fixtures/ratescore/reference.json`` holds
what RaTEScore 0.6.0 (with medspaCy 1.3.1) scored with the tiny models that
``make_tiny_ratescore`` writes, and medspaCy's sentences of every report, which the
tests give cknet as its splitter (medspaCy is not installed here). The tagging rules and
the score are also checked by hand.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cknet.metrics.model_based import ModelMetrics
from cknet.metrics.ratescore import AFFINITY, RaTEScorer, directed_score, period_sentences, tagged_entities
from cknet.testing import make_tiny_ratescore

REFERENCE = Path(__file__).parent / "fixtures" / "ratescore" / "reference.json"


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, iu_annotation):
    reports = [s["report"] for s in iu_annotation["train"][:300]]
    return make_tiny_ratescore(reports, tmp_path_factory.mktemp("ratescore"))


def test_scores_equal_the_ratescore_package(tiny_models, reference):
    scorer = RaTEScorer(*tiny_models, split_sentences=reference["sentences"].__getitem__, device="cpu")
    scores = scorer.score(reference["references"], reference["candidates"])
    np.testing.assert_allclose(scores, reference["scores"], rtol=0, atol=1e-6)
    assert len(set(np.round(scores, 3))) > 8  # the reference discriminates: not all 0.5 or 1


def test_a_report_without_sentences_scores_one_half(tiny_models):
    scorer = RaTEScorer(*tiny_models, split_sentences=period_sentences, device="cpu")
    assert scorer.score(["", "The heart is normal. Lungs clear."], [".", ""]).tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        scorer.score(["a", "b"], ["a"])


def test_without_medspacy_the_error_says_what_to_install(tiny_models, monkeypatch):
    monkeypatch.setitem(sys.modules, "medspacy", None)
    with pytest.raises(ImportError, match=r"pip install \"cknet\[ratescore\]\""):
        RaTEScorer(*tiny_models, device="cpu")
    with pytest.raises(ImportError, match=r"pip install \"cknet\[ratescore\]\""):
        ModelMetrics(["bertscore", "ratescore"])  # before any model is loaded or report scored


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        # B I I O: one entity over the three
        (["O", "B-DISEASE", "I-DISEASE", "I-DISEASE", "O", "O"], [(1, 3, "DISEASE")]),
        # B O and B B O: single-token entities; the second B is its own entity too
        (
            ["O", "B-ANATOMY", "O", "B-DISEASE", "B-ANATOMY", "O", "O"],
            [(1, 1, "ANATOMY"), (3, 3, "DISEASE"), (4, 4, "ANATOMY")],
        ),
        # I B: the I- closes the entity opened before it, the B- after it opens another
        (
            ["O", "B-ANATOMY", "I-ANATOMY", "B-DISEASE", "I-DISEASE", "O", "O"],
            [(1, 2, "ANATOMY"), (3, 4, "DISEASE")],
        ),
        # an I- without a B- before it makes nothing
        (["O", "I-DISEASE", "O", "O"], []),
        # still open at the end: it runs to the wordpiece before [SEP]
        (["O", "O", "B-DISEASE", "I-DISEASE", "I-DISEASE", "I-DISEASE"], [(2, 4, "DISEASE")]),
    ],
)
def test_tags_make_entities_by_the_package_rules(tags, spans):
    tokens = ["[CLS]", *(f"w{i}" for i in range(1, len(tags) - 1)), "[SEP]"]
    assert tagged_entities(tokens, tags) == spans


def test_directed_score_by_hand():
    # reference: a disease and an anatomy; candidate: its negation and the same anatomy
    source = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    target = torch.tensor([[0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [0.8, 0.0, 0.6]])
    affinity = AFFINITY["long"]
    score = directed_score(
        source, target, ["DISEASE", "ANATOMY"], ["ANATOMY", "ANATOMY", "NON-DISEASE"], affinity
    )
    # the disease's best match is the non-disease (cosine 0.8), weighted by the negation weight
    w1, w2 = affinity[("DISEASE", "NON-DISEASE")], affinity[("ANATOMY", "ANATOMY")]
    expected = (0.8 * w1 * affinity[("NEG", "WEIGHT")] + 1.0 * w2) / (w1 + w2)
    assert score == pytest.approx(expected, rel=1e-6)
    assert affinity[("NEG", "WEIGHT")] == pytest.approx(0.8716553966489615)
    assert len(AFFINITY["short"]) == 26


def test_period_sentences():
    assert period_sentences("Heart normal. No effusion!\nLungs clear.") == [
        "Heart normal.",
        "No effusion!",
        "Lungs clear.",
    ]
