"""``cknet label``: label report texts and write them in CheXbert's CSV layout.

Reports come from a text file (one report a line; blank lines skipped), a CSV file (the
column ``--column``, else the first of ``report``, ``Report Impression``, ``Reports``)
or an R2Gen ``annotation.json`` (the reports of ``--split``, else of every split in
the file's order). The output is what CheXbert's ``label.py`` writes: a ``Report
Impression`` column, then the 13 findings and No Finding in CheXbert's order, each cell
1 (positive), 0 (negative), -1 (uncertain) or blank (not mentioned), one row per input
report in input order. `cknet.labeler.CsvLabeler` (``--labeler labels.csv`` of
``cknet evaluate``) reads it back.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from cknet.cli.arguments import check_output_file, input_paths
from cknet.labeler.chexpert import OBSERVATIONS
from cknet.labeler.choose import REPORT_COLUMNS, make_labeler
from cknet.persistence.files import write_text_atomic

# CheXbert's output columns: the findings in its order, No Finding last.
CHEXBERT_COLUMNS = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
)


def read_reports(
    path: str | os.PathLike[str], column: str | None = None, split: str | None = None
) -> list[str]:
    """Report texts from a text file, a CSV column or an annotation file (see the module).

    Args:
        path: a ``.json`` annotation, a ``.csv`` table, or any other file of one report a line.
        column: the CSV column to read (default: the first of `REPORT_COLUMNS` present).
        split: the annotation split to read (default: every split).

    Returns:
        The reports, in the file's order.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming the file and what it lacks (a column, a split, a report field),
            or saying that it is not UTF-8.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file of reports")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text: {err}") from None
    if column is not None and path.suffix.lower() != ".csv":
        raise ValueError(f"--column applies to a CSV file of reports, not to {path}")
    if split is not None and path.suffix.lower() != ".json":
        raise ValueError(f"--split applies to an annotation.json, not to {path}")
    if path.suffix.lower() == ".json":
        return _annotation_reports(path, text, split)
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        header = list(rows[0]) if rows else []
        name = column or next((c for c in REPORT_COLUMNS if c in header), None)
        if name is None or name not in header:
            wanted = repr(column) if column else " or ".join(map(repr, REPORT_COLUMNS))
            raise ValueError(f"{path} has no column {wanted} (its columns: {header})")
        return [row[name] or "" for row in rows]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _annotation_reports(path: Path, text: str, split: str | None) -> list[str]:
    try:
        annotation = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(annotation, dict):
        raise ValueError(f"{path} is not an annotation file: expected {{split: [entries]}}")
    if split is not None and split not in annotation:
        raise ValueError(f"{path} has no {split!r} split (it has {sorted(annotation)})")
    reports = []
    for name in [split] if split is not None else list(annotation):
        for index, entry in enumerate(annotation[name]):
            if not isinstance(entry, dict) or not isinstance(entry.get("report"), str):
                raise ValueError(f"{path}: entry {index} of split {name!r} has no report text")
            reports.append(entry["report"])
    return reports


def chexbert_csv(reports: list[str], labels: np.ndarray) -> str:
    """The CSV text of labelled reports in CheXbert's layout.

    Args:
        reports: the report texts.
        labels: ``(len(reports), 14)`` labels in `OBSERVATIONS` order (1, 0, -1, NaN).

    Returns:
        The CSV text (``Report Impression`` and `CHEXBERT_COLUMNS`).
    """
    order = [OBSERVATIONS.index(name) for name in CHEXBERT_COLUMNS]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Report Impression", *CHEXBERT_COLUMNS])
    for report, row in zip(reports, np.asarray(labels, dtype=float)[:, order]):
        writer.writerow([report, *("" if np.isnan(v) else int(v) for v in row)])
    return buffer.getvalue()


def run(args: argparse.Namespace) -> int:
    """The ``cknet label`` handler: label the reports and write the CSV (atomically).

    Args:
        args: the parsed ``reports``, ``output``, ``labeler``, ``column``, ``split`` and
            ``overwrite``.

    Returns:
        0 (errors are raised, and printed by the command line).
    """
    output = check_output_file(args.output, "--output", args.overwrite,
                                inputs=input_paths(args.reports, args.labeler))
    reports = read_reports(args.reports, args.column, args.split)
    labels = make_labeler(args.labeler)(reports)
    write_text_atomic(output, chexbert_csv(reports, labels))
    positive = int(np.nansum(np.asarray(labels)[:, 1:] == 1))
    print(
        f"labelled {len(reports)} reports with {args.labeler} ({positive} positive finding labels) "
        f"-> {output}"
    )
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``cknet label`` on the command line's sub-parsers.

    Args:
        commands: the ``add_subparsers()`` object of the ``cknet`` parser.
    """
    command = commands.add_parser(
        "label",
        help="label reports (14 CheXpert observations) and write CheXbert's CSV layout",
        description="Label report texts with the built-in labeler (or CheXbert, or a labeler's CSV) and "
        "write them as CheXbert's label.py does: Report Impression, then 14 columns of "
        "1 / 0 / -1 / blank.",
    )
    command.add_argument(
        "reports", type=Path, help="a text file (one report a line), a CSV file or an annotation.json"
    )
    command.add_argument("--output", required=True, help="the labels CSV to write")
    command.add_argument(
        "--labeler",
        default="rules",
        help="rules (built-in, CheXbert's conventions), rules:chexpert (the CheXpert "
        "labeler's), chexbert:CHECKPOINT[,BERT_DIR] or a labeler's CSV",
    )
    command.add_argument("--column", help="the CSV column holding the reports")
    command.add_argument("--split", help="the annotation split to label (default: every split)")
    command.add_argument("--overwrite", action="store_true")
    command.set_defaults(handler=run)
