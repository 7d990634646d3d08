"""The package's structure: no import cycles, files and the model class of a readable size."""

import ast
from pathlib import Path

import cknet

PACKAGE = Path(cknet.__file__).parent
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60  # its code: the docstring is not counted
MAX_MODEL_CLASS_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the cknet modules it imports anywhere in its source (top level, inside
    functions and under TYPE_CHECKING alike)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in files and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a list of nodes, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_among_cknet_modules():
    graph = import_graph()
    assert "cknet.model" in graph and "cknet.generation" in graph["cknet.model"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_generation_does_not_import_the_model():
    graph = import_graph()
    generation = [name for name in graph if name.startswith("cknet.generation")]
    assert generation and not any("cknet.model" in graph[name] for name in generation)


def test_no_source_file_is_too_long():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def function_lengths(source: str) -> dict[str, int]:
    """Each function's (and method's) lines, from its ``def`` to its last line, its
    docstring's lines left out, by qualified name."""
    lengths = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = child.body[0]
                has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str)
                docstring = first.end_lineno - first.lineno + 1 if has_docstring else 0
                lengths[prefix + child.name] = child.end_lineno - child.lineno + 1 - docstring
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(ast.parse(source), "")
    return lengths


def test_the_function_measure_counts_code_not_docstrings():
    source = 'def f():\n    """Doc.\n\n    More.\n    """\n    a = 1\n    return a\n\n\n' \
             "class C:\n    def g(self):\n        return 1\n"
    assert function_lengths(source) == {"f": 3, "C.g": 2}


def test_no_function_is_too_long():
    long = {f"{p.relative_to(PACKAGE)}:{name}": n for p in PACKAGE.rglob("*.py")
            for name, n in function_lengths(p.read_text(encoding="utf-8")).items() if n > MAX_FUNCTION_LINES}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines of code: {long}"


def test_the_model_class_stays_small():
    tree = ast.parse((PACKAGE / "model.py").read_text(encoding="utf-8"))
    model = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CKNet")
    lines = model.end_lineno - model.lineno + 1
    assert lines <= MAX_MODEL_CLASS_LINES, f"CKNet is {lines} lines"


def test_the_public_names_are_listed_once_and_all_resolve():
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    typed = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.If)
             for child in ast.walk(node) if isinstance(child, ast.ImportFrom) for alias in child.names}
    exports = set(cknet._EXPORTS)
    assert typed == exports, (typed ^ exports)
    assert set(cknet.__all__) == exports | {"__version__"}
    for name in ("KnowledgeGraphModel", "Trainer", "TrainingConfig", "evaluate", "StudyFeatures"):
        assert name in cknet.__all__
    for name in cknet.__all__:
        assert getattr(cknet, name) is not None


def test_files_are_written_and_torch_files_read_in_one_package():
    """cknet.persistence is the one place that renames files into place, writes
    safetensors or torch files and reads a torch file (weights_only=True): a search of
    every other module finds none of these calls (cknet.testing aside: it fabricates
    third-party files, such as RadGraph's weights.th, for tests)."""
    calls = ("os.replace(", "torch.save(", "torch.load(", "save_file(", ".rename(")
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] in ("persistence", "testing.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                text = ast.unparse(node.func) + "("
                if any(text.endswith(call) for call in calls):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {text}")
    assert not found, f"file writes or torch reads outside cknet.persistence: {found}"
    persisted = {p.stem for p in (PACKAGE / "persistence").glob("*.py")}
    assert {"folders", "files", "weights", "module_folder", "model_files", "model_card", "checkpoint",
            "hub"} <= persisted
    assert not any((PACKAGE / name).exists() for name in ("io.py", "hub.py", "saving.py", "model_files.py"))


def sources_containing(text: str) -> list[str]:
    """The package's modules whose source holds ``text``, relative to the package."""
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                  if text in p.read_text(encoding="utf-8"))


def test_each_decision_is_taken_in_one_place():
    """A search of the package: the device is chosen in cknet.devices, the teacher-forced
    loss computed in cknet.losses, images told from cached features in cknet.inputs.features,
    per-study from shared G in CKNet (model.py); files are written and torch files read
    in cknet.persistence (the test above)."""
    assert sources_containing('"cuda" if torch.cuda.is_available()') == ["devices.py"]
    assert sources_containing("F.cross_entropy(") == ["losses.py"]
    assert sources_containing('"maps" in batch') == ["inputs/features.py"]
    assert sources_containing("knowledge_source.per_study") == ["model.py"]
