"""Bootstrap intervals and paired comparisons (`cknet.metrics.resampling`).

References: pycocoevalcap's scorers and `ce_scores` run on the resampled corpus itself
(studies repeated as drawn), a brute-force enumeration of every swap for approximate
randomisation, and the coverage of a known mean on synthetic data.
"""

import itertools
import json

import numpy as np
import pytest
from conftest import IU_ANNOTATION
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.rouge.rouge import Rouge

from cknet.labeler import OBSERVATIONS, CheXpertLabeler, binarize
from cknet.metrics import ce_scores
from cknet.metrics.nlg import prepare_texts
from cknet.metrics.resampling import bootstrap_intervals, paired_comparison
from cknet.metrics.study_statistics import StudyStatistics, study_statistics


@pytest.fixture(scope="module")
def reports():
    """40 real test reports, alternately with and without a finding, and as
    "predictions" the same reports with every third replaced by its neighbour's (so that
    the scores are neither 0 nor 1)."""
    test = [s["report"] for s in json.loads(IU_ANNOTATION.read_text())["test"]]
    normal = binarize(CheXpertLabeler()(test))[:, OBSERVATIONS.index("No Finding")] == 1
    abnormal_reports = [r for r, n in zip(test, normal) if not n][:20]
    normal_reports = [r for r, n in zip(test, normal) if n][:20]
    references = [r for pair in zip(abnormal_reports, normal_reports) for r in pair]
    predictions = [references[(i + 1) % 40] if i % 3 == 0 else r for i, r in enumerate(references)]
    return prepare_texts(references, predictions)[:2]


@pytest.fixture(scope="module")
def labels(reports):
    labeler = CheXpertLabeler()
    return tuple(binarize(labeler(texts)) for texts in reports)


def test_bleu_and_ce_on_a_resample_equal_the_scorers_on_that_corpus(reports, labels):
    references, predictions = reports
    statistics = study_statistics(references, predictions, *labels)
    drawn = np.random.default_rng(3).integers(0, len(references), size=len(references))
    weights = np.bincount(drawn, minlength=len(references))[None].astype(float)
    resampled = statistics.scores(weights)
    gts = {i: [references[j]] for i, j in enumerate(drawn)}
    res = {i: [predictions[j]] for i, j in enumerate(drawn)}
    bleu = Bleu(4).compute_score(gts, res, verbose=0)[0]
    for order in range(4):
        assert resampled[f"BLEU_{order + 1}"][0] == pytest.approx(bleu[order], rel=1e-9)
    ref, pred = labels[0][drawn], labels[1][drawn]
    assert resampled["ce_f1"][0] == pytest.approx(ce_scores(ref, pred)["f1"], abs=1e-12)
    for variant in ("micro-5", "macro-14", "example-14"):
        expected = ce_scores(ref, pred, variant=variant)["f1"]
        assert resampled[f"ce_{variant}_f1"][0] == pytest.approx(expected, abs=1e-12)
    findings = [j for j, name in enumerate(OBSERVATIONS) if name != "No Finding"]
    expected = ce_scores(ref[:, findings], pred[:, findings],
                         observations=[OBSERVATIONS[j] for j in findings])["f1"]
    assert resampled["ce_findings_f1"][0] == pytest.approx(expected, abs=1e-12)
    rouge = Rouge().compute_score(gts, res)[0]
    assert resampled["ROUGE_L"][0] == pytest.approx(rouge, rel=1e-9)


def test_values_on_all_studies_equal_the_corpus_scores(reports):
    from pycocoevalcap.cider.cider import Cider

    references, predictions = reports
    value = study_statistics(references, predictions).value()
    gts = {i: [r] for i, r in enumerate(references)}
    res = {i: [p] for i, p in enumerate(predictions)}
    assert value["BLEU_4"] == pytest.approx(Bleu(4).compute_score(gts, res, verbose=0)[0][3], rel=1e-9)
    assert value["CIDEr"] == pytest.approx(Cider().compute_score(gts, res)[0], rel=1e-9)
    assert "ce_f1" not in value and "METEOR" not in value


def test_intervals_hold_the_value_and_are_reproducible(reports, labels):
    statistics = study_statistics(*reports, *labels)
    first = bootstrap_intervals(statistics, resamples=300, seed=1)
    again = bootstrap_intervals(statistics, resamples=300, seed=1)
    assert first == again
    for name, interval in first.items():
        assert interval.low <= interval.value <= interval.high, name
        assert interval.high > interval.low, name


def _mean_statistics(values: np.ndarray) -> StudyStatistics:
    stats = np.stack([values, np.ones(len(values))], 1)
    return StudyStatistics({"mean": stats}, {"mean": lambda sums: sums[:, 0] / sums[:, 1]})


def test_bootstrap_interval_covers_a_known_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    covered = 0
    experiments = 300
    for seed in range(experiments):
        values = rng.binomial(1, 0.3, size=200).astype(float)
        interval = bootstrap_intervals(_mean_statistics(values), resamples=400, seed=seed)["mean"]
        covered += interval.low <= 0.3 <= interval.high
    # 95% nominal; the percentile bootstrap of a proportion at n = 200 runs close to it.
    # With 300 experiments the share's standard error is 0.013.
    assert 0.90 <= covered / experiments <= 0.99


def test_identical_systems_have_p_one_and_a_real_difference_p_near_zero(reports, labels):
    references, predictions = reports
    a = study_statistics(references, predictions, *labels)
    same = paired_comparison(a, study_statistics(references, predictions, *labels), 500, 500)
    for name, comparison in same.items():
        assert comparison.difference == 0 and comparison.low == comparison.high == 0, name
        assert comparison.p_bootstrap == 1 and comparison.p_randomisation == 1, name
    perfect = study_statistics(references, references, labels[0], labels[0])
    better = paired_comparison(a, perfect, 500, 500)
    for name in ("BLEU_4", "ROUGE_L", "CIDEr"):
        assert better[name].difference > 0 and better[name].low > 0, name
        assert better[name].p_bootstrap < 0.01 and better[name].p_randomisation < 0.01, name


def test_several_runs_per_system_are_averaged_and_resampled_together():
    rng = np.random.default_rng(5)
    a1, a2, b1, b2 = (rng.random(30) for _ in range(4))
    one = paired_comparison(_mean_statistics(a1), _mean_statistics(b1), 300, 300, seed=2)["mean"]
    twice = paired_comparison([_mean_statistics(a1)] * 2, [_mean_statistics(b1)] * 2, 300, 300,
                              seed=2)["mean"]
    assert (twice.difference, twice.low, twice.high, twice.p_randomisation) == pytest.approx(
        (one.difference, one.low, one.high, one.p_randomisation))
    both = paired_comparison([_mean_statistics(a1), _mean_statistics(a2)],
                             [_mean_statistics(b1), _mean_statistics(b2)], 300, 300)["mean"]
    assert both.a == pytest.approx((a1.mean() + a2.mean()) / 2)
    assert both.difference == pytest.approx(((b1 - a1).mean() + (b2 - a2).mean()) / 2)
    with pytest.raises(ValueError, match="2 run"):
        paired_comparison([_mean_statistics(a1)] * 2, [_mean_statistics(b1)])


def test_randomisation_agrees_with_the_exact_permutation_distribution():
    a = np.array([0.2, 0.5, 0.9, 0.4, 0.7, 0.1, 0.3, 0.8])
    b = np.array([0.3, 0.6, 0.8, 0.6, 0.9, 0.2, 0.2, 0.9])
    observed = b.mean() - a.mean()
    exact = np.mean([abs(np.where(s, a, b).mean() - np.where(s, b, a).mean()) >= abs(observed) - 1e-12
                     for s in itertools.product([0, 1], repeat=len(a))])
    comparison = paired_comparison(_mean_statistics(a), _mean_statistics(b), resamples=10, trials=20000)
    assert comparison["mean"].difference == pytest.approx(observed)
    assert comparison["mean"].p_randomisation == pytest.approx(exact, abs=0.02)


def test_bad_arguments_are_named():
    stats = _mean_statistics(np.ones(3))
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_intervals(stats, resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_intervals(stats, confidence=95)
    with pytest.raises(ValueError, match="3 studies and system B 4"):
        paired_comparison(stats, _mean_statistics(np.ones(4)))
    with pytest.raises(ValueError, match="both reference_labels and predicted_labels"):
        study_statistics(["a b"], ["a b"], reference_labels=np.zeros((1, 14)))


def _write(path, reports, ids, predictions):
    path.write_text(json.dumps([{"id": i, "prediction": p, "reference": r}
                                for i, p, r in zip(ids, predictions, reports)]))
    return path


def test_compare_command_scores_as_evaluate_and_names_mismatched_files(tmp_path, capsys):
    from cknet.cli import main

    test = json.loads(IU_ANNOTATION.read_text())["test"][:60]
    ids, refs = [s["id"] for s in test], [s["report"] for s in test]
    worse = [refs[(i + 1) % 60] if i % 2 else r for i, r in enumerate(refs)]
    better = [refs[(i + 1) % 60] if i % 6 == 1 else r for i, r in enumerate(refs)]
    a = _write(tmp_path / "a.json", refs, ids, worse)
    b = _write(tmp_path / "b.json", refs[::-1], ids[::-1], better[::-1])  # another order
    out = tmp_path / "compare.json"
    assert main(["compare", str(a), str(b), "--output", str(out),
                 "--resamples", "200", "--trials", "200"]) == 0
    assert "| BLEU_4 |" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["settings"]["studies"] == 60
    from pycocoevalcap.cider.cider import Cider

    labeler = CheXpertLabeler()
    for name, predictions in (("a", worse), ("b", better)):  # pycocoevalcap and ce_scores directly
        cleaned_refs, cleaned, _ = prepare_texts(refs, predictions)
        gts, res = dict(enumerate([r] for r in cleaned_refs)), dict(enumerate([p] for p in cleaned))
        bleu = Bleu(4).compute_score(gts, res, verbose=0)[0]
        expected = {"BLEU_1": bleu[0], "BLEU_4": bleu[3], "ROUGE_L": Rouge().compute_score(gts, res)[0],
                    "CIDEr": Cider().compute_score(gts, res)[0],
                    "ce_f1": ce_scores(labeler(refs), labeler(predictions))["f1"],
                    "ce_macro-14_f1": ce_scores(labeler(refs), labeler(predictions),
                                                variant="macro-14")["f1"]}
        for metric, value in expected.items():
            assert saved["metrics"][metric][name] == pytest.approx(value, abs=1e-9), metric
    assert saved["metrics"]["BLEU_4"]["difference"] > 0 and saved["metrics"]["BLEU_4"]["low"] > 0
    assert main(["compare", str(a), str(b), "--output", str(out)]) == 1  # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err
    short = _write(tmp_path / "short.json", refs[:50], ids[:50], better[:50])
    assert main(["compare", str(a), str(short)]) == 1
    assert "10 id(s) only in the first" in capsys.readouterr().err
    other = _write(tmp_path / "other.json", [r + " More." for r in refs], ids, better)
    assert main(["compare", str(a), str(other)]) == 1
    assert "different references for 60 studies" in capsys.readouterr().err

