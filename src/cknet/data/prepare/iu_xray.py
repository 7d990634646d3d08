"""IU X-Ray (Open-i) -> R2Gen's layout: ``cknet prepare iu-xray``.

Inputs, as the Open-i release unpacks: the ``ecgen-radiology/`` folder of XML reports
(``NLMCXR_reports.tgz``; one ``<eCitation>`` per report, its sections in
``<AbstractText Label="FINDINGS">``, its images in ``<parentImage id="CXR1_1_IM-0001-3001">``,
its human indexing in ``<MeSH><major>``) and the ``NLMCXR_png/`` folder of images
(``CXR1_1_IM-0001-3001.png``).

A study's id is R2Gen's: an image's id without its last ``-NNNN`` part
(``CXR1_1_IM-0001``), of the first image whose id is in R2Gen's split, which cknet ships
as a list of ids (``resources/splits/iu_xray_r2gen.json``: 2069 / 296 / 590 studies, no
text). The two views are the report's first two images in the XML's order (frontal,
lateral, as R2Gen's ``0.png`` and ``1.png``).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from importlib import resources
from pathlib import Path

from cknet.data.prepare.folder import Prepared

SPLIT_FILE = "iu_xray_r2gen.json"


def r2gen_split() -> dict[str, str]:
    """R2Gen's IU X-Ray split as shipped with cknet: ``{study id: split}``."""
    text = (resources.files("cknet") / "resources" / "splits" / SPLIT_FILE).read_text("utf-8")
    return {study: split for split, ids in json.loads(text).items() for study in ids}


def read_report_xml(path: Path) -> dict:
    """One Open-i report: its sections, image ids and major MeSH tags.

    Args:
        path: the XML file.

    Returns:
        ``{"sections": {LABEL: text}, "images": [ids], "mesh": [tags]}``; labels
        upper-cased with spaces stripped, texts with white space collapsed.

    Raises:
        ValueError: naming the file when it is not XML or not an ``eCitation``.
    """
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as err:
        raise ValueError(f"{path} is not an XML report: {err}") from None
    if root.tag != "eCitation":
        raise ValueError(f"{path}: the root element is <{root.tag}>, not <eCitation> as in Open-i's reports")
    sections = {}
    for element in root.iter("AbstractText"):
        label = (element.get("Label") or "").strip().upper()
        text = " ".join("".join(element.itertext()).split())
        if label and text:
            sections[label] = text
    images = [element.get("id", "") for element in root.iter("parentImage") if element.get("id")]
    mesh = [" ".join((element.text or "").split()) for element in root.iter("major")]
    return {"sections": sections, "images": images, "mesh": [m for m in mesh if m]}


def read_iu_xray(reports: Path, images: Path, section: str = "findings", copies: bool = False) -> Prepared:
    """Read the Open-i release into R2Gen's layout and split.

    Args:
        reports: the ``ecgen-radiology`` folder of XML reports.
        images: the ``NLMCXR_png`` folder.
        section: ``"findings"``, ``"impression"`` or ``"both"`` (both: findings then
            impression, whichever the report has).
        copies: name the images as the resized copies will be (``ID/0.png``,
            ``ID/1.png``, R2Gen's names) instead of the release's file names.

    Returns:
        The entries, what was left out and why, the sources and the MeSH label table.

    Raises:
        FileNotFoundError: for a missing folder or one without XML reports.
        ValueError: naming a file that is not an Open-i report, or an unknown section.
    """
    if section not in ("findings", "impression", "both"):
        raise ValueError(f"section must be 'findings', 'impression' or 'both', got {section!r}")
    for folder, what in (
        (reports, "the ecgen-radiology folder of XML reports"),
        (images, "the NLMCXR_png folder"),
    ):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder; give {what}")
    files = sorted(reports.glob("*.xml"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise FileNotFoundError(f"{reports} holds no .xml reports; give the ecgen-radiology folder")
    split_of = r2gen_split()
    annotation: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    dropped, image_jobs, mesh_rows, found = [], [], [], set()
    for path in files:
        report = read_report_xml(path)
        names = [image.rsplit("-", 1)[0] for image in report["images"]]
        study = next((n for n in names if n in split_of), names[0] if names else path.stem)
        found.add(study)
        text = _report_text(report, section)
        reason = _left_out(report, study, text, section, images, split_of)
        if reason:
            dropped.append((study, reason))
            continue
        split = split_of[study]
        views = report["images"][:2]
        paths = [f"{study}/{k}.png" for k in range(2)] if copies else [f"{image}.png" for image in views]
        image_jobs += [(images / f"{image}.png", path) for image, path in zip(views, paths)]
        annotation[split].append({"id": study, "report": text, "image_path": paths, "split": split})
        mesh = report["mesh"] or ["normal"]
        mesh_rows.append([study, split, ";".join(mesh), ";".join(m.split("/")[0] for m in mesh)])
    absent = sorted(set(split_of) - found)
    dropped += [(study, "in R2Gen's split, not in the download") for study in absent]
    return Prepared(
        annotation,
        dropped,
        image_jobs,
        images,
        {reports.name: f"(folder, {len(files)} reports)", images.name: "(folder)"},
        _rules(section, len(absent)),
        (["id", "split", "mesh", "problems"], mesh_rows),
        "mesh_tags.csv",
        "the human MeSH indexing of each kept study (major terms); train the graph stage on it with "
        "`cknet pretrain-graph --labels mesh:OUT/mesh_tags.csv`.",
        [
            "cknet pretrain-graph --data-dir OUT --backbone-weights imagenet \\",
            "    --labels mesh:OUT/mesh_tags.csv --output runs/graph",
            "cknet train --config iu_xray --data-dir OUT --graph-model runs/graph --output runs/iu",
        ],
    )


def _report_text(report: dict, section: str) -> str:
    """The report's section (``both``: findings then impression, whichever it has)."""
    names = ("FINDINGS", "IMPRESSION") if section == "both" else (section.upper(),)
    return " ".join(part for part in (report["sections"].get(n) for n in names) if part)


def _left_out(report: dict, study: str, text: str, section: str, images: Path, split_of: dict) -> str | None:
    """Why a report is left out (outside R2Gen's split, no section, fewer than two views,
    an image file missing), or None when it is kept."""
    if study not in split_of:
        return "outside R2Gen's split"
    if not text:
        return f"the report has no {section} section"
    if len(report["images"]) < 2:
        return f"{len(report['images'])} image(s), two views needed"
    missing = [f"{image}.png" for image in report["images"][:2] if not (images / f"{image}.png").is_file()]
    return f"image file missing: {missing[0]}" if missing else None


def _rules(section: str, absent: int) -> list[str]:
    """What PREPARED.md says was done."""
    return [
        f"- Report: the {section} text of `<AbstractText Label=...>` (label compared in capitals, white "
        f"space collapsed); a report without it is left out.",
        "- Study id: an image id without its last `-NNNN` (R2Gen's ids); split: R2Gen's, shipped with cknet "
        "as ids only; studies outside it are left out.",
        "- Views: the report's first two `<parentImage>`s, in the XML's order (frontal, lateral).",
        f"- {absent} ids of R2Gen's split are not in this download.",
    ]
