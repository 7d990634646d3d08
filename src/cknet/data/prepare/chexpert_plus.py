"""CheXpert Plus (Stanford AIMI) -> R2Gen's layout: ``cknet prepare chexpert-plus``.

Inputs: the release's table ``df_chexpert_plus_*.csv`` (one row per image:
``path_to_image`` such as ``train/patient00001/study1/view1_frontal.jpg``, ``split``
``train`` / ``valid``, the report's sections ``section_findings``,
``section_impression``, ..., and ``frontal_lateral``) and the image folder holding
``train/`` and ``valid/`` (the PNG release names its files ``.png`` where the table says
``.jpg``; both are looked for).

As in the paper's MIMIC-CXR setting, one image per report: the study's first frontal
view (by file name), else its first image. Splits: the official ``valid`` part is the
test split; a validation split is taken from the official ``train`` part by patient (a
patient is in it when the first 8 hex digits of the SHA-256 of its id, modulo 100, are
below ``val_percent``), so that no patient is in two splits and the choice does not
depend on the order of the table.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cknet.data.prepare.folder import Prepared, refuse_split_leaks
from cknet.data.prepare.tables import checksum, read_table

NEEDED = ("path_to_image", "split", "section_findings", "section_impression")


def in_validation(patient: str, val_percent: int) -> bool:
    """Whether a patient of the official training part goes to the validation split.

    Args:
        patient: e.g. ``"patient00001"``.
        val_percent: the share of patients, 0-100.
    """
    return int(hashlib.sha256(patient.encode()).hexdigest()[:8], 16) % 100 < val_percent


def read_chexpert_plus(
    table: Path, images: Path, section: str = "findings", val_percent: int = 2, copies: bool = False
) -> Prepared:
    """Read CheXpert Plus into R2Gen's layout, one image per study.

    Args:
        table: ``df_chexpert_plus_*.csv``.
        images: the folder holding ``train/`` and ``valid/``.
        section: ``"findings"``, ``"impression"`` or ``"both"``.
        val_percent: the share of the training part's patients that forms the validation split.
        copies: name the images by their ``path_to_image`` with the suffix of the copy
            (as they will be copied) instead of the file found.

    Returns:
        The entries, what was left out and why, and the table's checksum.

    Raises:
        FileNotFoundError: for a missing table or image folder.
        ValueError: naming a missing column or an unknown split value.
    """
    if section not in ("findings", "impression", "both"):
        raise ValueError(f"section must be 'findings', 'impression' or 'both', got {section!r}")
    if not table.is_file():
        raise FileNotFoundError(f"{table} does not exist; give the release's df_chexpert_plus_*.csv")
    if not images.is_dir():
        raise FileNotFoundError(f"{images} is not a folder; give the folder holding train/ and valid/")
    annotation: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    dropped, image_jobs = [], []
    studies = _rows_by_study(table)
    for key in sorted(studies):
        rows = sorted(studies[key], key=lambda r: r["path_to_image"])
        _, patient, study = key.split("/")
        study_id = f"{patient}_{study}"
        row = ([r for r in rows if _is_frontal(r)] or rows)[0]
        names = ("section_findings", "section_impression") if section == "both" else (f"section_{section}",)
        text = " ".join(" ".join(row[n].split()) for n in names if row[n].strip())
        source = _image_file(images, row["path_to_image"])
        if not text:
            dropped.append((study_id, f"the report has no {section} section"))
            continue
        if source is None:
            dropped.append((study_id, f"image file missing: {row['path_to_image']}"))
            continue
        split = ("test" if row["split"] == "valid" else "val" if in_validation(patient, val_percent)
                 else "train")
        path = (Path(row["path_to_image"]).with_suffix(source.suffix) if copies
                else source.relative_to(images)).as_posix()
        image_jobs.append((source, path))
        annotation[split].append({"id": study_id, "patient": patient, "report": text, "image_path": [path],
                                  "split": split, "view": row.get("frontal_lateral", "")})
    refuse_split_leaks(annotation, "patient", "patient", table)
    return Prepared(
        annotation,
        dropped,
        image_jobs,
        images,
        {table.name: checksum(table), images.name: "(folder)"},
        _rules(section, val_percent),
        None,
        next_steps=[
            "cknet pretrain-graph --data-dir OUT --dataset mimic_cxr --graph chexpert14 \\",
            "    --backbone-weights imagenet --labels keyword --output runs/graph",
            "cknet train --config mimic_cxr --data-dir OUT --graph-model runs/graph --output runs/plus",
        ],
    )


def _rules(section: str, val_percent: int) -> list[str]:
    """What PREPARED.md says was done."""
    return [
        f"- Report: `section_{section}`"
        + (" and `section_impression`" if section == "both" else "")
        + " of the row of the image kept, white space collapsed; a study without it is left out.",
        "- One image per study: the first frontal view by file name (`frontal_lateral`, else 'frontal' in "
        "the name), else the first image.",
        f"- Splits: official `valid` -> test; official `train` -> train, and val for {val_percent}% of its "
        f"patients (SHA-256 of the patient id, first 8 hex digits modulo 100 < {val_percent}).",
        "- Checked: no patient in two splits (a table that does so is refused).",
    ]


def _rows_by_study(table: Path) -> dict[str, list[dict[str, str]]]:
    """The table's rows grouped by ``SPLIT/PATIENT/STUDY``, each ``path_to_image`` checked:
    relative, inside the image folder, and at least four parts deep."""
    studies: dict[str, list[dict[str, str]]] = {}
    for line, row in enumerate(read_table(table, NEEDED), 2):
        if row["split"] not in ("train", "valid"):
            raise ValueError(f"{table}, line {line}: split {row['split']!r} is neither 'train' nor 'valid'")
        parts = Path(row["path_to_image"]).parts
        if Path(row["path_to_image"]).is_absolute() or ".." in parts:
            raise ValueError(
                f"{table}, line {line}: path_to_image {row['path_to_image']!r} leaves the image folder; "
                f"expected a relative SPLIT/PATIENT/STUDY/FILE"
            )
        if len(parts) < 4:
            raise ValueError(
                f"{table}, line {line}: path_to_image {row['path_to_image']!r} is not "
                f"SPLIT/PATIENT/STUDY/FILE"
            )
        studies.setdefault("/".join(parts[:3]), []).append(row)
    return studies


def _is_frontal(row: dict[str, str]) -> bool:
    view = (row.get("frontal_lateral") or "").strip().lower()
    return view == "frontal" if view else "frontal" in Path(row["path_to_image"]).name.lower()


def _image_file(root: Path, relative: str) -> Path | None:
    for candidate in (root / relative, (root / relative).with_suffix(".png")):
        if candidate.is_file():
            return candidate
    return None
