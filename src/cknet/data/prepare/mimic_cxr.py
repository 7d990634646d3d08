"""MIMIC-CXR (PhysioNet) -> R2Gen's layout: ``cknet prepare mimic-cxr``.

Inputs, as PhysioNet releases them:

- a MIMIC-CXR-JPG download: ``files/pNN/pSUBJECT/sSTUDY/DICOM_ID.jpg`` and the tables
  ``mimic-cxr-2.0.0-split.csv[.gz]`` (``dicom_id, study_id, subject_id, split``, split
  ``train`` / ``validate`` / ``test``), ``mimic-cxr-2.0.0-metadata.csv[.gz]`` (one row
  per image, with ``ViewPosition``) and ``mimic-cxr-2.0.0-chexpert.csv[.gz]``
  (``subject_id, study_id`` and the 14 CheXpert columns);
- the free-text reports, ``mimic-cxr-reports.zip`` or its unpacked folder
  (``files/pNN/pSUBJECT/sSTUDY.txt``).

Output entries follow R2Gen's MIMIC-CXR annotation: one per image,
``{"id": DICOM_ID, "study_id", "subject_id", "report", "image_path":
["pNN/pSUBJECT/sSTUDY/DICOM_ID.jpg"], "split", "view"}``, the report being the section
chosen by `cknet.data.prepare.sections.report_section`, and the split the official one
(``validate`` -> ``val``).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from cknet.data.labels import label_cell
from cknet.data.prepare.folder import Prepared, refuse_split_leaks
from cknet.data.prepare.sections import report_section
from cknet.data.prepare.tables import ReportFiles, checksum, find_table, read_table
from cknet.labeler.chexpert import OBSERVATIONS

SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}
_WHAT = "a MIMIC-CXR-JPG download (the folder holding files/ and the mimic-cxr-2.0.0-*.csv.gz tables)"


def read_mimic_cxr(images: Path, reports: Path, section: str = "findings") -> Prepared:
    """Read a MIMIC-CXR-JPG download and its reports into R2Gen's layout.

    Args:
        images: the MIMIC-CXR-JPG folder (``files/`` and the tables).
        reports: ``mimic-cxr-reports.zip`` or the folder it unpacks to.
        section: ``"findings"``, ``"impression"`` or ``"both"`` (see `report_section`).

    Returns:
        The entries, what was left out and why, the sources' checksums and the labels.

    Raises:
        FileNotFoundError: naming a missing table or folder.
        ValueError: naming a table without a needed column, or an unknown split name.
    """
    if not (images / "files").is_dir():
        raise FileNotFoundError(f"{images} has no files/ folder; give {_WHAT}")
    tables = {
        name: find_table(images, f"mimic-cxr-2.0.0-{name}", _WHAT)
        for name in ("split", "metadata", "chexpert")
    }
    report_files = ReportFiles(reports)
    views = {
        row["dicom_id"]: row["ViewPosition"]
        for row in read_table(tables["metadata"], ("dicom_id", "study_id", "subject_id", "ViewPosition"))
    }
    by_study = _images_by_study(tables["split"])
    in_split = {dicom for dicoms in by_study.values() for dicom, _ in dicoms}
    dropped = [(dicom, "image not in the split table") for dicom in sorted(set(views) - in_split)]
    annotation, image_jobs = _entries(images, by_study, report_files, section, views, dropped)
    refuse_split_leaks(annotation, "study_id", "study", tables["split"])
    refuse_split_leaks(annotation, "subject_id", "patient", tables["split"])
    studies = {str(e["study_id"]) for entries in annotation.values() for e in entries}
    header, rows = _chexpert_rows(tables["chexpert"], studies)
    sources = {path.name: checksum(path) for path in tables.values()}
    sources[report_files.source.name] = (
        checksum(report_files.source) if report_files.source.is_file() else "(folder)"
    )
    return Prepared(
        annotation,
        dropped,
        image_jobs,
        images / "files",
        sources,
        _rules(section, unlabelled=len(studies - {row[0] for row in rows})),
        (header, rows),
        labels_use="the official CheXpert labels of the kept studies (1, 0, -1 uncertain, blank); "
        "train the graph stage on them with `cknet pretrain-graph --graph chexpert14 "
        "--labels csv:OUT/labels.csv`.",
        next_steps=[
            "cknet pretrain-graph --data-dir OUT --dataset mimic_cxr --graph chexpert14 \\",
            "    --backbone-weights imagenet --labels csv:OUT/labels.csv --output runs/graph",
            "cknet train --config mimic_cxr --data-dir OUT --graph-model runs/graph --output runs/mimic",
        ],
    )


def _images_by_study(split_table: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(subject, study) -> its images' (dicom_id, split) from the split table, the split
    named as R2Gen's (``validate`` -> ``val``)."""
    by_study: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for line, row in enumerate(read_table(split_table, ("dicom_id", "study_id", "subject_id", "split")), 2):
        if row["split"] not in SPLIT_NAMES:
            raise ValueError(f"{split_table}, line {line}: split {row['split']!r} is none of "
                             f"{list(SPLIT_NAMES)}")
        by_study[(row["subject_id"], row["study_id"])].append((row["dicom_id"], SPLIT_NAMES[row["split"]]))
    return by_study


def _entries(images: Path, by_study: dict, report_files: ReportFiles, section: str, views: dict[str, str],
             dropped: list[tuple[str, str]]) -> tuple[dict[str, list[dict]], list[tuple[Path, str]]]:
    """The annotation (one entry per image of a study with the report section) and the
    image copies to make, in study order; what is left out is added to ``dropped``."""
    annotation: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    image_jobs = []
    for (subject, study), dicoms in sorted(by_study.items(), key=lambda item: int(item[0][1])):
        text = report_files.read(subject, study)
        report = report_section(text, section) if text is not None else None
        if report is None:
            reason = "no report file" if text is None else f"the report has no {section} section"
            dropped.append((f"s{study}", reason))
            continue
        for dicom, split in sorted(dicoms):
            relative = f"p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"
            source = images / "files" / relative
            if not source.is_file():
                dropped.append((dicom, "image file missing"))
                continue
            image_jobs.append((source, relative))
            annotation[split].append({"id": dicom, "study_id": int(study), "subject_id": int(subject),
                                      "report": report, "image_path": [relative], "split": split,
                                      "view": views.get(dicom, "")})
    return annotation, image_jobs


def _chexpert_rows(table: Path, studies: set[str]) -> tuple[list[str], list[list[str]]]:
    """The label table of the kept studies: its header and one row per study in the
    CheXpert table (1, 0, -1 or blank, each cell checked)."""
    header = ["study_id", *OBSERVATIONS]
    rows = [
        [row["study_id"], *(_cell(row[c], f"{table}, line {line}, column {c!r}") for c in OBSERVATIONS)]
        for line, row in enumerate(read_table(table, ("subject_id", *header)), 2)
        if row["study_id"] in studies
    ]
    return header, rows


def _rules(section: str, unlabelled: int) -> list[str]:
    """What PREPARED.md says was done."""
    rules = [
        f"- Report: the {_section_rule(section)} (cknet's section parser, "
        f"`cknet.data.prepare.sections`, after MIT-LCP's MIMIC-CXR parser).",
        "- One entry per image, as R2Gen's annotation; every view is kept (`view` = ViewPosition).",
        "- Split: the official `mimic-cxr-2.0.0-split` table (`validate` -> `val`).",
        "- Checked: no study and no patient in two splits (a table that does so is refused).",
        "- Left out: images absent from the split table, studies without a report or without the section, "
        "image files missing from the download.",
    ]
    if unlabelled:
        rules.append(f"- {unlabelled} kept studies have no row in the CheXpert table.")
    return rules


def _cell(text: str, where: str) -> str:
    """A CheXpert cell as the label table writes it: 1, 0, -1 or blank (`label_cell` checks it)."""
    value = label_cell(text, where)
    return "" if value != value else str(int(value))


def _section_rule(section: str) -> str:
    return {
        "findings": "FINDINGS section (a study without one is left out)",
        "impression": "IMPRESSION section (a study without one is left out)",
        "both": "FINDINGS then IMPRESSION sections, joined (a study with neither is left out)",
    }[section]
