"""GREEN: the judge's prompt, how its answers are read, and the scorer over a local model.

The reading of answers (`green_counts`) was checked equal to the green_score package's
``parse_error_counts``/``compute_green`` on 300 random answers in its formats, and the
prompt and chat template equal to its ``make_prompt`` and template (once, on the
development machine: the package needs sentence-transformers and scikit-learn); here
they are checked by hand.
"""

import numpy as np
import pytest

from cknet.metrics.green import (
    CHAT_TEMPLATE,
    KINDS,
    GREENScorer,
    green_counts,
    green_from_answer,
    green_prompt,
)
from cknet.testing import make_tiny_causal_lm

ANSWER = """
The candidate misses the effusion and places the opacity on the wrong side.

[Clinically Significant Errors]:
(a) False report of a finding in the candidate: 0.
(b) Missing a finding present in the reference: 1. Small left pleural effusion.
(c) Misidentification of a finding's anatomic location/position: 2. Opacity on the right; Tube in the left.
(d) Misassessment of the severity of a finding: 0.
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Clinically Insignificant Errors]:
(a) False report of a finding in the candidate: 4. A; B; C; D.

[Matched Findings]:
3. Normal heart size; No pneumothorax; Clear upper lobes.
"""


def test_answers_are_read_by_hand():
    assert green_counts(ANSWER) == ([0, 1, 2, 0, 0, 0], 3)
    assert green_from_answer(ANSWER) == pytest.approx(3 / (3 + 3))  # insignificant errors do not count
    numbered = ANSWER.replace("(b) ", "(2) ").replace("(a) ", "(1) ").replace("(c) ", "(3) ")
    numbered = numbered.replace("(d) ", "(4) ").replace("(e) ", "(5) ").replace("(f) ", "(6) ")
    assert green_counts(numbered) == ([0, 1, 2, 0, 0, 0], 3)
    no_match = ANSWER.replace("3. Normal heart size", "0. Normal heart size")
    assert green_from_answer(no_match) == 0.0
    clean = (
        "[Clinically Significant Errors]:\nNo clinically significant errors.\n\n[Matched Findings]:\n2. A; B."
    )
    assert green_counts(clean) == ([0] * 6, 2) and green_from_answer(clean) == 1.0
    assert green_counts("nothing the judge was asked for") == ([0] * 6, 0)


def test_the_prompt_holds_both_reports_cut_to_300_words():
    reference, candidate = " ".join(f"r{i}" for i in range(400)), "Small   left\neffusion."
    prompt = green_prompt(reference, candidate)
    assert "2. Reference Report:\n    " + " ".join(f"r{i}" for i in range(300)) + "\n\n" in prompt
    assert "3. Candidate Report:\n    Small left effusion.\n\n" in prompt
    for kind in KINDS:
        assert f"    {kind[1:3]} {kind[4:]}.\n" in prompt
    assert prompt.endswith(
        "[Matched Findings]:\n    <The number of matched findings>. <Finding 1>; <Finding 2>; "
        "...; <Finding n>\n    ```\n"
    )


def test_the_scorer_asks_a_local_judge(tmp_path, iu_annotation):
    texts = [s["report"] for s in iu_annotation["train"][:200]]
    judge = make_tiny_causal_lm(texts, tmp_path / "judge")
    references = [s["report"] for s in iu_annotation["test"][:3]]
    predictions = ["No acute process.", references[1], "Heart size is normal. " * 5]
    scorer = GREENScorer(judge, max_new_tokens=5, batch_size=3, device="cpu")
    assert scorer.tokenizer.padding_side == "left" and scorer.tokenizer.chat_template == CHAT_TEMPLATE
    chat = scorer.chat(references[0], predictions[0])
    # the template as transformers renders it (block lines trimmed), as for the package
    prompt = green_prompt(references[0], predictions[0])
    assert chat == f"<|user|>\n{prompt}<|endoftext|>\n<|assistant|>\n<|endoftext|>\n<|assistant|>\n"
    scores = scorer.score(references, predictions)
    assert scores.green.shape == (3,) and scores.errors.shape == (3, 6) and len(scores.answers) == 3
    np.testing.assert_array_equal(scores.green, [green_from_answer(a) for a in scores.answers])
    # a batch with left padding answers as one study at a time does
    one_by_one = GREENScorer(judge, max_new_tokens=5, batch_size=1, device="cpu").answers(
        references, predictions
    )
    assert scores.answers == one_by_one
    with pytest.raises(ValueError, match="3 references but 2 predictions"):
        scorer.score(references, predictions[:2])


def test_evaluate_keeps_the_judges_answers(tmp_path, iu_annotation):
    import json

    from cknet.cli import main

    judge = make_tiny_causal_lm([s["report"] for s in iu_annotation["train"][:200]], tmp_path / "judge")
    rows = [{"id": f"s{i}", "prediction": "No acute process.", "reference": s["report"]}
            for i, s in enumerate(iu_annotation["test"][:2])]
    (tmp_path / "p.json").write_text(json.dumps(rows))
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--predictions", str(tmp_path / "p.json"), "--metrics", "green", "--green-model",
                 str(judge), "--resamples", "0", "--output", str(out)]) == 0
    model = json.loads(out.read_text())["model_based"]
    assert len(model["answers"]["GREEN"]) == 2
    assert model["per_study"]["GREEN"] == [green_from_answer(a) for a in model["answers"]["GREEN"]]
