"""What a reader of the built site would trip over, read off the HTML that mkdocs wrote."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Characters of code a line may hold: at a 1280-pixel window the content column of the
# Material theme shows 82 monospace characters before a code block scrolls sideways.
CODE_LINE_LIMIT = 80
MERMAID_START = re.compile(r"^\s*((flowchart|graph)\s+(LR|RL|TB|TD|BT)|sequenceDiagram|classDiagram"
                           r"|stateDiagram|erDiagram|gantt)\s*$", re.M)


class Page(HTMLParser):
    """One built page: ids, links, the text inside and outside code blocks, the code lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.prose: list[str] = []
        self.code_blocks: list[str] = []
        self.mermaid_elements = 0
        self._pre_depth = 0
        self._code_depth = 0
        self._skip_depth = 0
        self._block: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if attrs.get("name") and tag == "a":
            self.ids.add(attrs["name"])
        if "mermaid" in (attrs.get("class") or "").split():
            self.mermaid_elements += 1
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.links.append(attrs["src"])
        if tag in ("script", "style"):
            self._skip_depth += 1
        elif tag == "pre":
            self._pre_depth += 1
            self._block = []
        elif tag == "code":
            self._code_depth += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip_depth -= 1
        elif tag == "pre":
            self._pre_depth -= 1
            self.code_blocks.append("".join(self._block))
        elif tag == "code":
            self._code_depth -= 1

    def handle_data(self, data):
        if self._skip_depth:
            return
        if self._pre_depth:
            self._block.append(data)
        elif not self._code_depth:
            self.prose.append(data)


def read_site(site: Path) -> dict[Path, Page]:
    """Every content page of a built site (not the 404 page, whose links are absolute)."""
    pages = {}
    for path in sorted(site.rglob("*.html")):
        if path.name == "404.html":
            continue
        page = Page()
        page.feed(path.read_text(encoding="utf-8"))
        pages[path] = page
    return pages


def problems(site: Path) -> list[str]:
    """What is wrong with the built site at ``site``: one line per problem."""
    pages = read_site(site)
    found = []
    for path, page in pages.items():
        name = path.relative_to(site).as_posix()
        prose = "".join(page.prose)
        if page.mermaid_elements:
            found.append(f"{name}: a Mermaid element, drawn only by a script from the network")
        for block in page.code_blocks:
            if MERMAID_START.search(block):
                found.append(f"{name}: raw Mermaid source in a code block: {block.strip()[:60]!r}")
            for line in block.splitlines():
                if len(line) > CODE_LINE_LIMIT:
                    found.append(f"{name}: code line of {len(line)} > {CODE_LINE_LIMIT} characters: {line!r}")
            if "doctest" in block:
                found.append(f"{name}: doctest directive in a code block: {block.strip()[:60]!r}")
        if MERMAID_START.search(prose):
            found.append(f"{name}: raw Mermaid source in the text")
        for marker in (">>>", "doctest"):
            if marker in prose:
                index = prose.index(marker)
                context = prose[max(0, index - 40):index + 40]
                found.append(f"{name}: {marker!r} outside a code block: {context!r}")
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            target = path if not parts.path else (path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                found.append(f"{name}: link to a missing file: {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(parts.fragment) not in ids:
                    found.append(f"{name}: link to a missing anchor: {link}")
    return found
