"""Synthetic chest radiographs with known findings, and reports that describe them.

No radiograph collection can be downloaded here, so this is a faithful stand-in for
seeing the whole method work: `render_study` draws a frontal and a lateral view of a
chest (soft tissue, lungs, ribs, spine, heart, diaphragm) whose anatomy, exposure and
noise vary per study, with any of the `FINDINGS` drawn where a radiologist would look
for them; `SyntheticReports` writes a report whose sentences follow the findings (varied
phrasing, normal sentences and negations for absent ones); `SyntheticDataset` serves
both, deterministically per seed.

Images are float32 in [0, 1], bright where tissue attenuates (bone, fluid, devices) and
dark where it does not (air), as radiographs are displayed. "Left" and "right" are the
patient's: the patient's right lung is on the image's left in the frontal view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from cknet.config import CKNetConfig
from cknet.graph import KnowledgeGraph

FINDINGS = (
    "cardiomegaly", "left pleural effusion", "right pleural effusion", "left pneumothorax",
    "right pneumothorax", "left lung opacity", "right lung opacity", "left lung nodule",
    "right lung nodule", "left atelectasis", "right atelectasis", "pulmonary edema",
    "rib fracture", "support devices", "hiatal hernia", "scoliosis", "calcified granuloma",
)
PREVALENCE = {
    "cardiomegaly": 0.25, "pulmonary edema": 0.12, "rib fracture": 0.08, "support devices": 0.15,
    "hiatal hernia": 0.08, "scoliosis": 0.15, "calcified granuloma": 0.15,
}
SIDED_PREVALENCE = {"pleural effusion": 0.12, "pneumothorax": 0.06, "lung opacity": 0.12,
                    "lung nodule": 0.08, "atelectasis": 0.12}


@dataclass
class _Anatomy:
    """Per-study geometry in unit coordinates (0..1 across the image)."""

    lung_top: float
    lung_bottom: float
    lung_width: float
    lung_gap: float
    heart_width: float
    heart_height: float
    exposure: float
    noise: float


def _sample_anatomy(rng: np.random.Generator) -> _Anatomy:
    return _Anatomy(
        lung_top=rng.uniform(0.12, 0.18), lung_bottom=rng.uniform(0.72, 0.8),
        lung_width=rng.uniform(0.26, 0.31), lung_gap=rng.uniform(0.05, 0.08),
        heart_width=rng.uniform(0.3, 0.34), heart_height=rng.uniform(0.14, 0.17),
        exposure=rng.uniform(0.85, 1.15), noise=rng.uniform(0.02, 0.05),
    )


class _Canvas:
    """Coordinate grids of one view, reused by every drawing call."""

    def __init__(self, size: int) -> None:
        axis = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.y, self.x = np.meshgrid(axis, axis, indexing="ij")
        self.size = size

    def ellipse(self, cy: float, cx: float, ry: float, rx: float, soft: float = 0.08) -> np.ndarray:
        """A soft-edged filled ellipse, 1 inside, 0 outside."""
        r = ((self.y - cy) / ry) ** 2 + ((self.x - cx) / rx) ** 2
        return np.clip((1.0 - r) / soft, 0.0, 1.0)

    def blob(self, cy: float, cx: float, radius: float) -> np.ndarray:
        return np.exp(-((self.y - cy) ** 2 + (self.x - cx) ** 2) / (2 * radius**2))

    def line(self, y0: float, x0: float, y1: float, x1: float, width: float) -> np.ndarray:
        """A segment of the given width (unit coordinates), 1 on it."""
        dy, dx = y1 - y0, x1 - x0
        t = np.clip(((self.y - y0) * dy + (self.x - x0) * dx) / (dy * dy + dx * dx), 0.0, 1.0)
        distance = np.hypot(self.y - (y0 + t * dy), self.x - (x0 + t * dx))
        return np.clip(1.0 - distance / width, 0.0, 1.0)


def _frontal(canvas: _Canvas, a: _Anatomy, found: set[str], rng: np.random.Generator) -> np.ndarray:
    y, x = canvas.y, canvas.x
    image = 0.45 * canvas.ellipse(0.5, 0.5, 0.55, 0.47, soft=0.3)  # the body's soft tissue
    spine_shift = 0.04 * np.sin((y - 0.1) * 2 * np.pi) if "scoliosis" in found else 0.0
    image += 0.3 * np.clip(1 - np.abs(x - 0.5 - spine_shift) / 0.035, 0, 1)  # spine
    half = a.lung_gap + a.lung_width / 2
    centres = {"right": 0.5 - half, "left": 0.5 + half}
    cy, ry = (a.lung_top + a.lung_bottom) / 2, (a.lung_bottom - a.lung_top) / 2
    lungs = {side: canvas.ellipse(cy, cx, ry, a.lung_width / 2, soft=0.15) for side, cx in centres.items()}
    for side, lung in lungs.items():
        if f"{side} atelectasis" in found:  # volume loss: a smaller lung
            lung = canvas.ellipse(cy - 0.03, centres[side], ry * 0.85, a.lung_width / 2, soft=0.15)
        image -= 0.42 * lung
        markings = 0.05 * np.sin(y * 60 + x * 25) * lung  # vessels and bronchi
        if f"{side} pneumothorax" in found:  # a collapsed apex: no markings, air, a pleural line
            lateral = np.abs(x - 0.5) > np.abs(centres[side] - 0.5) - 0.02
            apex = lung * (y < a.lung_top + 0.9 * ry) * lateral
            image -= 0.2 * apex
            markings = markings * (1 - apex)
            edge = canvas.line(a.lung_top + 0.05, centres[side], a.lung_top + 0.32, centres[side], 0.006)
            image += 0.25 * edge
        image += markings
    spacing = (a.lung_bottom - a.lung_top) / 8.5  # ribs: bright arcs across both lungs
    phase = (y - a.lung_top - 0.05 - 0.48 * (x - 0.5) ** 2) / spacing
    ribs = np.clip(1 - np.abs(phase - np.round(phase)) * spacing / 0.008, 0, 1)
    across = np.abs(x - 0.5)
    ribs *= (phase > -0.5) & (phase < 7.5) & (across > a.lung_gap) & (across < a.lung_gap + a.lung_width)
    fracture = None
    if "rib fracture" in found:  # the fifth rib of one side displaced at a break
        cx = centres["right" if rng.random() < 0.5 else "left"] + rng.uniform(-0.04, 0.04)
        gap = (np.round(phase) == 4) & (np.abs(x - cx) < 0.05)
        ribs = ribs * ~gap + gap * np.clip(1 - np.abs(phase - 4.35) * spacing / 0.008, 0, 1)
        fracture = (a.lung_top + 0.05 + 0.48 * (cx - 0.5) ** 2 + 4.2 * spacing, cx)
    image += 0.16 * ribs
    if fracture is not None:  # and the bright callus of its healing
        image += 0.45 * canvas.ellipse(*fracture, 0.018, 0.03, soft=0.4)
    width = a.heart_width * (1.35 if "cardiomegaly" in found else 1.0)
    heart_cy = a.lung_bottom - a.heart_height * 0.8
    image += 0.3 * canvas.ellipse(heart_cy, 0.5 + width * 0.15, a.heart_height, width / 2, soft=0.25)
    image += 0.35 * np.clip((y - a.lung_bottom + 0.02 * np.cos((x - 0.5) * 6)) / 0.03, 0, 1)  # diaphragm
    for side, cx in centres.items():
        lung = lungs[side]
        if f"{side} pleural effusion" in found:  # fluid at the base, a meniscus at its top
            level = a.lung_bottom - rng.uniform(0.14, 0.22)
            meniscus = level - 0.05 * np.abs(x - 0.5) * 4
            image += 0.5 * lung * np.clip((y - meniscus) / 0.02, 0, 1)
        if f"{side} lung opacity" in found:  # a patch of airspace disease
            py, px = rng.uniform(cy - ry * 0.4, cy + ry * 0.4), cx + rng.uniform(-0.05, 0.05)
            image += 0.38 * canvas.blob(py, px, rng.uniform(0.05, 0.07)) * lung
        if f"{side} lung nodule" in found:  # a small round density
            py, px = rng.uniform(cy - ry * 0.6, cy + ry * 0.3), cx + rng.uniform(-0.06, 0.06)
            image += 0.5 * canvas.ellipse(py, px, 0.035, 0.035, soft=0.3)
        if f"{side} atelectasis" in found:  # a plate-like band at the base
            band = canvas.line(a.lung_bottom - 0.1, cx - 0.08, a.lung_bottom - 0.12, cx + 0.08, 0.012)
            image += 0.35 * band
    if "pulmonary edema" in found:  # perihilar haze on both sides
        for cx in centres.values():
            image += 0.22 * canvas.blob(cy, 0.5 + (cx - 0.5) * 0.6, 0.09)
    if "calcified granuloma" in found:
        for _ in range(rng.integers(1, 3)):
            side = "right" if rng.random() < 0.5 else "left"
            py, px = rng.uniform(cy - ry * 0.5, cy + ry * 0.5), centres[side] + rng.uniform(-0.07, 0.07)
            image += 0.8 * canvas.ellipse(py, px, 0.022, 0.022, soft=0.4)
    if "hiatal hernia" in found:  # a retrocardiac round lucency with an air-fluid level
        hy = a.lung_bottom - 0.08
        bubble = canvas.ellipse(hy, 0.53, 0.06, 0.06, soft=0.2)
        image += bubble * np.where(y < hy, -0.45, 0.2)
    if "support devices" in found:  # a line to the heart and a pacemaker box
        image += 0.6 * canvas.line(0.12, 0.3, heart_cy, 0.52, 0.005)
        image += 0.7 * canvas.ellipse(0.15, 0.27, 0.025, 0.035, soft=0.2)
    return image


def _lateral(canvas: _Canvas, a: _Anatomy, found: set[str], rng: np.random.Generator) -> np.ndarray:
    y, x = canvas.y, canvas.x
    image = 0.45 * canvas.ellipse(0.5, 0.5, 0.55, 0.45, soft=0.3)
    cy, ry = (a.lung_top + a.lung_bottom) / 2, (a.lung_bottom - a.lung_top) / 2
    lung = canvas.ellipse(cy, 0.5, ry, 0.3, soft=0.15)
    image -= 0.42 * lung
    spine_x = 0.78 + (0.02 * np.sin(y * 9) if "scoliosis" in found else 0.0)
    image += 0.3 * np.clip(1 - np.abs(x - spine_x) / 0.045, 0, 1)
    width = a.heart_width * (1.4 if "cardiomegaly" in found else 1.0)
    heart = canvas.ellipse(a.lung_bottom - a.heart_height * 0.7, 0.38, a.heart_height, width / 1.6, soft=0.25)
    image += 0.3 * heart
    image += 0.35 * np.clip((y - a.lung_bottom) / 0.03, 0, 1)
    if "left pleural effusion" in found or "right pleural effusion" in found:  # posterior sulcus
        fluid = np.clip((y - (a.lung_bottom - 0.12) + 0.25 * (x - 0.7)) / 0.02, 0, 1) * (x > 0.55)
        image += 0.45 * lung * fluid
    if "hiatal hernia" in found:
        bubble = canvas.ellipse(a.lung_bottom - 0.08, 0.58, 0.05, 0.05, soft=0.2)
        image += bubble * np.where(y < a.lung_bottom - 0.08, -0.3, 0.15)
    if "pulmonary edema" in found:
        image += 0.18 * canvas.blob(cy, 0.5, 0.1)
    if "support devices" in found:
        image += 0.6 * canvas.line(0.1, 0.35, a.lung_bottom - 0.15, 0.42, 0.005)
    for side in ("left", "right"):
        if f"{side} lung opacity" in found:
            image += 0.3 * canvas.blob(rng.uniform(cy - 0.1, cy + 0.1), rng.uniform(0.4, 0.6), 0.06) * lung
    return image


def render_study(
    findings: Sequence[str], seed: int, size: int = 224, views: int = 2
) -> np.ndarray:
    """Draw one study.

    Args:
        findings: names from `FINDINGS` present in the study.
        seed: seeds the anatomy, exposure, noise and the findings' placement.
        size: side of each view in pixels.
        views: 2 (frontal, lateral) or 1 (frontal).

    Returns:
        ``(views, size, size)`` float32 in [0, 1].

    Raises:
        ValueError: for an unknown finding or a view count other than 1 or 2.
    """
    unknown = sorted(set(findings) - set(FINDINGS))
    if unknown:
        raise ValueError(f"unknown findings {unknown}; known: {', '.join(FINDINGS)}")
    if views not in (1, 2):
        raise ValueError(f"views must be 1 or 2, got {views}")
    # Separate streams: adding a finding changes neither the anatomy nor the noise.
    anatomy = _sample_anatomy(np.random.default_rng([seed, 0]))
    canvas = _Canvas(size)
    found = set(findings)
    drawn = [_frontal(canvas, anatomy, found, np.random.default_rng([seed, 1]))]
    if views == 2:
        drawn.append(_lateral(canvas, anatomy, found, np.random.default_rng([seed, 2])))
    out = np.stack(drawn) * anatomy.exposure + 0.15
    out += np.random.default_rng([seed, 3]).normal(0.0, anatomy.noise, out.shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


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


# MeSH head terms of the IU X-Ray indexing (mesh_tags.csv) drawn as each finding; sided
# findings take their side from the tag's qualifiers.
_MESH_FINDINGS = {
    "Cardiomegaly": "cardiomegaly",
    "Pleural Effusion": "pleural effusion", "Pneumothorax": "pneumothorax",
    "Opacity": "lung opacity", "Airspace Disease": "lung opacity", "Consolidation": "lung opacity",
    "Pneumonia": "lung opacity", "Infiltrate": "lung opacity",
    "Nodule": "lung nodule", "Mass": "lung nodule", "Pulmonary Atelectasis": "atelectasis",
    "Pulmonary Edema": "pulmonary edema", "Pulmonary Congestion": "pulmonary edema",
    "Heart Failure": "pulmonary edema", "Fractures, Bone": "rib fracture",
    "Catheters, Indwelling": "support devices", "Surgical Instruments": "support devices",
    "Implanted Medical Device": "support devices", "Medical Device": "support devices",
    "Tube, Inserted": "support devices", "Stents": "support devices",
    "Hernia, Hiatal": "hiatal hernia",
    "Scoliosis": "scoliosis", "Spondylosis": "scoliosis", "Kyphosis": "scoliosis",
    "Osteophyte": "scoliosis",
    "Calcified Granuloma": "calcified granuloma", "Granulomatous Disease": "calcified granuloma",
    "Granuloma": "calcified granuloma",
}


def findings_from_mesh(tags: str) -> list[str]:
    """The renderer's findings for a study's MeSH indexing, as in IU X-Ray's
    ``mesh_tags.csv`` (``"Cardiomegaly/mild;Pleural Effusion/left"``, or ``"normal"``).

    A tag's head term picks the finding (opacity, airspace disease, consolidation,
    pneumonia and infiltrate are drawn as lung opacity; nodule and mass as a nodule;
    congestion and heart failure as edema; devices, catheters, tubes and stents as
    support devices; degenerative spine, spondylosis, kyphosis and osteophytes as the
    spine finding; granulomatous disease and lung calcinosis as calcified granuloma).
    A sided finding is drawn on the side its qualifiers name, on both sides for
    "bilateral" or no side. Tags with no drawable counterpart are dropped.

    Args:
        tags: the ``mesh`` column of one study.

    Returns:
        Finding names in `FINDINGS` order.
    """
    found = set()
    for tag in tags.split(";"):
        head, *qualifiers = [part.strip() for part in tag.split("/")]
        words = {q.lower() for q in qualifiers}
        if head in ("Thoracic Vertebrae", "Spine") and "degenerative" in words:
            head = "Spondylosis"
        if head == "Calcinosis" and "lung" in words:
            head = "Calcified Granuloma"
        finding = _MESH_FINDINGS.get(head)
        if finding is None:
            continue
        if finding in FINDINGS:
            found.add(finding)
            continue
        sides = [s for s in ("left", "right") if s in words] or ["left", "right"]
        found.update(f"{side} {finding}" for side in sides)
    return [f for f in FINDINGS if f in found]


def synthetic_graph() -> KnowledgeGraph:
    """The knowledge graph of the synthetic findings: one node per `FINDINGS` entry,
    joined where findings go together (the two sides of a finding; effusion, opacity
    and atelectasis of one side; heart failure's cardiomegaly, edema and effusions;
    nodule and granuloma; fracture and pneumothorax; a hernia and the basal collapse
    beside it)."""
    edges = [(f"left {name}", f"right {name}") for name in SIDED_PREVALENCE]
    for side in ("left", "right"):
        edges += [(f"{side} pleural effusion", f"{side} atelectasis"),
                  (f"{side} lung opacity", f"{side} atelectasis"),
                  (f"{side} pleural effusion", "cardiomegaly"),
                  (f"{side} pleural effusion", "pulmonary edema"),
                  (f"{side} lung nodule", "calcified granuloma"),
                  (f"{side} pneumothorax", "rib fracture")]
    edges += [("cardiomegaly", "pulmonary edema"), ("support devices", "cardiomegaly"),
              ("scoliosis", "rib fracture"), ("hiatal hernia", "left atelectasis")]
    return KnowledgeGraph(list(FINDINGS), edges, name="synthetic17",
                          source="cknet.data.synthetic: findings the renderer draws")


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


class SyntheticDataset(Dataset):
    """Rendered studies with their reports and finding labels, deterministic per seed.

    Items are dicts like `cknet.data.AnnotationDataset`'s: ``id``, ``images``
    ``(V, 3, S, S)`` normalised with the config, ``report``, ``labels`` ``(17,)``.

    Args:
        count: number of studies.
        config: image size, views and normalisation.
        seed: study i is drawn from a generator seeded with ``(seed, i)``.
        blank: draw empty images (the same reports): a control for "does the model read
            the images".
        reports: the finding sampler and report writer (default `SyntheticReports()`).
        keep_rendered: keep each study's views in memory once drawn (``V * S * S * 4``
            bytes per study), so that later epochs do not draw them again.
    """

    def __init__(self, count: int, config: CKNetConfig, seed: int = 0, blank: bool = False,
                 reports: SyntheticReports | None = None, keep_rendered: bool = False) -> None:
        self.count, self.config, self.seed, self.blank = count, config, seed, blank
        self.keep_rendered = keep_rendered
        self.rendered: dict[int, np.ndarray] = {}
        self.reports = reports if reports is not None else SyntheticReports()
        self.findings = [self.reports.sample(np.random.default_rng((seed, i, 0))) for i in range(count)]
        self.texts: list[str] | None = None
        self.ids: list[str] | None = None

    @classmethod
    def from_studies(
        cls,
        findings: Sequence[Sequence[str]],
        reports: Sequence[str],
        config: CKNetConfig,
        seed: int = 0,
        ids: Sequence[str] | None = None,
        blank: bool = False,
        keep_rendered: bool = False,
    ) -> SyntheticDataset:
        """Render given studies beside given reports, e.g. real reports with
        `findings_from_mesh` of their indexing.

        Args:
            findings: per study, the names from `FINDINGS` to draw.
            reports: per study, the report served with it.
            config: image size, views and normalisation.
            seed: seeds the rendering (study i with ``seed * 1_000_003 + i``).
            ids: per study, its id (default ``synthetic-SEED-I``).
            blank: draw empty images instead.
            keep_rendered: keep each study's views in memory once drawn.

        Returns:
            The dataset.

        Raises:
            ValueError: for lists of different lengths or an unknown finding.
        """
        if len(findings) != len(reports) or (ids is not None and len(ids) != len(reports)):
            raise ValueError(
                f"findings ({len(findings)}), reports ({len(reports)})"
                f"{'' if ids is None else f' and ids ({len(ids)})'} must have one entry per study"
            )
        unknown = sorted({f for study in findings for f in study} - set(FINDINGS))
        if unknown:
            raise ValueError(f"unknown findings {unknown}; known: {', '.join(FINDINGS)}")
        data = cls(0, config, seed, blank, keep_rendered=keep_rendered)
        data.count, data.findings, data.texts = len(reports), [list(f) for f in findings], list(reports)
        data.ids = None if ids is None else list(ids)
        return data

    def __len__(self) -> int:
        return self.count

    def report(self, index: int) -> str:
        """A study's report, without rendering its images.

        Args:
            index: the study.
        """
        if self.texts is not None:
            return self.texts[index]
        return SyntheticReports.write(self.findings[index], np.random.default_rng((self.seed, index, 1)))

    def label_matrix(self) -> np.ndarray:
        """``(count, 17)`` labels without rendering any image."""
        return np.stack([SyntheticReports.labels(f) for f in self.findings])

    def render(self, index: int) -> np.ndarray:
        """A study's views as `render_study` draws them (grey 0.5 when ``blank``).

        Args:
            index: the study.

        Returns:
            ``(V, S, S)`` float32 in [0, 1].
        """
        if index in self.rendered:
            return self.rendered[index]
        size, views = self.config.image_size, self.config.num_views
        if self.blank:
            pixels = np.full((views, size, size), 0.5, dtype=np.float32)
        else:
            pixels = render_study(self.findings[index], seed=self.seed * 1_000_003 + index, size=size,
                                  views=views)
        if self.keep_rendered:
            self.rendered[index] = pixels
        return pixels

    def __getitem__(self, index: int) -> dict:
        pixels = self.render(index)
        mean = torch.tensor(self.config.image_mean)[None, :, None, None]
        std = torch.tensor(self.config.image_std)[None, :, None, None]
        images = (torch.from_numpy(pixels)[:, None].expand(-1, 3, -1, -1) - mean) / std
        study_id = self.ids[index] if self.ids is not None else f"synthetic-{self.seed}-{index}"
        return {"id": study_id, "images": images.float(),
                "report": self.report(index),
                "labels": torch.from_numpy(SyntheticReports.labels(self.findings[index]))}
