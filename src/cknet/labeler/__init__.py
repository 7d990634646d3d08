"""Rule-based report labelers: finding labels (1 / 0 / -1 / NaN) from report text."""

from cknet.labeler.chexpert import OBSERVATIONS, CheXpertLabeler
from cknet.labeler.keyword import KeywordLabeler
from cknet.labeler.rules import Finding, RuleLabeler, binarize

__all__ = ["OBSERVATIONS", "CheXpertLabeler", "Finding", "KeywordLabeler", "RuleLabeler", "binarize"]
