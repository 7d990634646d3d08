"""Report sections: a radiology report split at its headings (FINDINGS:, IMPRESSION:, ...).

The conventions are those of MIT-LCP's MIMIC-CXR section parser
(``mimic-cxr/txt/section_parser.py``), written anew and made tolerant of what other
releases do:

- a heading is a line's first words followed by a colon: in capitals (any name, as
  MIT-LCP reads them), or in any case when its name is a known one (``Findings :``), with
  any spaces around it; text may follow on the heading's own line;
- heading names are normalised (`section_name`): a table of frequent names and typos
  (``IMPRESSON`` -> impression, ``REASON FOR EXAM`` -> indication, ``CHEST, TWO VIEWS``
  -> findings), then a name containing a main section's name takes it, then a name that
  describes views (``PA AND LATERAL``, ``PORTABLE CHEST``) counts as findings;
- a line of underscores ends a section: MIMIC-CXR puts addenda at the top of a report,
  separated from it by such a line, so an addendum never runs into the report's
  sections;
- empty findings and impression sections are dropped (a report title such as
  ``CHEST, PA LATERAL:`` followed by a blank), and when a name occurs more than once the
  last non-empty occurrence is the one read, as MIT-LCP's ``list_rindex`` does.

Not reproduced: MIT-LCP's per-study overrides (``custom_mimic_cxr_rules``, a table of a
few hundred study ids whose sections it cuts by hand) and its "last paragraph" fallback;
a report without the section asked for is dropped and counted instead.
"""

from __future__ import annotations

import re

FREQUENT_NAMES = {
    "impression": "impression",
    "conclusion": "impression",
    "findings and impression": "impression",
    "findings/impression": "impression",
    "impressions": "impression",
    "impresson": "impression",
    "imprression": "impression",
    "impresion": "impression",
    "impession": "impression",
    "findings": "findings",
    "finding": "findings",
    "findngs": "findings",
    "findins": "findings",
    "finidngs": "findings",
    "chest, two views": "findings",
    "reference findings": "findings",
    "comparison": "comparison",
    "comparisons": "comparison",
    "comparison exam": "comparison",
    "comparision": "comparison",
    "reference exam": "comparison",
    "indication": "indication",
    "reason for exam": "indication",
    "reason for examination": "indication",
    "clinical indication": "indication",
    "history": "history",
    "clinical history": "history",
    "clinical information": "history",
    "patient history": "history",
    "examination": "examination",
    "exam": "examination",
    "type of examination": "examination",
    "technique": "technique",
    "notification": "notification",
    "recommendation": "recommendations",
    "recommendations": "recommendations",
    "recommendation(s)": "recommendations",
    "addendum": "addendum",
    "wet read": "wet read",
    "wetread": "wet read",
    "final report": "final report",
}
"""Heading (lower case, spaces collapsed) -> section name."""

MAIN_SECTIONS = ("impression", "findings", "history", "comparison", "addendum")
VIEW_WORDS = re.compile(
    r"\b(chest|portable|pa and lat|lateral and pa|ap and lateral|frontal|two views|"
    r"one view|pa view|ap view|lateral view|ribs)"
)
_HEADING = re.compile(r"^[ \t]*([A-Za-z][A-Za-z ()/,&-]{0,60}?)[ \t]*:(?=\s|$)", re.MULTILINE)
_SEPARATOR = re.compile(r"^[ \t]*_{8,}[ \t]*$", re.MULTILINE)


def section_name(heading: str) -> str:
    """The normalised name of a heading.

    Args:
        heading: the heading's text without its colon, e.g. ``"IMPRESSON"``.

    Returns:
        e.g. ``"impression"``; a heading of no known kind keeps its lower-cased text.
    """
    name = " ".join(heading.lower().split())
    if name in FREQUENT_NAMES:
        return FREQUENT_NAMES[name]
    for main in MAIN_SECTIONS:
        if main in name:
            return main
    return "findings" if VIEW_WORDS.search(name) else name


def _is_heading(match: re.Match[str]) -> bool:
    text = match.group(1).strip()
    name = " ".join(text.lower().split())
    return text.isupper() or name in FREQUENT_NAMES


def split_sections(text: str) -> list[tuple[str, str]]:
    """A report's sections, in order.

    Args:
        text: the report as released (line breaks kept).

    Returns:
        ``[(name, text)]``: the text before the first heading is ``"preamble"``, a
        report without headings is one ``"full report"``; each section's text has its
        white space collapsed.
    """
    cuts = [(m.start(), m.end(), section_name(m.group(1))) for m in _HEADING.finditer(text) if _is_heading(m)]
    cuts += [(m.start(), m.end(), "separator") for m in _SEPARATOR.finditer(text)]
    cuts.sort()
    if not cuts:
        return [("full report", " ".join(text.split()))]
    sections = [("preamble", text[: cuts[0][0]])]
    for (_, body_start, name), following in zip(cuts, cuts[1:] + [(len(text), len(text), "")]):
        sections.append((name, text[body_start : following[0]]))
    return [(name, " ".join(body.split())) for name, body in sections if name != "separator"]


def find_section(sections: list[tuple[str, str]], name: str) -> str | None:
    """The text of a report's last non-empty section of that name.

    Args:
        sections: from `split_sections`.
        name: a normalised name, e.g. ``"findings"``.

    Returns:
        The text, or None when the report has no such non-empty section.
    """
    found = [body for section, body in sections if section == name and body]
    return found[-1] if found else None


def report_section(text: str, which: str) -> str | None:
    """The part of a report that becomes the reference: ``--section`` of ``cknet prepare``.

    Args:
        text: the report.
        which: ``"findings"``, ``"impression"``, or ``"both"`` (the findings, then the
            impression, whichever the report has).

    Returns:
        The text, or None when the report has none of it (the study is dropped).

    Raises:
        ValueError: for another ``which``.
    """
    if which not in ("findings", "impression", "both"):
        raise ValueError(f"section must be 'findings', 'impression' or 'both', got {which!r}")
    sections = split_sections(text)
    names = ("findings", "impression") if which == "both" else (which,)
    parts = [part for part in (find_section(sections, n) for n in names) if part]
    return " ".join(parts) if parts else None
