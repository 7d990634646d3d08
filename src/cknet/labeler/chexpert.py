"""`CheXpertLabeler`: the 14 CheXpert observations from report text, in pure Python.

Mention extraction, then negation and uncertainty scoped to the clause, as the CheXpert
labeler does (Irvin et al., AAAI 2019), with the rules of `cknet.labeler.rules`; the
phrases are cknet's own. Outputs follow CheXpert: 1 positive, 0 negative, -1 uncertain,
NaN (blank) not mentioned, columns in CheXpert's order. "No Finding" is derived the
CheXpert way: 1 when none of the 12 pathologies (all but "No Finding" and "Support
Devices") is positive or uncertain, blank otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cknet.labeler.rules import Finding, RuleLabeler

OBSERVATIONS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
)

_HEART = (r"(?:heart|cardiac silhouette|cardiac shadow|cardiac contours?|cardiac size)(?: size)?"
          r"(?: (?!not\b|no\b|normal\b|within\b)[\w-]+){0,4} (?:enlarged|large|increased)")

PATTERNS: dict[str, dict[str, list[str]]] = {
    "Enlarged Cardiomediastinum": {"patterns": [
        r"(?:enlarged|widened|wide|prominent) (?:cardio)?mediastin\w*",
        r"mediastinal (?:widening|enlargement|prominence)", r"widening of the mediastinum",
        r"(?:cardio)?mediastinal (?:silhouette|contours?) (?:is |are |appears? )*(?:\w+ )?"
        r"(?:enlarged|widened)",
    ]},
    "Cardiomegaly": {"patterns": [
        r"cardiomegaly", _HEART, r"(?:enlarged|large) (?:heart|cardiac silhouette|cardiac shadow)",
        r"(?:cardiac|heart) enlargement", r"enlargement of the (?:heart|cardiac silhouette)",
        r"(?:increase|enlargement) (?:\w+ ){0,4}(?:heart|cardiac silhouette)",
        r"(?:heart|cardiac silhouette|heart size)(?: is)? (?:borderline|top normal)",
        r"borderline (?:heart size|cardiomegaly|enlarged heart)",
    ]},
    "Lung Lesion": {"patterns": [
        r"nodules?", r"nodular lesions?", r"mass", r"masses",
        r"(?:lung|pulmonary) lesions?", r"tumou?rs?", r"carcinoma", r"neoplasm\w*", r"metasta\w+",
        r"cavitary lesions?",
    ], "exclude": [r"calcified (?:\w+ )?nodules?"]},
    "Lung Opacity": {"patterns": [
        r"opacit\w*", r"opacification", r"infiltrat\w*", r"air ?space (?:disease|process)",
        r"densit(?:y|ies)", r"haz(?:y|iness)", r"ground ?glass", r"consolidat\w*",
    ], "exclude": [r"(?:bone|bony|osseous|soft tissue|breast|nipple) (?:\w+ )?densit(?:y|ies)"]},
    "Edema": {"patterns": [
        r"edema", r"(?:vascular|pulmonary) congestion", r"congestive heart failure", r"chf",
        r"cephaliz\w*", r"kerley", r"fluid overload", r"heart failure",
    ]},
    "Consolidation": {"patterns": [r"consolidat\w*"]},
    "Pneumonia": {"patterns": [r"pneumonias?", r"pneumonitis", r"infectio\w+", r"infectious process"]},
    "Atelectasis": {"patterns": [r"atelecta\w*", r"collapse", r"collapsed"]},
    "Pneumothorax": {"patterns": [r"pneumothora\w*", r"hydropneumothora\w*"]},
    "Pleural Effusion": {"patterns": [
        r"(?:pleural )?effusions?", r"pleural fluid", r"hydropneumothora\w*", r"hydrothorax",
    ], "exclude": [r"pericardial effusions?"]},
    "Pleural Other": {"patterns": [
        r"pleural (?:thickening|scarring|plaques?|calcifications?)", r"pleural-parenchymal scarring",
        r"fibrothorax", r"pleural based (?:thickening|scarring)", r"thickening of the pleura",
    ]},
    "Fracture": {"patterns": [r"fractures?", r"fractured"]},
    "Support Devices": {"patterns": [
        r"catheters?", r"picc", r"(?:central|venous|arterial|jugular|subclavian|femoral) lines?",
        r"(?:endotracheal|tracheostomy|nasogastric|feeding|chest|ng|et|og) tubes?", r"tubes",
        r"pacemakers?", r"pacer", r"(?:pacer|pacemaker|icd) leads?", r"wires?", r"stents?",
        r"(?:chest|port a cath|portacath|mediport) ?port", r"port", r"devices?", r"clips?",
        r"sternotomy", r"prosthe\w+", r"hardware", r"valve replacement", r"drains?",
        r"defibrillator", r"icd", r"generator", r"staples", r"filter", r"cabg",
    ]},
}


class CheXpertLabeler:
    """Label reports for the 14 CheXpert observations.

    Example:
        >>> labeler = CheXpertLabeler()
        >>> row = labeler.label(["No effusion but cardiomegaly is present."])[0]
        >>> names = labeler.observations
        >>> row[names.index("Cardiomegaly")], row[names.index("Pleural Effusion")]
        (1.0, 0.0)
    """

    observations: tuple[str, ...] = OBSERVATIONS

    def __init__(self) -> None:
        findings = [Finding(name, spec["patterns"], spec.get("exclude", ()))
                    for name, spec in PATTERNS.items()]
        self.rules = RuleLabeler(findings)
        self._pathologies = [self.rules.names.index(n) for n in OBSERVATIONS[1:-1]]

    def label(self, reports: Iterable[str]) -> np.ndarray:
        """Label report texts.

        Args:
            reports: raw report texts.

        Returns:
            ``(num_reports, 14)`` float array of 1, 0, -1 and NaN, columns in the order
            of `observations`.

        Raises:
            ValueError: if ``reports`` is one string rather than a list, or a report is
                not a string.
        """
        found = self.rules.label(reports)  # (n, 13) without "No Finding"
        pathologies = found[:, self._pathologies]
        any_finding = ((pathologies == 1) | (pathologies == -1)).any(axis=1)
        no_finding = np.where(any_finding, np.nan, 1.0)
        return np.concatenate([no_finding[:, None], found], axis=1)

    def __call__(self, reports: Iterable[str]) -> np.ndarray:
        return self.label(reports)
