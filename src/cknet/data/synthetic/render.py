"""`render_study`: radiograph-like frontal and lateral views of a chest with given findings.

Soft tissue, lungs, ribs, spine, heart and diaphragm, whose anatomy, exposure and noise
vary per study, with any of the `FINDINGS` drawn where a radiologist would look for
them. Images are float32 in [0, 1], bright where tissue attenuates (bone, fluid,
devices) and dark where it does not (air), as radiographs are displayed. "Left" and
"right" are the patient's: the patient's right lung is on the image's left in the
frontal view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cknet.data.synthetic.findings import FINDINGS


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
    image = _frontal_lungs(image, canvas, a, found, centres, lungs)
    image = _frontal_ribs(image, canvas, a, found, centres, rng)
    width = a.heart_width * (1.35 if "cardiomegaly" in found else 1.0)
    heart_cy = a.lung_bottom - a.heart_height * 0.8
    image += 0.3 * canvas.ellipse(heart_cy, 0.5 + width * 0.15, a.heart_height, width / 2, soft=0.25)
    image += 0.35 * np.clip((y - a.lung_bottom + 0.02 * np.cos((x - 0.5) * 6)) / 0.03, 0, 1)  # diaphragm
    image = _frontal_densities(image, canvas, a, found, centres, lungs, rng)
    if "support devices" in found:  # a line to the heart and a pacemaker box
        image += 0.6 * canvas.line(0.12, 0.3, heart_cy, 0.52, 0.005)
        image += 0.7 * canvas.ellipse(0.15, 0.27, 0.025, 0.035, soft=0.2)
    return image


def _frontal_lungs(image: np.ndarray, canvas: _Canvas, a: _Anatomy, found: set[str],
                   centres: dict[str, float],
                   lungs: dict[str, np.ndarray]) -> np.ndarray:
    """The dark lungs with their markings; atelectasis (a smaller lung) and pneumothorax
    (a collapsed apex with a pleural line) change them."""
    y, x = canvas.y, canvas.x
    cy, ry = (a.lung_top + a.lung_bottom) / 2, (a.lung_bottom - a.lung_top) / 2
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
    return image


def _frontal_ribs(image: np.ndarray, canvas: _Canvas, a: _Anatomy, found: set[str], centres: dict[str, float],
                  rng: np.random.Generator) -> np.ndarray:
    """Bright rib arcs across both lungs; a rib fracture displaces the fifth rib of one
    side at a break, with the bright callus of its healing."""
    y, x = canvas.y, canvas.x
    spacing = (a.lung_bottom - a.lung_top) / 8.5
    phase = (y - a.lung_top - 0.05 - 0.48 * (x - 0.5) ** 2) / spacing
    ribs = np.clip(1 - np.abs(phase - np.round(phase)) * spacing / 0.008, 0, 1)
    across = np.abs(x - 0.5)
    ribs *= (phase > -0.5) & (phase < 7.5) & (across > a.lung_gap) & (across < a.lung_gap + a.lung_width)
    fracture = None
    if "rib fracture" in found:
        cx = centres["right" if rng.random() < 0.5 else "left"] + rng.uniform(-0.04, 0.04)
        gap = (np.round(phase) == 4) & (np.abs(x - cx) < 0.05)
        ribs = ribs * ~gap + gap * np.clip(1 - np.abs(phase - 4.35) * spacing / 0.008, 0, 1)
        fracture = (a.lung_top + 0.05 + 0.48 * (cx - 0.5) ** 2 + 4.2 * spacing, cx)
    image += 0.16 * ribs
    if fracture is not None:
        image += 0.45 * canvas.ellipse(*fracture, 0.018, 0.03, soft=0.4)
    return image


def _frontal_densities(image: np.ndarray, canvas: _Canvas, a: _Anatomy, found: set[str],
                       centres: dict[str, float], lungs: dict[str, np.ndarray], rng: np.random.Generator
                       ) -> np.ndarray:
    """The findings drawn inside the lungs and below them: effusion, opacity, nodule,
    atelectasis's band per side, then edema, granulomas and a hiatal hernia."""
    y, x = canvas.y, canvas.x
    cy, ry = (a.lung_top + a.lung_bottom) / 2, (a.lung_bottom - a.lung_top) / 2
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
