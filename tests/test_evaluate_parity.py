"""`cknet evaluate` / `cknet compare` as a reviewer checks them: no study dropped silently,
intervals independent of row order and honest about their size, one --metrics vocabulary."""

import json
import random
import warnings

import numpy as np
import pytest

from cknet.cli import main
from cknet.metrics.resampling import bootstrap_intervals
from cknet.metrics.study_statistics import mean_statistics

REPORTS = ["the heart is normal . no effusion .", "small left pleural effusion .", "lungs are clear .",
           "mild cardiomegaly . no pneumothorax .", "no acute disease .", "right basilar atelectasis ."]


def _write(path, rows):
    path.write_text(json.dumps(rows))
    return str(path)


def _rows(count, shift=1):
    return [{"id": f"s{i:02d}", "reference": REPORTS[i % 6], "prediction": REPORTS[(i + shift) % 6]}
            for i in range(count)]


def test_predictions_that_miss_reference_studies_are_refused_unless_allowed(tmp_path, capsys):
    rows = _rows(40)
    references = _write(tmp_path / "refs.json", [{"id": r["id"], "reference": r["reference"]} for r in rows])
    predictions = _write(tmp_path / "preds.json",
                         [{"id": r["id"], "prediction": r["prediction"]} for r in rows[1:]])
    assert main(["evaluate", "--predictions", predictions, "--references", references, "--metrics", "nlg",
                 "--resamples", "0"]) == 1
    assert "no prediction for 1 of the 40 studies" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", predictions, "--references", references, "--metrics", "nlg",
                 "--resamples", "0", "--allow-missing"]) == 0
    assert "scoring 39 of the 40 studies" in capsys.readouterr().out


def test_row_order_changes_no_interval(tmp_path):
    rows = _rows(60)
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    results = []
    for name, content in (("a.json", rows), ("b.json", shuffled)):
        out = tmp_path / f"{name}.scores.json"
        assert main(["evaluate", "--predictions", _write(tmp_path / name, content), "--metrics", "nlg,ce",
                     "--resamples", "200", "--output", str(out)]) == 0
        results.append(json.loads(out.read_text())["intervals"])
    assert results[0] == results[1]


def test_no_interval_for_one_study_and_a_warning_under_thirty():
    with pytest.warns(UserWarning, match="no interval"):
        assert bootstrap_intervals(mean_statistics({"x": np.array([0.5])}), 100) == {}
    with pytest.warns(UserWarning, match="rough"):
        assert "x" in bootstrap_intervals(mean_statistics({"x": np.arange(10.0)}), 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bootstrap_intervals(mean_statistics({"x": np.arange(30.0)}), 100)


def test_compare_takes_the_words_of_evaluate(tmp_path, capsys):
    a = _write(tmp_path / "a.json", _rows(30))
    b = _write(tmp_path / "b.json", _rows(30, shift=0))
    for words in ("nlg", "nlg,ce", "ce"):
        assert main(["compare", a, b, "--metrics", words, "--resamples", "50", "--trials", "50"]) == 0, words
    assert "95% interval" in capsys.readouterr().out
    assert main(["compare", a, b, "--metrics", "bleu"]) == 1
    assert "unknown metric 'bleu'" in capsys.readouterr().err


def test_macro_f1_states_and_selects_its_convention_for_absent_observations():
    """Predictions equal to their references: macro F1 over 14 observations is below 1 when
    some never occur (counted 0, the usual reading, stated) and exactly 1 when they are
    left out; the bootstrap's macro follows the same convention."""
    from cknet.evaluation import report_statistics
    from cknet.labeler import OBSERVATIONS
    from cknet.metrics import ce_scores

    labels = np.zeros((4, 14))
    labels[:, OBSERVATIONS.index("Cardiomegaly")] = [1, 0, 1, 0]
    labels[:, OBSERVATIONS.index("No Finding")] = [0, 1, 0, 1]
    zero = ce_scores(labels, labels, variant="macro-14")
    skip = ce_scores(labels, labels, variant="macro-14", absent="skip")
    assert zero["f1"] == pytest.approx(2 / 14) and skip["f1"] == 1.0
    assert zero.settings["absent observations"] == "F1 0, counted in the mean"
    assert skip.settings["absent observations"] == "left out of the mean"
    texts = ["cardiomegaly .", "no acute disease .", "cardiomegaly .", "normal ."]
    for absent, expected in (("zero", 2 / 14), ("skip", 1.0)):
        stats = report_statistics(texts, texts, labels, labels, macro_absent=absent)
        assert stats.value()["ce_macro-14_f1"] == pytest.approx(expected)
