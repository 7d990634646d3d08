"""The documentation site builds, and every public object it documents says what it takes."""

import os
import re
import subprocess
import sys

import griffe
import pytest
from conftest import REPO

API_PAGES = REPO / "docs" / "api"
SKIPPED_PARAMETERS = {"self", "cls"}


@pytest.mark.slow
def test_mkdocs_builds_strictly(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "model" / "index.html").is_file()
    page = (tmp_path / "site" / "api" / "model" / "index.html").read_text(encoding="utf-8")
    assert "knowledge_attention" in page and "logits_processors" in page


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
