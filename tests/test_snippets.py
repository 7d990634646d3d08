"""The code a reader copies runs as written: docs/quickstart.md and the
"Example:" sections of the docstrings, with tiny stand-ins for the files they name and
for the paper's model size (`CKNetConfig.iu_xray()` returns a small model here, of the
same shape of inputs, so that the snippets' steps run in seconds on a CPU). README.md's
snippet runs on what a quick demo saved (tests/test_demo.py).

A docstring example line of the form ``expression   # literal`` states its result; the
test evaluates the expression and compares it with the literal.
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import re
import shutil
import tokenize
from pathlib import Path

import pytest
import torch
from conftest import IU_ANNOTATION, REPO, SAMPLES, require, small_config

from cknet import CKNetConfig

# what the stand-in of CKNetConfig.iu_xray() changes: a small CNN and Transformer
TINY = dict(backbone="resnet18", d_model=64, num_heads=4, d_ff=128, num_encoder_layers=1,
            num_decoder_layers=1, d_knowledge=32, gamma=4)

FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
EXAMPLE = re.compile(r"^(\s*)Example:\n\1    ```python\n(.*?)^\1    ```", re.S | re.M)


def python_blocks(markdown: Path) -> list[str]:
    blocks = FENCE.findall(markdown.read_text(encoding="utf-8"))
    assert blocks, f"no python code blocks in {markdown}"
    return blocks


def docstring_examples() -> list[tuple[str, str]]:
    """(module, code) for every fenced example of a docstring in the package."""
    examples = []
    for path in sorted((REPO / "src" / "cknet").rglob("*.py")):
        module = ".".join(path.relative_to(REPO / "src").with_suffix("").parts).removesuffix(".__init__")
        for indent, code in EXAMPLE.findall(path.read_text(encoding="utf-8")):
            lines = [line.removeprefix(indent + "    ") for line in code.splitlines()]
            examples.append((module, "\n".join(lines) + "\n"))
    return examples


def stated_results(code: str) -> dict[int, object]:
    """{line number: literal} for the lines that end in a comment holding a Python literal."""
    stated = {}
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.COMMENT:
            try:
                stated[token.start[0]] = ast.literal_eval(token.string.lstrip("#").strip())
            except (ValueError, SyntaxError):
                continue
    return stated


def run_checked(code: str, namespace: dict) -> int:
    """Run ``code`` statement by statement; compare each expression that states its result.
    Returns how many results were compared."""
    stated = stated_results(code)
    compared = 0
    for statement in ast.parse(code).body:
        if isinstance(statement, ast.Expr) and statement.end_lineno in stated:
            value = eval(compile(ast.Expression(statement.value), "<example>", "eval"), namespace)
            expected = stated[statement.end_lineno]
            assert value == expected, \
                f"{ast.unparse(statement)} gave {value!r}, the example says {expected!r}"
            compared += 1
        else:
            exec(compile(ast.Module([statement], []), "<example>", "exec"), namespace)
    return compared


def use_tiny_presets(monkeypatch, tmp_path) -> None:
    """`CKNetConfig.iu_xray()` builds a small model, and ``runs/graph`` holds a graph
    stage that fits it."""
    from cknet.graph import KnowledgeGraph
    from cknet.modules.graph_model import KnowledgeGraphModel

    monkeypatch.setattr(CKNetConfig, "iu_xray",
                        classmethod(lambda cls, **overrides: cls.preset("iu_xray", **{**TINY, **overrides})))
    graph_model = KnowledgeGraphModel(KnowledgeGraph.openi40(), TINY["backbone"], TINY["d_knowledge"])
    graph_model.save_pretrained(tmp_path / "runs" / "graph")


@pytest.fixture
def stand_ins(tmp_path, monkeypatch, iu_tokenizer):
    """A working folder holding what the snippets name: the IU annotation, radiographs,
    a pretrained graph stage (``runs/graph``) and a one-view model (``cknet-demo/model``)."""
    from cknet import CKNet

    (tmp_path / "iu_xray").mkdir()
    shutil.copy(require(IU_ANNOTATION), tmp_path / "iu_xray" / "annotation.json")
    views = sorted(require(SAMPLES / "iu_xray").glob("*/*.png"))
    for name, source in {"frontal.png": views[0], "lateral.png": views[1], "study1/frontal.png": views[0],
                         "study2/frontal.png": views[2], "s1/0.png": views[0], "s1/1.png": views[1],
                         "s2/0.png": views[2], "s2/1.png": views[3]}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, tmp_path / name)
    use_tiny_presets(monkeypatch, tmp_path)
    CKNet(small_config(num_views=1), iu_tokenizer).save_pretrained(tmp_path / "cknet-demo" / "model")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_docs_quickstart_runs_as_written(stand_ins):
    namespace: dict = {}
    for number, block in enumerate(python_blocks(REPO / "docs" / "quickstart.md")):
        exec(compile(block, f"docs/quickstart.md, block {number + 1}", "exec"), namespace)
    assert len(namespace["reports"]) == 2
    assert (stand_ins / "runs" / "mine" / "model.safetensors").is_file()
    assert (stand_ins / "study.png").stat().st_size > 0


def _bert_stand_in(tiny_bert_dir, code: str) -> str:
    return code.replace('"/models/Bio_ClinicalBERT"', json.dumps(str(tiny_bert_dir)))


def test_docstring_examples_run_and_give_the_results_they_state(tmp_path, monkeypatch, tiny_bert_dir,
                                                               iu_tokenizer):
    examples = docstring_examples()
    assert len(examples) >= 6, examples
    use_tiny_presets(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    ids, _ = iu_tokenizer.encode_batch(["The heart is normal.", "No effusion."])
    # what the CKNet example takes as given: a tokenizer, a batch of studies and report ids
    given = {"tok": iu_tokenizer, "images": torch.rand(2, 2, 3, 224, 224), "input_ids": ids}
    compared = 0
    for module, code in examples:
        namespace = {**vars(importlib.import_module(module)), **given}
        compared += run_checked(_bert_stand_in(tiny_bert_dir, code), namespace)
    assert compared >= 5  # the labelers, the tokenizers and the graph state their results


def test_a_wrong_stated_result_is_caught():
    with pytest.raises(AssertionError, match="gave 3"):
        run_checked("x = 1\nx + 2   # 4\n", {})
    assert run_checked("x = 1\nx + 2   # 3\nx   # not a literal\n", {}) == 1
