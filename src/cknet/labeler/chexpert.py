"""`CheXpertLabeler`: the 14 CheXpert observations from report text, in pure Python.

It follows the published conventions of the CheXpert labeler (Irvin et al., AAAI 2019;
``stanfordmlgroup/chexpert-labeler``), written as cknet's own regular expressions and
rules (`cknet.labeler.rules`): the same mentions and unmentions per observation, a
mention counts unless negated or uncertain, and the report's label per observation is
1 if any mention is positive, else -1 if any is uncertain, else 0 if any is negated,
else blank (NaN). Columns in CheXpert's order.

Papers score clinical efficacy with CheXbert (Smit et al., EMNLP 2020), a BERT model
trained on the CheXpert labeler's output and then on radiologists' labels. Where the
two read a report differently, the default ``convention="chexbert"`` follows CheXbert;
``convention="chexpert"`` keeps the CheXpert labeler's reading. They differ in two
places (``docs/evaluation.md`` gives the agreement of each with CheXbert):

- **A structure called stable**: "stable cardiomediastinal silhouette", "heart size is
  unchanged", "the heart and lungs have XXXX XXXX" (IU X-Ray's de-identification hid the
  qualifier). The CheXpert labeler calls it uncertain (-1), which the field's CE scripts
  count as positive; CheXbert, like a radiologist, reads an unchanged silhouette as not
  enlarged (0) unless the clause also calls it enlarged ("stable enlargement of the
  cardiac silhouette" stays 1).
- **No Finding**: CheXbert's is 1 when none of the 12 abnormal observations is positive
  or uncertain (Support Devices aside), whatever else the report names; the CheXpert
  labeler also requires that no other abnormality it lists (`OTHER_FINDINGS`:
  granuloma, calcification, scoliosis, degenerative change, hernia, emphysema, ...) is
  mentioned, and leaves the column blank otherwise.

What both decide, for the cases that decide most reports:

- **Structures**: "the heart", "heart size", "cardiac silhouette" (Cardiomegaly) and
  "mediastinum", "cardiomediastinal silhouette", "contour" (Enlarged Cardiomediastinum)
  are mentions: normal, unremarkable or within normal limits -> 0; borderline -> -1;
  otherwise (e.g. "the heart is enlarged") -> 1. Mediastinal or hilar adenopathy,
  fullness, mass or prominence is Enlarged Cardiomediastinum. Heart failure or CHF, positive or
  uncertain, also makes Cardiomegaly uncertain.
- **Lung Opacity**: opacity, infiltrate, airspace disease, increased density, interstitial
  markings or pattern, reticular markings, peribronchial or wall thickening, and scar or
  scarring ("pleural scarring" is Pleural Other); not consolidation (its own column),
  not a plain "density", haze or ground glass.
- **Lung Lesion**: mass, nodule, nodular density or opacity, lump, cavitary lesion,
  carcinoma, neoplasm, tumor; not a calcified nodule, not a granuloma.
- **Pneumonia**: pneumonia, infection, infectious process; "airspace disease" is Lung
  Opacity only. **Edema**: edema, heart failure, CHF, vascular or pulmonary congestion,
  indistinctness, vascular prominence. **Pleural Other**: pleural thickening or scar
  (also "pleural-parenchymal scarring"), fibrothorax, fibrosis. **Pneumothorax**: also
  hydro- and hemopneumothorax. **Fracture**: any fracture, old or healed included.
- **Support Devices**: lines, tubes, catheters, PICC, pacemakers and pacers, ICDs and
  AICDs, defibrillators, valves, hardware, plates, screws, drains, coils, markers,
  cannulas, arthroplasty, support apparatus or equipment, Mediports; not sternotomy
  wires, surgical clips, stents or a catheter named only by its position ("right IJ").

Where cknet deliberately differs from both (the CheXpert labeler's phrases are matched as
plain substrings): cknet matches whole words, so "tuberculosis" is no tube,
"plate-like atelectasis" no plate, "outlines" no lines and "findings support" no
support device; and its negation and uncertainty rules are patterns over the clause,
not a dependency parse or a neural network. See ``docs/evaluation.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cknet.labeler.rules import NEGATIVE, UNCERTAIN, Finding, RuleLabeler

OBSERVATIONS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
)
# "over the heart", "in the left mediastinum": a place, not the structure.
_POSITIONAL = r"(?:over|overlying|overly|in) the (?:superior |left |right )?"

PATTERNS: dict[str, dict[str, list[str]]] = {
    "Enlarged Cardiomediastinum": {
        "patterns": [r"(?:enlarged|widened|wide) (?:cardio)?mediastin\w*", r"mediastinal widening",
                     r"(?:mediastinal|hilar|paratracheal) (?:lymph)?adenopathy",
                     r"(?:mediastinal|hilar) fullness",
                     r"mediastinal (?:mass|prominence)", r"prominence of the mediastinum"],
        "structures": [r"(?:cardio)?mediastinum", r"contours?",
                       r"(?:cardio)?mediastinal (?:configuration|silhouette)", r"pericardial silhouette",
                       r"cardiac silhouette and vascularity"],
        "exclude": [_POSITIONAL + r"(?:(?:cardio)?mediastinum|contours?|(?:cardio)?mediastinal \w+)",
                    r"cardiac contours?", r"contour (?:deformity|abnormality|irregularity)",
                    r"(?:rib|osseous|bony|(?:hemi)?diaphragm(?:atic)?) contours?"],
    },
    "Cardiomegaly": {
        "patterns": [r"cardiomegaly", r"cardiac enlargement", r"enlarged heart"],
        "structures": [r"the heart", r"heart size", r"cardiac (?:size|shadow|contours?|silhouette)"],
        "exclude": [_POSITIONAL + r"(?:heart|cardiac \w+)"],
    },
    "Lung Lesion": {
        "patterns": [r"mass(?:es)?", r"nodular (?:densit(?:y|ies)|opacit(?:y|ies)|opacification)",
                     r"nodules?", r"lumps?", r"cavitary lesions?", r"carcinoma", r"neoplasms?", r"tumou?rs?"],
        "exclude": [r"calcified (?:\w+ )?nodul\w*"],
    },
    "Lung Opacity": {
        "patterns": [r"opaci\w*", r"decreased translucency", r"increased densit(?:y|ies)",
                     r"air[ -]?space (?:disease|process)", r"infiltrat\w*",
                     r"interstitial (?:marking|pattern|lung)\w*",
                     r"reticular (?:pattern|marking)s?", r"reticulations?", r"parenchymal scar\w*",
                     r"peribronchial thickening", r"wall thickening", r"scar\w*"],
        "exclude": [r"pleural (?:\w+ )?scar\w*", r"pleur(?:o-?|al-)(?:parenchymal|pericardial) scar\w*",
                    r"nodular opaci\w*"],
    },
    "Edema": {"patterns": [r"edema", r"heart failure", r"chf", r"(?:vascular|pulmonary) congestion",
                           r"indistinctness", r"vascular prominence"]},
    "Consolidation": {"patterns": [r"consolidat\w*"]},
    "Pneumonia": {"patterns": [r"pneumonias?", r"infections?", r"infectious(?: process)?"]},
    "Atelectasis": {"patterns": [r"atelecta\w*", r"collapse\w*"]},
    "Pneumothorax": {"patterns": [r"(?:hydro|hemo)?pneumothora(?:x|ces)"]},
    "Pleural Effusion": {"patterns": [r"pleural fluid", r"effusions?"],
                         "exclude": [r"pericardial effusions?"]},
    "Pleural Other": {"patterns": [
        r"pleural thickening", r"fibrosis", r"fibrothorax", r"pleural (?:\w+ )?scar\w*",
        r"pleur(?:o-?|al-)(?:parenchymal|pericardial) scar\w*",
    ]},
    "Fracture": {"patterns": [r"fractures?", r"fractured"]},
    "Support Devices": {"patterns": [
        r"pacers?", r"lines?", r"piccs?", r"tubes?", r"valves?", r"catheters?", r"pacemakers?",
        r"hardware", r"arthroplast\w*", r"markers?", r"a?icds?", r"defib\w*", r"devices?", r"drains?",
        r"plates?", r"screws?",
        r"cannulas?", r"apparatus", r"coils?", r"support (?:devices?|lines?|tubes?|apparatus|equipment)",
        r"equipment", r"mediports?",
    ], "exclude": [r"plate-like"]},
}
# Abnormalities outside the 13 observations that still make a report not "No Finding"
# (the CheXpert labeler's list for it).
OTHER_FINDINGS = [
    r"emphysema\w*", r"blunt\w*", r"densit(?:y|ies)", r"elevat\w*", r"eventration", r"scoliosis",
    r"degenera\w*", r"calcifi\w*", r"hyperinflat\w*", r"bronchospasm", r"asthma", r"hernias?", r"copd",
    r"interstitial markings?", r"plaques?", r"osteophyt\w*", r"aortic disease", r"bronchiolitis",
    r"airways? disease", r"thickening", r"cephaliz\w*", r"aspiration", r"bullae", r"contusions?",
    r"atherosclero\w*", r"osteopenia", r"metasta\w*", r"granulomas?", r"granulomatous", r"pneumomediastinum",
    r"pneumoperitoneum", r"osteodystrophy", r"cuffing", r"irregular lucency", r"inflam\w*", r"fissures?",
    r"hypertension", r"prominen\w*", r"kyphosis", r"hyperexpan\w*", r"bullets?", r"reticula\w*",
    r"thoracentesis", r"bronchitis", r"volume loss", r"deformit\w*", r"hemorrhage", r"hematoma",
    r"radiopaque", r"aerophagia", r"arthropath\w*", r"tracheostomy",
]
_OTHER = "Other finding"


class CheXpertLabeler:
    """Label reports for the 14 CheXpert observations (see the module docstring).

    Args:
        convention: ``"chexbert"`` (default: read as CheXbert does, what papers report)
            or ``"chexpert"`` (the CheXpert labeler's reading of stable structures and of
            No Finding).

    Raises:
        ValueError: for another convention.

    Example:
        ```python
        labeler = CheXpertLabeler()
        row = labeler.label(["No effusion but cardiomegaly is present."])[0]
        row[labeler.observations.index("Cardiomegaly")]   # 1.0
        row[labeler.observations.index("Pleural Effusion")]   # 0.0
        ```
    """

    observations: tuple[str, ...] = OBSERVATIONS
    conventions: tuple[str, ...] = ("chexbert", "chexpert")

    def __init__(self, convention: str = "chexbert") -> None:
        if convention not in self.conventions:
            raise ValueError(f"convention must be one of {self.conventions}, got {convention!r}")
        self.convention = convention
        findings = [Finding(name, spec["patterns"], spec.get("exclude", ()), spec.get("structures", ()))
                    for name, spec in PATTERNS.items()]
        if convention == "chexpert":
            findings.append(Finding(_OTHER, OTHER_FINDINGS))
        stable = UNCERTAIN if convention == "chexpert" else NEGATIVE
        self.rules = RuleLabeler(findings, stable_structures=stable)
        names = self.rules.names
        self._columns = [names.index(n) for n in OBSERVATIONS[1:]]
        self._abnormal = [names.index(n) for n in names if n != "Support Devices"]
        self._cardiomegaly, self._edema = names.index("Cardiomegaly"), names.index("Edema")
        self._heart_failure = RuleLabeler([Finding("heart failure", [r"heart failure", r"chf"])])

    def label(self, reports: Iterable[str]) -> np.ndarray:
        """Label report texts.

        Args:
            reports: raw report texts.

        Returns:
            ``(num_reports, 14)`` float array of 1, 0, -1 and NaN, columns in the order
            of `observations`. No Finding is 1 or blank.

        Raises:
            ValueError: if ``reports`` is one string rather than a list, or a report is
                not a string.
        """
        reports = self._checked(reports)
        found = self.rules.label(reports)  # (n, 13 [+ other findings])
        # CheXpert: heart failure, positive or uncertain, makes cardiomegaly uncertain too.
        failure = self._heart_failure.label(reports)[:, 0]
        raise_to_uncertain = ((failure == 1) | (failure == -1)) & ~(found[:, self._cardiomegaly] == 1)
        found[raise_to_uncertain, self._cardiomegaly] = -1
        abnormal = found[:, self._abnormal]
        any_finding = ((abnormal == 1) | (abnormal == -1)).any(axis=1)
        no_finding = np.where(any_finding, np.nan, 1.0)
        return np.concatenate([no_finding[:, None], found[:, self._columns]], axis=1)

    @staticmethod
    def _checked(reports: Iterable[str]) -> list[str]:
        if isinstance(reports, str):
            raise ValueError("reports must be a list of report texts, not one string")
        return list(reports)

    def __call__(self, reports: Iterable[str]) -> np.ndarray:
        """`label`.

        Args:
            reports: raw report texts.
        """
        return self.label(reports)
