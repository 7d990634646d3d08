"""`SyntheticReports`: sample a study's findings and write the report that states them;
`SyntheticReports.read` is the exact inverse (the labeler of the demo's CE)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cknet.data.synthetic.findings import FINDINGS, PREVALENCE, SIDED_PREVALENCE

# Sentences by finding group: (finding, phrasings when present); normal phrasings when
# every finding of the group is absent.
_SENTENCES: dict[str, tuple[dict[str, list[str]], list[str]]] = {
    "heart": ({"cardiomegaly": ["The heart is enlarged.", "There is cardiomegaly.",
                                "Cardiomegaly is present."]},
              ["The heart is normal in size.", "Heart size is within normal limits.", "No cardiomegaly."]),
    "effusion": ({"left pleural effusion": ["There is a small left pleural effusion.",
                                            "A left pleural effusion is present."],
                  "right pleural effusion": ["There is a small right pleural effusion.",
                                             "A right pleural effusion is present."]},
                 ["No pleural effusion.", "There is no pleural effusion."]),
    "pneumothorax": ({"left pneumothorax": ["There is a left pneumothorax.",
                                            "A left apical pneumothorax is seen."],
                      "right pneumothorax": ["There is a right pneumothorax.",
                                             "A right apical pneumothorax is seen."]},
                     ["No pneumothorax.", "There is no pneumothorax."]),
    "opacity": ({"left lung opacity": ["There is airspace opacity in the left lung.",
                                       "Left lung consolidation is present."],
                 "right lung opacity": ["There is airspace opacity in the right lung.",
                                        "Right lung consolidation is present."]},
                ["No focal airspace opacity.", "The lungs are clear without consolidation."]),
    "nodule": ({"left lung nodule": ["A nodule is seen in the left lung.", "There is a left lung nodule."],
                "right lung nodule": ["A nodule is seen in the right lung.",
                                      "There is a right lung nodule."]},
               ["No suspicious pulmonary nodule.", ""]),
    "atelectasis": ({"left atelectasis": ["There is left basilar atelectasis.",
                                          "Plate-like atelectasis is seen at the left base."],
                     "right atelectasis": ["There is right basilar atelectasis.",
                                           "Plate-like atelectasis is seen at the right base."]},
                    ["", ""]),
    "edema": ({"pulmonary edema": ["There is mild pulmonary edema.", "Perihilar edema is present."]},
              ["No pulmonary edema.", ""]),
    "bones": ({"rib fracture": ["There is a rib fracture.", "A healed rib fracture is seen."],
               "scoliosis": ["There is scoliosis of the thoracic spine.", "Scoliosis is present."]},
              ["No acute bony abnormality.", "The bones are intact."]),
    "devices": ({"support devices": ["A pacemaker with its lead is in place.",
                                     "A pacemaker and a central line are present."]}, ["", ""]),
    "other": ({"hiatal hernia": ["There is a hiatal hernia.", "A small hiatal hernia is noted."],
               "calcified granuloma": ["A calcified granuloma is seen.", "There are calcified granulomas."]},
              ["", ""]),
}


def _normalise(text: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in text.lower())
    return " ".join(words.split())


_STATED = {finding: [_normalise(p) for p in phrasings]
           for present, _ in _SENTENCES.values() for finding, phrasings in present.items()}


class SyntheticReports:
    """Sample findings and write the report that describes them.

    Args:
        prevalence: probability of each finding (default: `PREVALENCE`, and per side
            `SIDED_PREVALENCE`).
    """

    def __init__(self, prevalence: dict[str, float] | None = None) -> None:
        if prevalence is None:
            prevalence = dict(PREVALENCE)
            for name, p in SIDED_PREVALENCE.items():
                prevalence[f"left {name}"] = prevalence[f"right {name}"] = p
        unknown = sorted(set(prevalence) - set(FINDINGS))
        if unknown:
            raise ValueError(f"unknown findings {unknown}")
        self.prevalence = prevalence

    def sample(self, rng: np.random.Generator) -> list[str]:
        """Draw the findings of one study.

        Args:
            rng: the generator to draw with.

        Returns:
            Finding names, in `FINDINGS` order.
        """
        return [f for f in FINDINGS if rng.random() < self.prevalence.get(f, 0.0)]

    @staticmethod
    def write(findings: Sequence[str], rng: np.random.Generator) -> str:
        """Write a report: one sentence per finding, normal sentences (with negations)
        for groups with none.

        Args:
            findings: names from `FINDINGS`.
            rng: varies the phrasing.

        Returns:
            The report.
        """
        sentences = []
        for present_phrasings, normal in _SENTENCES.values():
            present = [f for f in present_phrasings if f in findings]
            if present:
                sentences += [present_phrasings[f][rng.integers(len(present_phrasings[f]))] for f in present]
            else:
                sentences.append(normal[rng.integers(len(normal))])
        return " ".join(s for s in sentences if s)

    @staticmethod
    def labels(findings: Sequence[str]) -> np.ndarray:
        """The findings as labels.

        Args:
            findings: names from `FINDINGS`.

        Returns:
            ``(len(FINDINGS),)`` float32 0/1.
        """
        return np.array([f in findings for f in FINDINGS], dtype=np.float32)

    @staticmethod
    def read(reports: Sequence[str]) -> np.ndarray:
        """The findings a list of reports states: the exact inverse of `write`.

        A report states a finding when it contains one of that finding's sentences,
        compared after lower-casing and dropping punctuation (so it reads the cleaned,
        tokenized text a model generates as well as the original). Use it as the labeler
        of `cknet.metrics.ce_scores` with ``observations=FINDINGS``.

        Args:
            reports: report texts.

        Returns:
            ``(len(reports), len(FINDINGS))`` float 0/1 labels.
        """
        if isinstance(reports, str):
            raise ValueError("reports must be a list of report texts, not one string")
        rows = np.zeros((len(reports), len(FINDINGS)), dtype=np.float32)
        for i, report in enumerate(reports):
            text = f" {_normalise(report)} "
            for j, finding in enumerate(FINDINGS):
                rows[i, j] = any(f" {sentence} " in text for sentence in _STATED[finding])
        return rows
