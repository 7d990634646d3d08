"""Rewards of the clinically rewarded fine-tuning stage (`cknet.training.scst`).

A generated report earns

    R = ce_weight * CE(report, reference) + nlg_weight * CIDEr-D(report, reference)

- **CE agreement**: the F1 between the findings a labeler reads in the report and in its
  reference (positive labels of every observation, "No Finding" included; uncertain
  and blank count as absent), 1 when neither states anything. A normal report for a
  normal study scores 1; a normal report for a study with cardiomegaly scores 0, and a
  report stating the cardiomegaly scores 1. This is the factual-completeness reward of
  the radiology report literature (Miura et al., NAACL 2021; Delbrouck et al., 2022),
  here with the built-in rule labeler, which labels thousands of reports a second.
- **CIDEr-D** (Vedantam et al., CVPR 2015), the usual self-critical reward of captioning:
  tf-idf weighted n-gram (n = 1..4) cosine similarity with clipped counts and a Gaussian
  length penalty (sigma 6), times 10; document frequencies come from the training
  references (cleaned as the metrics clean them), so a reward does not depend on the
  batch.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from cknet.tokenizers.base import clean_report

NO_FINDING_COLUMN = 0  # CheXpert's column order starts with "No Finding"


def _ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


class CiderD:
    """CIDEr-D of single reports against one reference, with fixed document frequencies.

    Args:
        corpus: the reference reports the document frequencies come from (the training
            split), cleaned with ``dataset``'s rules.
        dataset: the cleaning rules.
        sigma: the length penalty's width.
    """

    def __init__(self, corpus: Sequence[str], dataset: str = "iu_xray", sigma: float = 6.0) -> None:
        self.dataset = dataset
        self.sigma = sigma
        self.document_frequency: Counter[tuple[str, ...]] = Counter()
        for report in corpus:
            words = clean_report(report, dataset).split()
            for n in range(1, 5):
                self.document_frequency.update(_ngrams(words, n).keys())
        self.log_documents = math.log(max(len(corpus), 1))

    def _vectors(self, text: str) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:
        words = clean_report(text, self.dataset).split()
        vectors, norms = [], []
        for n in range(1, 5):
            vector = {gram: count * (self.log_documents - math.log(max(1.0, self.document_frequency[gram])))
                      for gram, count in _ngrams(words, n).items()}
            vectors.append(vector)
            norms.append(math.sqrt(sum(v * v for v in vector.values())))
        return vectors, norms, len(words)

    def score(self, candidate: str, reference: str) -> float:
        """CIDEr-D of one report.

        Args:
            candidate: the generated report.
            reference: its reference.

        Returns:
            The score (0 for an empty candidate).
        """
        cand_vectors, cand_norms, cand_length = self._vectors(candidate)
        ref_vectors, ref_norms, ref_length = self._vectors(reference)
        penalty = math.exp(-((cand_length - ref_length) ** 2) / (2 * self.sigma**2))
        total = 0.0
        for cand, ref, cand_norm, ref_norm in zip(cand_vectors, ref_vectors, cand_norms, ref_norms):
            if cand_norm == 0 or ref_norm == 0:
                continue
            overlap = sum(min(value, ref[gram]) * ref[gram] for gram, value in cand.items() if gram in ref)
            total += overlap / (cand_norm * ref_norm) * penalty
        return 10.0 * total / 4


def finding_agreement(reference_labels: np.ndarray, candidate_labels: np.ndarray) -> np.ndarray:
    """Per report, the F1 between the positive labels of a candidate and its reference.

    Args:
        reference_labels: ``(n, k)`` labels of 1 / 0 / -1 / NaN.
        candidate_labels: ``(n, k)`` labels of the candidates.

    Returns:
        ``(n,)`` F1 over the positive (1) labels; 1 where neither has any.
    """
    ref, cand = reference_labels == 1, candidate_labels == 1
    hits = (ref & cand).sum(axis=1)
    total = ref.sum(axis=1) + cand.sum(axis=1)
    return np.where(total > 0, 2 * hits / np.maximum(total, 1), 1.0)


class ReportReward:
    """The reward of generated reports: CE agreement plus a weighted CIDEr-D.

    Args:
        corpus: the training references (CIDEr-D's document frequencies).
        labeler: report texts -> ``(n, k)`` labels (e.g. ``CheXpertLabeler()``).
        dataset: the cleaning rules.
        ce_weight: weight of the CE agreement.
        nlg_weight: weight of CIDEr-D.
    """

    def __init__(self, corpus: Sequence[str], labeler: Callable[[Sequence[str]], np.ndarray],
                 dataset: str = "iu_xray", ce_weight: float = 1.0, nlg_weight: float = 1.0) -> None:
        self.cider = CiderD(corpus, dataset) if nlg_weight else None
        self.labeler = labeler
        self.ce_weight = ce_weight
        self.nlg_weight = nlg_weight

    def __call__(self, candidates: Sequence[str], references: Sequence[str],
                 reference_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rewards of candidates, each against its reference.

        Args:
            candidates: the generated reports.
            references: their references (same order).
            reference_labels: the labeler's labels of the references, ``(n, k)``.

        Returns:
            ``(reward, ce, nlg)``, each ``(n,)`` float.
        """
        ce = finding_agreement(reference_labels, np.asarray(self.labeler(list(candidates)), dtype=float))
        nlg = np.zeros(len(candidates))
        if self.cider is not None:
            nlg = np.array([self.cider.score(c, r) for c, r in zip(candidates, references)])
        return self.ce_weight * ce + self.nlg_weight * nlg, ce, nlg
