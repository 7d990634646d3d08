"""`make_labeler`: a labeler from a short name, as ``--labeler`` takes it, and `CsvLabeler`,
labels another labeler wrote to a CSV file.

- ``"rules"``: the built-in `CheXpertLabeler`, read as CheXbert reads reports;
  ``"rules:chexpert"``: the same with the CheXpert labeler's conventions;
- ``"chexbert:CHECKPOINT[,BERT_DIR]"``: `CheXbertLabeler` from the published checkpoint
  (and a local ``bert-base-uncased`` folder);
- the path of a ``.csv`` file: `CsvLabeler`, the labels of the CheXpert labeler's or
  CheXbert's output for every report to score (references and generated ones alike).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from cknet.data.labels import label_cell
from cknet.labeler.chexpert import OBSERVATIONS, CheXpertLabeler

REPORT_COLUMNS = ("Report Impression", "Reports", "report")


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class CsvLabeler:
    """Labels read from a labeler's CSV output: one row per report text.

    Args:
        path: the CSV; a report column (``Report Impression`` as CheXbert writes it,
            ``Reports`` as the CheXpert labeler does, or ``report``) and the 14
            observation columns named as in CheXpert, cells 1, 0, -1 or blank.

    Raises:
        ValueError: naming the file, the column or the line at fault.
    """

    observations: tuple[str, ...] = OBSERVATIONS

    def __init__(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        try:
            rows = list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
        except (UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f"{path} is not a readable CSV file: {err}") from None
        header = list(rows[0]) if rows else []
        column = next((c for c in REPORT_COLUMNS if c in header), None)
        missing = [o for o in OBSERVATIONS if o not in header]
        if column is None or missing:
            raise ValueError(f"{path} needs a report column ({' or '.join(REPORT_COLUMNS)}) and the "
                             f"observation columns; it lacks {missing if missing else 'the report column'}")
        self.table: dict[str, np.ndarray] = {}
        for line, row in enumerate(rows, start=2):
            values = [label_cell(row[name], f"{path}, line {line}, column {name!r}") for name in OBSERVATIONS]
            self.table[_key(row[column] or "")] = np.array(values)
        self.path = path

    def label(self, reports: Iterable[str]) -> np.ndarray:
        """The labels of report texts, looked up (whitespace folded).

        Args:
            reports: report texts, each in the CSV.

        Returns:
            ``(num_reports, 14)``.

        Raises:
            ValueError: for a report the CSV does not hold.
        """
        if isinstance(reports, str):
            raise ValueError("reports must be a list of report texts, not one string")
        rows = []
        for report in reports:
            row = self.table.get(_key(report))
            if row is None:
                raise ValueError(f"{self.path} holds no labels for the report {report[:60]!r}...: label "
                                 f"every report to score, references and generated ones, with one labeler")
            rows.append(row)
        return np.stack(rows) if rows else np.zeros((0, len(OBSERVATIONS)))

    def __call__(self, reports: Iterable[str]) -> np.ndarray:
        """`label`.

        Args:
            reports: report texts.
        """
        return self.label(reports)


def make_labeler(spec: str) -> Callable[[Sequence[str]], np.ndarray]:
    """A labeler of the 14 CheXpert observations from its short name.

    Args:
        spec: ``"rules"``, ``"rules:chexpert"``, ``"chexbert:CHECKPOINT[,BERT_DIR]"`` or the
            path of a CSV (see the module docstring).

    Returns:
        A callable from report texts to ``(n, 14)`` labels.

    Raises:
        ValueError: for a spec of none of these forms.
    """
    if spec == "rules":
        return CheXpertLabeler()
    if spec == "rules:chexpert":
        return CheXpertLabeler(convention="chexpert")
    kind, _, rest = spec.partition(":")
    if kind == "chexbert" and rest:
        from cknet.labeler.chexbert import CheXbertLabeler

        checkpoint, _, bert_dir = rest.partition(",")
        return CheXbertLabeler(checkpoint, bert_dir or "bert-base-uncased")
    if spec.lower().endswith(".csv"):
        return CsvLabeler(spec)
    raise ValueError("a labeler is 'rules', 'rules:chexpert', 'chexbert:CHECKPOINT[,BERT_DIR]' or a CSV "
                     f"file, got {spec!r}")
