"""Report labelers: finding labels (1 / 0 / -1 / NaN) from report text.

- `CheXpertLabeler`: the 14 CheXpert observations by the CheXpert labeler's conventions;
- `CheXbertLabeler`: the published CheXbert model, from its checkpoint;
- `CsvLabeler`: labels another labeler wrote to a CSV file; `make_labeler` picks one by
  name (``--labeler``);
- `KeywordLabeler`: the nodes of any knowledge graph; `RuleLabeler`, `Finding`: the rules.
"""

from typing import Any

from cknet.labeler.chexpert import OBSERVATIONS, CheXpertLabeler
from cknet.labeler.choose import CsvLabeler, make_labeler
from cknet.labeler.keyword import KeywordLabeler
from cknet.labeler.rules import Finding, RuleLabeler, binarize

__all__ = ["OBSERVATIONS", "CheXbertLabeler", "CheXpertLabeler", "CsvLabeler", "Finding", "KeywordLabeler",
           "RuleLabeler", "binarize", "make_labeler"]


def __getattr__(name: str) -> Any:
    # CheXbertLabeler needs torch and transformers: imported on first use only.
    if name == "CheXbertLabeler":
        from cknet.labeler.chexbert import CheXbertLabeler

        return CheXbertLabeler
    raise AttributeError(f"module 'cknet.labeler' has no attribute {name!r}")
