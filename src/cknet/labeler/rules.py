"""A rule-based finding labeler for report text: mentions, then negation and uncertainty.

The approach of the CheXpert labeler, without its parser:

1. **Mention extraction**: each finding has regular-expression patterns, matched on
   whole words of the lower-cased report; matches overlapping one of the finding's
   exclusion patterns (e.g. "calcified granuloma" for aortic calcinosis) are dropped.
2. **Classification** of each mention within its scope: the part of its clause (a
   sentence cut at "but", "however", "although", ...) after the last scope breaker
   ("there is", "with", ...) before it, and a few words after it. *Uncertain* when
   hedged ("cannot be excluded", "cannot rule out"); else *negative* when a negation
   cue precedes it ("no", "without", "free of", "negative for", "within normal limits",
   ...) or follows it ("is not seen", "has resolved"), so "no opacity to suggest
   pneumonia" is negative, or when it is called normal as the CheXpert labeler reads
   "normal" ("normal heart size", "the heart is normal in size", "within normal limits",
   "upper limits of normal"); else *uncertain* when an uncertainty cue surrounds it
   ("may", "possible", "suggestive of", ...) or it is one of alternatives ("atelectasis
   or scarring", "versus"), or when it names a structure (a `Finding`'s ``structures``:
   "heart size", "cardiomediastinal silhouette") called borderline, or called stable, unchanged or
   similar to before (`RuleLabeler`'s ``stable_structures``: uncertain as the CheXpert
   labeler reads it, negative as CheXbert does unless the clause also calls it enlarged);
   else *positive*. Phrases such as "no change in"
   are not negations.
3. **Aggregation** per report and finding, as CheXpert does: 1 if any mention is
   positive, else -1 if any is uncertain, else 0 if any is negative, else NaN (not
   mentioned).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0

_SENTENCE_SPLIT = re.compile(r"(?<!\d)[.;!?\n]+(?!\d)|\s-\s")
_CLAUSE_SPLIT = re.compile(
    r"\b(?:but|however|although|though|whereas|except|aside from|apart from|"
    r"(?<!is )(?<!are )(?<!appears )(?<!appear )otherwise|with the exception of)\b"
)

PRE_NEGATION = (
    r"no", r"not", r"without", r"free of", r"negative for", r"clear of", r"absence of",
    r"within normal limits?",
    r"absent", r"resolution of", r"resolved", r"rather than", r"ruled out", r"rule out",
    r"no evidence of", r"no signs? of", r"nor", r"neither", r"removal of", r"removed",
    r"never", r"denies", r"declined", r"lack of", r"none",
)
POST_NEGATION = (
    r"(?:is|are|was|were|has been|have been)? ?(?:not|no longer) (?:seen|identified|present|"
    r"visualized|evident|demonstrated|appreciated|noted|visible|detected|apparent|"
    r"definitely seen|clearly seen)",
    r"(?:has|have)? ?(?:resolved|cleared|been removed)", r"(?:is|are) absent",
    r"(?:is|are|was|were) not (?:\w+ )?(?:enlarged|widened|increased|present)",
    r"(?:is|are) negative", r"free", r"(?:is|are) gone",
)
PSEUDO_NEGATION = (
    r"no (?:significant |interval |definite |substantial |appreciable )?(?:change|changes|"
    r"increase|decrease|worsening|progression|enlargement)(?: in| of)?",
    r"not (?:significantly )?(?:changed|increased|decreased|worsened)",
    r"without (?:any |significant |interval |significant interval )?(?:change|changes)(?: in| of)?",
    r"not only", r"no longer (?:enlarged|elevated)",
)
# "Cannot be excluded" contains a negation but means uncertain: checked first.
PRE_HEDGE = (
    r"(?:cannot|can not|could not|can't|not) (?:entirely |completely )?(?:exclude|rule out)",
)
POST_HEDGE = (
    r"(?:cannot|can not|could not|can't) be (?:entirely |completely )?(?:excluded|ruled out)",
    r"(?:is|are)? ?not (?:entirely |completely )?(?:excluded|ruled out)",
)
PRE_UNCERTAINTY = (
    r"may", r"might", r"possible", r"possibly", r"probable", r"probably", r"likely",
    r"questionable", r"question of", r"suspicious for", r"suspicious of", r"suspected",
    r"suggestive of", r"suggests?", r"suggesting", r"concerning for", r"concern for",
    r"consider", r"considered", r"could", r"differential", r"equivocal", r"(?<!age-)indeterminate",
    r"uncertain", r"presumed", r"presumably", r"favou?r",
)
POST_UNCERTAINTY = (r"(?:is|are)? ?(?:possible|suspected|questioned)",)
# Alternatives ("atelectasis or scarring") are uncertain unless negated ("no effusion or
# pneumothorax"), so these weak cues are checked after negation.
WEAK_UNCERTAINTY = (r"or", r"versus", r"vs", r"\?")
# "Normal" negates a mention it qualifies (CheXpert's amod/nsubj rules for normal and
# unremarkable): a few words before it, or as what the mention is said to be.
NEAR_NORMAL = r"\b(?:normal|unremarkable)(?:\s+[\w-]+){0,2}\s*$"
SAID_NORMAL = (r"(?:(?:is|are|appears?|remains?|looks?|seems?|was|were)\s+)?(?:otherwise\s+|again\s+|now\s+)?"
               r"(?:(?:top|upper|high|low)[\s-]+)?(?:normal|unremarkable|clear|within normal limits?|"
               r"(?:at\s+)?(?:the\s+)?upper limits? of normal)")
# A structure called borderline is uncertain. One called stable, unchanged or similar
# to before, or whose qualifier IU X-Ray's de-identification hid ("the heart and lungs
# have XXXX XXXX"), is uncertain by the CheXpert labeler's post-negation rules for the
# heart and the mediastinum, and not enlarged by CheXbert's reading, unless the clause
# also calls it enlarged ("stable enlargement of the cardiac silhouette").
# "borderline" next to the structure: a few words before it, or what it is said to be.
NEAR_BORDERLINE = r"\bborderline(?:\s+[\w-]+){0,2}\s*$"
SAID_BORDERLINE = r"^\W*(?:size\s+)?(?:(?:is|are|appears?|remains?)\s+)?(?:\w+\s+)?borderline\b"
STABLE = (r"(?:stable|unchanged|similar|not (?:significantly )?changed|"
          r"no (?:significant )?change|(?:have |has )?x{2,})")
ENLARGED = r"(?:enlarg\w*|large|larger|widen\w*|wide|prominen\w*|increased)"
NEAR_ENLARGED = rf"\b{ENLARGED}(?:\s+[\w-]+){{0,3}}\s*$"
SAID_ENLARGED = rf"^\W*(?:[\w-]+\s+){{0,3}}{ENLARGED}\b"
SCOPE_BREAKERS = (
    r"there (?:is|are|has been|have been)", r"with", r"and (?:there|the)", r"which",
    r"is seen", r"are seen", r"is noted", r"are noted", r"is present", r"are present",
    r"remains?", r"has", r"have", r"due to", r"secondary to", r"but", r"and a",
)


def _alternation(phrases: Iterable[str]) -> str:
    return "|".join(f"(?:{p})" for p in phrases)


@dataclass
class Finding:
    """A finding the labeler looks for.

    Attributes:
        name: the finding's name (a column of the output).
        patterns: regular expressions, each matched on whole words of lower-cased text
            (e.g. ``r"pleural effusions?"``).
        exclude: patterns whose matches cancel overlapping mentions.
        structures: patterns naming an anatomical structure rather than the finding
            (``r"heart size"`` for cardiomegaly): mentioned without qualification it
            counts, as in CheXpert, but with "normal" anywhere in its clause it is
            negative, with "borderline" uncertain, and with "stable" or "unchanged" as
            `RuleLabeler`'s ``stable_structures`` says.
    """

    name: str
    patterns: Sequence[str]
    exclude: Sequence[str] = field(default_factory=tuple)
    structures: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.patterns and not self.structures:
            raise ValueError(f"finding {self.name!r} has no pattern")
        try:
            self._mention = re.compile(rf"\b(?:{_alternation(self.patterns)})\b") if self.patterns else None
            self._structure = (re.compile(rf"\b(?:{_alternation(self.structures)})\b")
                               if self.structures else None)
            self._exclude = re.compile(rf"\b(?:{_alternation(self.exclude)})\b") if self.exclude else None
        except re.error as err:
            raise ValueError(f"finding {self.name!r} has an invalid pattern: {err}") from None

    def mentions(self, clause: str) -> list[tuple[int, int, bool]]:
        """Where this finding is mentioned.

        Args:
            clause: lower-cased text.

        Returns:
            ``(start, end, structure)`` of each mention; ``structure`` is True for a
            mention of one of the ``structures``.
        """
        spans = [(*m.span(), False) for m in self._mention.finditer(clause)] if self._mention else []
        if self._structure is not None:
            taken = [s[:2] for s in spans]
            spans += [(*m.span(), True) for m in self._structure.finditer(clause)
                      if not any(m.start() < b and a < m.end() for a, b in taken)]
        if self._exclude is None or not spans:
            return spans
        blocked = [m.span() for m in self._exclude.finditer(clause)]
        return [s for s in spans if not any(s[0] < b[1] and b[0] < s[1] for b in blocked)]


class RuleLabeler:
    """Label reports for a list of `Finding` s: 1 positive, 0 negative, -1 uncertain,
    NaN not mentioned.

    Args:
        findings: what to look for, one output column each.
        post_window: characters after a mention searched for post-cues ("is not seen").
        stable_structures: the label of a structure called stable, unchanged or similar to
            before (not also called enlarged): ``UNCERTAIN`` (-1, the CheXpert labeler's
            reading) or ``NEGATIVE`` (0, CheXbert's).
    """

    def __init__(self, findings: Sequence[Finding], post_window: int = 30,
                 stable_structures: float = UNCERTAIN) -> None:
        names = [f.name for f in findings]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate finding names in {names}")
        if stable_structures not in (UNCERTAIN, NEGATIVE):
            raise ValueError(f"stable_structures must be UNCERTAIN (-1) or NEGATIVE (0), "
                             f"got {stable_structures}")
        self.findings = list(findings)
        self.post_window = post_window
        self.stable_structures = stable_structures
        self._pre_negation = re.compile(rf"\b(?:{_alternation(PRE_NEGATION)})\b")
        self._post_negation = re.compile(rf"^\W*(?:{_alternation(POST_NEGATION)})\b")
        self._pseudo = re.compile(rf"\b(?:{_alternation(PSEUDO_NEGATION)})\b")
        self._pre_hedge = re.compile(rf"\b(?:{_alternation(PRE_HEDGE)})\b")
        self._post_hedge = re.compile(rf"^\W*(?:{_alternation(POST_HEDGE)})\b")
        self._pre_uncertainty = re.compile(rf"\b(?:{_alternation(PRE_UNCERTAINTY)})\b")
        self._post_uncertainty = re.compile(rf"^\W*(?:{_alternation(POST_UNCERTAINTY)})\b")
        self._weak_uncertainty = re.compile(rf"(?:^|\W)(?:{_alternation(WEAK_UNCERTAINTY)})(?:\W|$)")
        self._breakers = re.compile(rf"\b(?:{_alternation(SCOPE_BREAKERS)})\b")
        self._near_normal = re.compile(NEAR_NORMAL)
        self._said_normal = re.compile(rf"^\W*{SAID_NORMAL}\b")
        self._called_normal = re.compile(rf"\b{SAID_NORMAL}\b")
        self._near_borderline = re.compile(NEAR_BORDERLINE)
        self._said_borderline = re.compile(SAID_BORDERLINE)
        self._stable = re.compile(rf"\b{STABLE}\b")
        self._near_enlarged = re.compile(NEAR_ENLARGED)
        self._said_enlarged = re.compile(SAID_ENLARGED)

    @property
    def names(self) -> list[str]:
        """The output columns, in order."""
        return [f.name for f in self.findings]

    @staticmethod
    def clauses(report: str) -> list[str]:
        """Split a report for labelling.

        Args:
            report: raw report text.

        Returns:
            Its lower-cased sentences, each a list of clauses.
        """
        text = " ".join(report.lower().split())
        pieces = []
        for sentence in _SENTENCE_SPLIT.split(text):
            pieces.extend(c.strip(" ,:") for c in _CLAUSE_SPLIT.split(sentence))
        return [p for p in pieces if p]

    def classify(self, clause: str, start: int, end: int, structure: bool = False) -> float:
        """Status of one mention: positive, negated or uncertain.

        Args:
            clause: the lower-cased clause.
            start: where the mention starts in ``clause``.
            end: where it ends.
            structure: the mention names a structure (see `Finding`).

        Returns:
            1 (positive), 0 (negated) or -1 (uncertain).
        """
        before = self._pseudo.sub(" ", clause[:start])
        after = clause[end: end + self.post_window]
        last_breaker = max((m.end() for m in self._breakers.finditer(before)), default=0)
        scope = before[last_breaker:]
        if self._pre_hedge.search(scope) or self._post_hedge.search(after):
            return UNCERTAIN
        if (self._pre_negation.search(scope) or self._post_negation.search(after)
                or self._near_normal.search(scope) or self._said_normal.search(after)
                or (structure and self._called_normal.search(clause))):
            return NEGATIVE  # also "no opacity to suggest pneumonia"
        if structure and (self._near_borderline.search(scope) or self._said_borderline.search(after)):
            return UNCERTAIN
        if structure and self._stable.search(clause):
            if self.stable_structures == UNCERTAIN:
                return UNCERTAIN
            enlarged = self._near_enlarged.search(scope) or self._said_enlarged.search(after)
            return POSITIVE if enlarged else NEGATIVE
        if (self._pre_uncertainty.search(scope) or self._post_uncertainty.search(after)
                or self._weak_uncertainty.search(scope) or self._weak_uncertainty.match(after)):
            return UNCERTAIN
        return POSITIVE

    def label_one(self, report: str) -> np.ndarray:
        """Label one report.

        Args:
            report: raw report text.

        Returns:
            ``(num_findings,)`` float array of 1, 0, -1 and NaN.
        """
        out = np.full(len(self.findings), np.nan)
        for clause in self.clauses(report):
            for column, finding in enumerate(self.findings):
                for start, end, structure in finding.mentions(clause):
                    status = self.classify(clause, start, end, structure)
                    current = out[column]
                    if np.isnan(current) or _RANK[status] > _RANK[current]:
                        out[column] = status
        return out

    def label(self, reports: Iterable[str]) -> np.ndarray:
        """Label reports.

        Args:
            reports: raw report texts.

        Returns:
            ``(num_reports, num_findings)`` float array of 1, 0, -1 and NaN.

        Raises:
            ValueError: if ``reports`` is one string rather than a list, or a report is not
                a string.
        """
        if isinstance(reports, str):
            raise ValueError("reports must be a list of report texts, not one string")
        rows = []
        for index, report in enumerate(reports):
            if not isinstance(report, str):
                raise ValueError(f"report {index} is a {type(report).__name__}, not a str")
            rows.append(self.label_one(report))
        if not rows:
            return np.zeros((0, len(self.findings)))
        return np.stack(rows)


_RANK = {NEGATIVE: 0, UNCERTAIN: 1, POSITIVE: 2}


def binarize(labels: np.ndarray, uncertain: float = 0.0) -> np.ndarray:
    """Turn 1 / 0 / -1 / NaN labels into 0/1.

    Args:
        labels: an array of 1, 0, -1 and NaN.
        uncertain: what -1 becomes, 0 or 1 (NaN always becomes 0).

    Returns:
        An int64 array of 0 and 1 of the same shape.

    Raises:
        ValueError: if ``uncertain`` is not 0 or 1.
    """
    if uncertain not in (0, 1):
        raise ValueError(f"uncertain must map to 0 or 1, got {uncertain}")
    out = np.nan_to_num(np.asarray(labels, dtype=float), nan=0.0)
    out[out == UNCERTAIN] = uncertain
    return out.astype(np.int64)
