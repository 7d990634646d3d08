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

from cknet.data.synthetic.dataset import SyntheticDataset
from cknet.data.synthetic.findings import (
    FINDINGS,
    PREVALENCE,
    SIDED_PREVALENCE,
    findings_from_mesh,
    synthetic_graph,
)
from cknet.data.synthetic.render import render_study
from cknet.data.synthetic.reports import SyntheticReports

__all__ = [
    "FINDINGS",
    "PREVALENCE",
    "SIDED_PREVALENCE",
    "SyntheticDataset",
    "SyntheticReports",
    "findings_from_mesh",
    "render_study",
    "synthetic_graph",
]
