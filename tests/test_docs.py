"""The documentation site builds, and every public object it documents says what it takes."""

import os
import re
import subprocess
import sys

import griffe
import pytest
from conftest import REPO
from site_check import problems

API_PAGES = REPO / "docs" / "api"
SKIPPED_PARAMETERS = {"self", "cls"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The documentation site, built once with ``mkdocs build --strict``."""
    out_dir = tmp_path_factory.mktemp("site")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out_dir


@pytest.mark.slow
def test_mkdocs_builds_strictly(site):
    page = (site / "api" / "model" / "index.html").read_text(encoding="utf-8")
    assert "knowledge_attention" in page and "logits_processors" in page


@pytest.mark.slow
def test_the_built_pages_read_well_offline(site):
    """No raw Mermaid source or doctest markup, no code line wider than the column, no
    broken internal link or anchor; the data-flow figure is an image served with the site."""
    assert problems(site) == []
    concepts = (site / "concepts" / "index.html").read_text(encoding="utf-8")
    assert 'src="../assets/data_flow.svg"' in concepts and (site / "assets" / "data_flow.svg").is_file()


def test_the_site_check_finds_each_kind_of_problem(tmp_path):
    """The checker itself, on a hand-written two-page site with one problem of each kind."""
    (tmp_path / "guide").mkdir()
    (tmp_path / "index.html").write_text(
        '<html><body><h1 id="top">Home</h1><p>Run &gt;&gt;&gt; x = 1 here.</p>'
        '<a href="guide/">ok</a> <a href="guide/#usage">ok</a> <a href="#top">ok</a>'
        '<a href="guide/#nowhere">bad anchor</a> <a href="missing/">bad page</a>'
        '<a href="https://example.org/x">external</a><img src="figure.svg">'
        '<pre><code>short line\n' + "x" * 81 + '</code></pre>'
        '<pre class="mermaid">flowchart LR\n  A --> B</pre>'
        '<div class="highlight"><pre><code>graph TD\n  A --> B\n</code></pre></div>'
        "<pre><code>model(x)  # doctest: +SKIP</code></pre>"
        "<script>const s = '>>> in a script is fine';</script></body></html>", encoding="utf-8")
    (tmp_path / "guide" / "index.html").write_text(
        '<html><body><h2 id="usage">Usage</h2><pre><code>&gt;&gt;&gt; in code is fine\n'
        "graph: KnowledgeGraph</code></pre></body></html>", encoding="utf-8")
    found = problems(tmp_path)
    expected = ["index.html: a Mermaid element", "raw Mermaid source in a code block: 'flowchart LR",
                "raw Mermaid source in a code block: 'graph TD", "code line of 81 > 80",
                "doctest directive in a code block", "'>>>' outside a code block",
                "link to a missing anchor: guide/#nowhere", "link to a missing file: missing/",
                "link to a missing file: figure.svg"]
    for text in expected:
        assert any(text in line for line in found), (text, found)
    assert len(found) == len(expected), found


def _documented_objects():
    """Every object a ``::: path`` line of the API pages renders, with its public members."""
    package = griffe.load("cknet", search_paths=[str(REPO / "src")], docstring_parser="google")
    paths = [m for page in sorted(API_PAGES.glob("*.md"))
             for m in re.findall(r"^::: (\S+)$", page.read_text(encoding="utf-8"), re.M)]
    assert paths, f"no ::: directives in {API_PAGES}"
    seen = {}
    for path in paths:
        obj = package[path.removeprefix("cknet.")]
        obj = obj.final_target if obj.is_alias else obj
        for member in [obj, *_public_members(obj)]:
            seen[member.path] = member
    return list(seen.values())


def _public_members(obj):
    for name, member in obj.members.items():
        if member.is_alias or (name.startswith("_") and name != "__init__"):
            continue
        if member.is_class or member.is_function:
            yield member
        if member.is_class:
            yield from _public_members(member)


def _documented_names(docstring) -> set[str]:
    names = set()
    for section in docstring.parse("google"):
        if section.kind.value in ("parameters", "attributes", "other parameters"):
            names |= {item.name for item in section.value}
    return names


def test_every_documented_object_has_a_docstring_that_names_its_parameters():
    problems = []
    for obj in _documented_objects():
        if obj.is_function and obj.name == "forward":
            continue  # documented by its module's class (Shapes: input / output)
        owner_doc = obj.parent.docstring if obj.is_function and obj.name == "__init__" else None
        docstring = owner_doc or obj.docstring
        if docstring is None:
            if not (obj.is_function and obj.name == "__init__"):
                problems.append(f"{obj.path}: no docstring")
            continue
        if not obj.is_function:
            continue
        parameters = [p.name for p in obj.parameters if p.name not in SKIPPED_PARAMETERS
                      and p.kind.value not in ("variadic positional", "variadic keyword")]
        missing = [name for name in parameters if name not in _documented_names(docstring)]
        if missing:
            problems.append(f"{obj.path}: parameters not documented: {missing}")
    assert not problems, "\n".join(problems)


def test_the_readme_fits_on_two_screens_and_says_what_a_newcomer_needs():
    """README: under 120 lines; the two set-up commands, the install size, the fact
    that no weights trained on real radiographs exist, and the fast test tier."""
    from conftest import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 120
    assert "pip install . && cknet demo" in text and 'pip install ".[test]" && pytest' in text
    assert "No weights trained on real radiographs exist yet" in text
    assert 'pytest -m "not slow"' in text and "CUDA build" in text
