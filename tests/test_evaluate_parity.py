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
