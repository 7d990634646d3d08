"""RadGraph F1 and RadCliQ-v1.

cknet reads the published RadGraph models itself (the ``radgraph`` package fails under
transformers 5). The reference is that package: ``tests/fixtures/radgraph/reference.json``
holds what radgraph 0.1.18 (under transformers 4.57) read and scored with the tiny model
that ``make_tiny_radgraph`` writes (``make_reference.py`` there rebuilds it). RadCliQ-v1
and the combined RadGraph term are checked against the published formula and hand-built
annotations.
"""

import importlib.util
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cknet.metrics.radcliq import COEFFICIENTS, INTERCEPT, NORMALISATION, bleu2_per_study, radcliq_v1
from cknet.metrics.radgraph import RadGraph, split_words
from cknet.metrics.radgraph_f1 import radgraph_f1
from cknet.testing import make_tiny_radgraph

REFERENCE = Path(__file__).parent / "fixtures" / "radgraph" / "reference.json"


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def tiny_radgraph(tmp_path_factory, iu_annotation):
    reports = [s["report"] for s in iu_annotation["train"][:300]]
    return make_tiny_radgraph(reports, tmp_path_factory.mktemp("radgraph"), max_length=24)


def _reference_script():
    """The script that wrote the reference, for its compact form of an annotation."""
    spec = importlib.util.spec_from_file_location("make_reference", REFERENCE.parent / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compact = _reference_script().compact


def test_annotations_equal_the_radgraph_package(tiny_radgraph, reference):
    texts = [t for t in reference["references"] + reference["candidates"] if t]
    annotations = RadGraph(tiny_radgraph).annotate(texts)
    # every report is longer than the 22 wordpieces of a segment: folding is exercised
    assert [compact(a) for a in annotations] == reference["annotations"]
    assert sum(len(a["relations"]) for a in reference["annotations"]) > 50


def test_rewards_equal_the_radgraph_package(tiny_radgraph, reference):
    scores = RadGraph(tiny_radgraph).score(reference["references"], reference["candidates"])
    for level in ("simple", "partial", "complete"):
        np.testing.assert_allclose(getattr(scores, level), reference["rewards"][level], rtol=0, atol=1e-12)
    assert 0 < scores.complete.mean() < 1


def test_the_published_archive_reads_as_its_folder(tiny_radgraph, tmp_path):
    archive = tmp_path / "radgraph.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("config.json", "weights.th", "vocabulary"):
            tar.add(tiny_radgraph / name, arcname=f"./{name}")
    texts = ["Heart size normal/stable. No effusion (left).", "The lungs are clear."]
    assert RadGraph(archive).annotate(texts) == RadGraph(tiny_radgraph).annotate(texts)


def test_missing_model_names_the_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="hf download StanfordAIMI/RRG_scorers radgraph.tar.gz"):
        RadGraph(tmp_path / "nowhere.tar.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        RadGraph(tmp_path / "empty")


def test_words_are_split_as_the_package_splits_them():
    assert split_words("Normal/stable (left), clear.", "radgraph") == [
        "Normal",
        "/",
        "stable",
        "(",
        "left",
        ")",
        ",",
        "clear",
        ".",
    ]
    assert split_words("5.5 cm).", "radgraph-xl") == ["5", ".", "5", "cm", ")", "."]
    assert split_words("", "radgraph") == ["None"]
    assert split_words("   ", "radgraph") == []


def graph(*entities):
    """Annotation from (tokens, label, [(relation, target index), ...]) tuples."""
    return {
        "text": "",
        "entities": {
            str(i + 1): {"tokens": t, "label": label, "relations": [[r, str(j + 1)] for r, j in rels]}
            for i, (t, label, rels) in enumerate(entities)
        },
    }


def test_radgraph_f1_by_hand():
    hyp = graph(
        ("Effusion", "OBS-DP", [("located_at", 1)]), ("pleural", "ANAT-DP", []), ("heart", "ANAT-DP", [])
    )
    ref = graph(("effusion", "OBS-DP", [("located_at", 1)]), ("pleural", "ANAT-DP", []))
    simple, partial, complete, combined = radgraph_f1(hyp, ref)
    # simple/partial keep the case (radgraph 0.1.18): only "pleural" matches, P 1/3, R 1/2
    assert simple == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert partial == pytest.approx(simple)
    # complete lower-cases the relation tuples: both tuples match, P 2/3, R 1
    assert complete == pytest.approx(0.8)
    # combined keeps the case: entity F1 = simple, relation F1 = 0 (Effusion != effusion)
    assert combined == pytest.approx(simple / 2)
    assert radgraph_f1(hyp, ref, lowercase=True)[:2] == (pytest.approx(0.8), pytest.approx(0.8))
    assert radgraph_f1(graph(), ref) == (0.0, 0.0, 0.0, 0.0)


def test_radcliq_v1_is_the_published_formula():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(5, 4))
    expected = [
        sum(
            c * (v - m) / s
            for c, v, m, s in zip(COEFFICIENTS, row, NORMALISATION["mean"], NORMALISATION["scale"])
        )
        + INTERCEPT
        for row in x.tolist()
    ]
    np.testing.assert_allclose(radcliq_v1(*x.T), expected, rtol=1e-12)
    # at the normalisation's mean, RadCliQ-v1 is the intercept; better metrics give lower values
    assert radcliq_v1(*np.array(NORMALISATION["mean"])[:, None]) == pytest.approx([INTERCEPT])
    assert radcliq_v1([1.0], [1.0], [1.0], [1.0])[0] < radcliq_v1([0.0], [0.0], [0.0], [0.0])[0]
    with pytest.raises(ValueError, match="one value per study"):
        radcliq_v1([1.0], [1.0], [1.0], [])


def test_bleu2_per_study_by_hand():
    # 4 of 5 unigrams and 2 of 4 bigrams match, the same length: BLEU-2 = sqrt(4/5 * 3/4)
    scores = bleu2_per_study(["the heart is not enlarged"], ["the heart is normal enlarged"])
    assert scores[0] == pytest.approx(math.sqrt(4 / 5 * 2 / 4), rel=1e-6)


def test_a_report_of_spaces_has_no_entities(tiny_radgraph):
    radgraph = RadGraph(tiny_radgraph)
    assert radgraph.annotate(["   "]) == [{"text": "", "entities": {}}]
    assert radgraph.score(["   "], ["Heart size normal."]).complete.tolist() == [0.0]


def test_unreadable_weights_are_named(tiny_radgraph, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_radgraph, broken)
    (broken / "weights.th").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="weights.th cannot be read"):
        RadGraph(broken)
