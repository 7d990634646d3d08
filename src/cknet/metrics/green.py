"""GREEN (Ostmeier et al., EMNLP Findings 2024): a language model fine-tuned to compare a
report with its reference reads both and lists the clinically significant errors of
six kinds and the matched findings; per study

    GREEN = matched / (matched + Σ_k significant errors of kind k),
    0 when matched = 0.

A hook, not run by default: the judge (``StanfordAIMI/GREEN-radllama2-7b``, 7B
parameters) needs a GPU. `GREENScorer` asks it as the ``green_score`` package does (its
prompt, chat template, left padding, greedy decoding to 2048 tokens) and reads its
answers as that package reads them (`green_counts`), so the numbers are comparable when
the judge and its settings are the same; the answers are kept for audit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cknet.devices import resolve_device

JUDGE = "StanfordAIMI/GREEN-radllama2-7b"
KINDS = (
    "(a) False report of a finding in the candidate",
    "(b) Missing a finding present in the reference",
    "(c) Misidentification of a finding's anatomic location/position",
    "(d) Misassessment of the severity of a finding",
    "(e) Mentioning a comparison that isn't in the reference",
    "(f) Omitting a comparison detailing a change from a prior study",
)
"""The six kinds of error GREEN counts."""
CHAT_TEMPLATE = "".join(
    (
        "{% for message in messages %}\n",
        "{% if message['from'] == 'human' %}\n",
        "{{ '<|user|>\n' + message['value'] + eos_token }}\n",
        "{% elif message['from'] == 'system' %}\n",
        "{{ '<|system|>\n' + message['value'] + eos_token }}\n",
        "{% elif message['from'] == 'gpt' %}\n",
        "{{ '<|assistant|>\n'  + message['value'] + eos_token }}\n",
        "{% endif %}\n",
        "{% if loop.last and add_generation_prompt %}\n",
        "{{ '<|assistant|>' }}\n",
        "{% endif %}\n",
        "{% endfor %}",
    )
)
"""The chat template the judge was fine-tuned with (the package's)."""
_FORMAT = """
    ```
    [Explanation]:
    <Explanation>

    [Clinically Significant Errors]:
    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>
    ....
    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>

    [Clinically Insignificant Errors]:
    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>
    ....
    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>

    [Matched Findings]:
    <The number of matched findings>. <Finding 1>; <Finding 2>; ...; <Finding n>
    ```
"""
_CRITERIA = "\n".join(f"    {kind[1:3]} {kind[4:]}." for kind in KINDS)


def green_prompt(reference: str, candidate: str, max_words: int = 300) -> str:
    """The question the judge was fine-tuned on, each report cut to ``max_words`` words.

    Args:
        reference: the reference report.
        candidate: the generated report.
        max_words: words kept of each report (the package's 300).
    """
    reference = " ".join(reference.split()[:max_words])
    candidate = " ".join(candidate.split()[:max_words])
    return (
        "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference "
        "radiology report composed by expert radiologists.\n\n    Process Overview: You will be presented "
        "with:\n\n    1. The criteria for making a judgment.\n    2. The reference radiology report.\n    "
        "3. The candidate radiology report.\n    4. The desired format for your assessment.\n\n    "
        "1. Criteria for Judgment:\n\n    For each candidate report, determine:\n\n    "
        "The count of clinically "
        "significant errors.\n    The count of clinically insignificant errors.\n\n    Errors can fall into "
        f"one of these categories:\n\n{_CRITERIA}\n    Note: Concentrate on the clinical findings rather "
        "than the report's writing style. Evaluate only the findings that appear in both reports.\n\n    "
        f"2. Reference Report:\n    {reference}\n\n    3. Candidate Report:\n    {candidate}\n\n    "
        "4. Reporting Your Assessment:\n\n    Follow this specific format for your output, even if no errors "
        f"are found:{_FORMAT}"
    )


def _section(answer: str, heading: str) -> str | None:
    found = re.search(rf"\[{re.escape(heading)}\]:\s*(.*?)(?:\n\s*\n|\Z)", answer, re.DOTALL)
    return None if found is None else found.group(1)


def green_counts(answer: str) -> tuple[list[int], int]:
    """The clinically significant errors of each kind and the matched findings in an
    answer, read as the package reads them: a section missing or starting with "No"
    counts 0; an error line is ``(a) ...: N.`` (or ``(1) ...: N.``); the matched
    findings are the number that starts their section, ``N.``.

    Args:
        answer: the judge's answer.

    Returns:
        The six counts, in `KINDS` order, and the matched findings.
    """
    errors = [0] * len(KINDS)
    text = _section(answer, "Clinically Significant Errors")
    if text is not None and not text.startswith("No"):
        lines = sorted(re.findall(r"\([a-f]\) .*", text))
        labels = [kind[:4] for kind in KINDS]
        if not lines:
            lines = sorted(re.findall(r"\([1-6]\) .*", text))
            labels = [f"({k}) " for k in range(1, len(KINDS) + 1)]
        for position, label in enumerate(labels):
            for line in lines:
                if line.startswith(label):
                    count = re.findall(r"(?<=: )\b\d+\b(?=\.)", line)
                    if count:
                        errors[position] = int(count[0])
    matched = 0
    text = _section(answer, "Matched Findings")
    if text is not None and not text.startswith("No"):
        count = re.findall(r"^\b\d+\b(?=\.)", text)
        matched = int(count[0]) if count else 0
    return errors, matched


def green_from_answer(answer: str) -> float:
    """GREEN of one study from the judge's answer (module docstring).

    Args:
        answer: the judge's answer.
    """
    errors, matched = green_counts(answer)
    return matched / (matched + sum(errors)) if matched else 0.0


def clean_answer(decoded: str) -> str:
    """The judge's answer from its decoded output, as the package cuts it: after the
    last ``<|assistant|>`` tag and the ``[Explanation]:`` heading, without ``</s>`` or
    ``<unk>``.

    Args:
        decoded: prompt and answer, decoded.
    """
    if "[Explanation]:" in decoded:
        if "<|assistant|>" in decoded:
            decoded = decoded.split("<|assistant|>")[-1]
        pieces = decoded.split("[Explanation]:")
        decoded = pieces[1] if "[Explanation]:\n    <Explanation>\n" in decoded else pieces[-1]
    if "<|assistant|>" in decoded:
        decoded = decoded.split("<|assistant|>")[-1]
    return decoded.replace("</s>", "").replace("<unk>", "")


@dataclass
class GREENScores:
    """Per-study GREEN with what it was computed from.

    Attributes:
        green: ``(n,)`` scores.
        errors: ``(n, 6)`` clinically significant errors of each kind (`KINDS`).
        matched: ``(n,)`` matched findings.
        answers: the judge's answers.
    """

    green: np.ndarray
    errors: np.ndarray
    matched: np.ndarray
    answers: list[str]


class GREENScorer:
    """GREEN with a local judge.

    Args:
        model: the judge: a folder, or a hub id in the Hugging Face cache (default
            `JUDGE`; ``hf download StanfordAIMI/GREEN-radllama2-7b``, 13 GB in float16).
        batch_size: studies per generation batch (the package's 8).
        max_length: prompt and answer together, in tokens (the package's 2048).
        max_new_tokens: cap the answer instead (not the package's setting; for tests).
        device: where to run (default: CUDA when available).
        dtype: the judge's weights (default: float16 on CUDA as the package, float32
            on the CPU).

    Raises:
        OSError: when the judge is neither a folder nor in the cache (naming the download).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = JUDGE,
        batch_size: int = 8,
        max_length: int = 2048,
        max_new_tokens: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from cknet.persistence.hub import load_hf_pretrained

        self.device = resolve_device(device)
        dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        judge = load_hf_pretrained(AutoModelForCausalLM, model, "GREEN judge", dtype=dtype, offline=True)
        self.model = judge.to(self.device).eval()
        self.tokenizer = load_hf_pretrained(
            AutoTokenizer, model, "GREEN judge", add_eos_token=True, padding_side="left", offline=True
        )
        self.tokenizer.chat_template = CHAT_TEMPLATE
        self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size, self.max_length, self.max_new_tokens = batch_size, max_length, max_new_tokens

    def chat(self, reference: str, candidate: str) -> str:
        """The judge's input text for one study (prompt in the chat template).

        Args:
            reference: the reference report.
            candidate: the generated report.
        """
        messages = [
            {"from": "human", "value": green_prompt(reference, candidate)},
            {"from": "gpt", "value": ""},
        ]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @torch.no_grad()
    def answers(self, references: Sequence[str], predictions: Sequence[str]) -> list[str]:
        """The judge's answer for each study (greedy decoding).

        Args:
            references: the reference reports.
            predictions: the generated reports, in the same order.
        """
        chats = [self.chat(r, p) for r, p in zip(references, predictions, strict=True)]
        out = []
        for start in range(0, len(chats), self.batch_size):
            batch = self.tokenizer(
                chats[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(self.device)
            length = (
                {"max_new_tokens": self.max_new_tokens}
                if self.max_new_tokens
                else {"max_length": self.max_length}
            )
            generated = self.model.generate(
                **batch,
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
                do_sample=False,
                **length,
            )
            out += [
                clean_answer(text)
                for text in self.tokenizer.batch_decode(generated, skip_special_tokens=True)
            ]
        return out

    def score(self, references: Sequence[str], predictions: Sequence[str]) -> GREENScores:
        """GREEN of each prediction against its reference.

        Args:
            references: the reference reports.
            predictions: the generated reports, in the same order.

        Raises:
            ValueError: when the two lists differ in length.
        """
        if len(references) != len(predictions):
            raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
        answers = self.answers(references, predictions)
        counts = [green_counts(a) for a in answers]
        return GREENScores(
            np.array([green_from_answer(a) for a in answers], dtype=float),
            np.array([errors for errors, _ in counts], dtype=int).reshape(len(answers), len(KINDS)),
            np.array([matched for _, matched in counts], dtype=int),
            answers,
        )
