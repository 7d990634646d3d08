"""`KnowledgeGraph`: the finding nodes and their relations (paper Section III.A).

A graph G = (V, E) of N clinical findings: each node has a name and synonyms (used by
report labelers), and undirected edges link related findings. The
`KnowledgeGraphEncoder` adds one global node linked to every finding, so a graph of N
findings yields N + 1 knowledge vectors.

The built-in default is `KnowledgeGraph.openi40()`: the 40 IU X-Ray MeSH keywords and
their adjacency from earlier work (MIT licence, see NOTICE). Graphs have names in the
`GRAPHS` registry (``"openi40"``, ``"chexpert14"``, and yours with `register_graph`):
`KnowledgeGraph.by_name` builds one, and ``cknet pretrain-graph --graph NAME`` takes one.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from cknet.graph_sources import adjacency_edges, builtin_graph, cooccurrence_edges, read_edge_list
from cknet.persistence.files import write_text_atomic
from cknet.registry import Registry


class KnowledgeGraph:
    """An undirected graph of finding nodes.

    Args:
        nodes: node names, one per finding, unique.
        edges: pairs ``(a, b)`` of node indices or node names; order and duplicates do
            not matter (the graph is undirected).
        synonyms: optional ``{node name: [other phrases]}``.
        name: a label for the graph (kept in saved models).
        source: where the graph comes from (kept for attribution).

    Raises:
        ValueError: on duplicate or empty names, an edge naming an unknown node or an
            index out of range, a self-loop, or synonyms for an unknown node.

    Example:
        ```python
        g = KnowledgeGraph(["effusion", "atelectasis", "cardiomegaly"],
                           edges=[("effusion", "atelectasis")])
        g.num_nodes, g.num_edges   # (3, 1)
        ```
    """

    def __init__(
        self,
        nodes: Sequence[str],
        edges: Iterable[tuple[int | str, int | str]] = (),
        synonyms: Mapping[str, Sequence[str]] | None = None,
        name: str = "custom",
        source: str = "",
    ) -> None:
        if isinstance(nodes, str) or not isinstance(nodes, Sequence):
            raise ValueError("nodes must be a sequence of node names")
        self.nodes: list[str] = list(nodes)
        self.name = name
        self.source = source
        self.synonyms: dict[str, list[str]] = {n: [] for n in self.nodes}
        self._check_names()
        for node, phrases in (synonyms or {}).items():
            if node not in self.synonyms:
                raise ValueError(f"synonyms given for unknown node {node!r}")
            if isinstance(phrases, str):
                raise ValueError(f"synonyms of {node!r} must be a list of phrases, got a str")
            self.synonyms[node] = [str(p) for p in phrases]
        index = {n: i for i, n in enumerate(self.nodes)}
        pairs = set()
        for edge in edges:
            if len(edge) != 2:
                raise ValueError(f"an edge is a pair of nodes, got {edge!r}")
            a, b = (self._index(end, index) for end in edge)
            if a == b:
                raise ValueError(
                    f"self-loop on node {self.nodes[a]!r}: edges must join two nodes "
                    f"(the GCN adds self-loops itself)"
                )
            pairs.add((min(a, b), max(a, b)))
        self.edges: list[tuple[int, int]] = sorted(pairs)

    def validate(self) -> None:
        """Check the graph again (e.g. after editing ``nodes`` or ``edges`` by hand).

        Raises:
            ValueError: on duplicate or empty names, an edge index out of range, a
                self-loop (the GCN adds self-loops itself), or synonyms of unknown nodes.
        """
        self._check_names()
        unknown = sorted(set(self.synonyms) - set(self.nodes))
        if unknown:
            raise ValueError(f"synonyms given for unknown nodes {unknown}")
        for a, b in self.edges:
            self._index(a, {}), self._index(b, {})  # in range
            if a == b:
                raise ValueError(f"self-loop on node {self.nodes[a]!r}: edges must join two nodes")

    def _check_names(self) -> None:
        if not self.nodes:
            raise ValueError("a knowledge graph needs at least one node")
        bad = [n for n in self.nodes if not isinstance(n, str) or not n.strip()]
        if bad:
            raise ValueError(f"node names must be non-empty strings, got {bad!r}")
        dupes = sorted(n for n, c in Counter(self.nodes).items() if c > 1)
        if dupes:
            raise ValueError(f"duplicate node names: {dupes}")

    def _index(self, end: int | str, index: dict[str, int]) -> int:
        if isinstance(end, str):
            if end not in index:
                raise ValueError(f"edge names unknown node {end!r}")
            return index[end]
        if isinstance(end, (int, np.integer)) and not isinstance(end, bool):
            if not 0 <= end < len(self.nodes):
                raise ValueError(
                    f"edge index {end} is out of range for {len(self.nodes)} nodes "
                    f"(valid: 0..{len(self.nodes) - 1})"
                )
            return int(end)
        raise ValueError(f"an edge end is a node index or name, got {end!r}")

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_adjacency(
        cls,
        adjacency: np.ndarray | torch.Tensor | Sequence[Sequence[float]],
        nodes: Sequence[str],
        synonyms: Mapping[str, Sequence[str]] | None = None,
        name: str = "custom",
        source: str = "",
    ) -> KnowledgeGraph:
        """Build a graph from a symmetric ``(N, N)`` 0/1 adjacency matrix.

        Args:
            adjacency: the matrix (array-like).
            nodes: the N node names, in the matrix's order.
            synonyms: optional ``{node name: [other phrases]}``.
            name: a label for the graph.
            source: where the graph comes from.

        Returns:
            The graph.

        Raises:
            ValueError: if the matrix is not square, does not match ``nodes``, is not
                symmetric, or has a non-zero diagonal.
        """
        return cls(nodes, adjacency_edges(adjacency, len(nodes)), synonyms, name, source)

    @classmethod
    def from_dict(cls, data: Mapping) -> KnowledgeGraph:
        """Inverse of `to_dict`.

        Args:
            data: a dict written by `to_dict`.

        Returns:
            The graph.

        Raises:
            ValueError: if ``data`` is not a KnowledgeGraph description.
        """
        if not isinstance(data, Mapping) or data.get("type") != "KnowledgeGraph":
            raise ValueError("not a KnowledgeGraph description (expected 'type': 'KnowledgeGraph')")
        try:
            nodes = [n["name"] for n in data["nodes"]]
            synonyms = {n["name"]: n.get("synonyms", []) for n in data["nodes"]}
            edges = [tuple(e) for e in data["edges"]]
        except (KeyError, TypeError) as err:
            raise ValueError(f"malformed KnowledgeGraph description: {err!r}") from None
        return cls(nodes, edges, synonyms, data.get("name", "custom"), data.get("source", ""))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> KnowledgeGraph:
        """Read a graph from a JSON file written by `to_json`.

        Args:
            path: the JSON file.

        Returns:
            The graph.

        Raises:
            ValueError: naming the file when it is not a valid graph description.
        """
        try:
            with open(path, encoding="utf-8") as fh:
                return cls.from_dict(json.load(fh))
        except (json.JSONDecodeError, ValueError) as err:
            raise ValueError(f"{os.fspath(path)}: {err}") from None

    @classmethod
    def from_edge_list(
        cls,
        source: str | os.PathLike[str] | Iterable[tuple[str, str]],
        nodes: Sequence[str] | None = None,
        synonyms: Mapping[str, Sequence[str]] | None = None,
        name: str = "custom",
        source_note: str = "",
    ) -> KnowledgeGraph:
        """Build a graph from named edges: pairs, or a text file with one ``a,b`` (or
        tab-separated) pair per line; blank lines and ``#`` comments are skipped.

        Args:
            source: a file path, or an iterable of ``(a, b)`` name pairs.
            nodes: all node names in order (default: in order of first appearance;
                give it to include isolated nodes).
            synonyms: optional ``{node name: [other phrases]}``.
            name: a label for the graph.
            source_note: where the graph comes from.

        Returns:
            The graph.

        Raises:
            ValueError: naming the file and line of a malformed pair.
        """
        is_file = isinstance(source, (str, os.PathLike))
        pairs = read_edge_list(source) if is_file else [tuple(p) for p in source]
        if nodes is None:
            nodes = list(dict.fromkeys(n for pair in pairs for n in pair))
        return cls(nodes, pairs, synonyms, name, source_note)

    @classmethod
    def from_cooccurrence(
        cls,
        labels: np.ndarray,
        nodes: Sequence[str],
        min_count: int = 5,
        min_probability: float = 0.0,
        synonyms: Mapping[str, Sequence[str]] | None = None,
        name: str = "cooccurrence",
    ) -> KnowledgeGraph:
        """Mine edges from a training label matrix: findings that occur together.

        Nodes a and b are joined when at least ``min_count`` studies are positive for
        both, and P(a | b) or P(b | a) is at least ``min_probability``. Use labels of the
        training split only.

        Args:
            labels: ``(num_studies, N)``; 1 is positive, anything else (0, -1, NaN) not.
            nodes: the N node names.
            min_count: fewest studies positive for both ends of an edge.
            min_probability: smallest P(a | b) or P(b | a) of an edge.
            synonyms: optional ``{node name: [other phrases]}``.
            name: a label for the graph.

        Returns:
            The graph.

        Raises:
            ValueError: if the label matrix does not match ``nodes``.
        """
        edges = cooccurrence_edges(labels, nodes, min_count, min_probability)
        note = (f"co-occurrence in {len(labels)} studies, min_count={min_count}, "
                f"min_probability={min_probability}")
        return cls(nodes, edges, synonyms, name, note)

    @classmethod
    def by_name(cls, name: str) -> KnowledgeGraph:
        """The graph registered as ``name`` (see `register_graph`).

        Args:
            name: ``"openi40"``, ``"chexpert14"`` or a name you registered.

        Returns:
            A new graph from the name's factory, named ``name``.

        Raises:
            ValueError: for an unregistered name (the message lists the registered ones),
                or a factory that does not return a `KnowledgeGraph`.
        """
        graph = GRAPHS[name]()
        if not isinstance(graph, KnowledgeGraph):
            raise ValueError(f"the factory of the graph {name!r} returned a {type(graph).__name__}, "
                             f"not a KnowledgeGraph")
        graph.name = name
        return graph

    @classmethod
    def chexpert14(cls) -> KnowledgeGraph:
        """The 14 CheXpert observations, in CheXpert's order, with cliques inside organ
        groups (heart and mediastinum; lung parenchyma; pleura), for MIMIC-CXR users.
        "No Finding", "Fracture" and "Support Devices" link only through the global node."""
        return cls.from_dict(builtin_graph("chexpert14"))

    @classmethod
    def openi40(cls) -> KnowledgeGraph:
        """The built-in default: 40 IU X-Ray finding keywords and their adjacency.

        From bionlplab/report_generation_amia2022 (MIT licence; the first 20 nodes are
        the graph of Zhang et al., AAAI 2020).
        """
        return cls.from_dict(builtin_graph("openi40"))

    # ------------------------------------------------------------ views
    @property
    def num_nodes(self) -> int:
        """Number of finding nodes N (the encoder adds a global node)."""
        return len(self.nodes)

    @property
    def num_edges(self) -> int:
        """Number of undirected edges."""
        return len(self.edges)

    @property
    def isolated_nodes(self) -> list[str]:
        """Nodes without an edge, in node order. They are allowed (the GCN links every
        node to the global node, so they still exchange messages with it), but a graph
        built from data with many of them may have too high a threshold.

        Example:
            ```python
            g = KnowledgeGraph(["effusion", "atelectasis", "fracture"], [(0, 1)])
            g.isolated_nodes   # ['fracture']
            ```
        """
        linked = {end for edge in self.edges for end in edge}
        return [name for index, name in enumerate(self.nodes) if index not in linked]

    def adjacency(self) -> np.ndarray:
        """The symmetric ``(N, N)`` 0/1 adjacency matrix (int64)."""
        matrix = np.zeros((self.num_nodes, self.num_nodes), dtype=np.int64)
        rows, cols = np.array(self.edges, dtype=np.int64).reshape(-1, 2).T
        matrix[rows, cols] = matrix[cols, rows] = 1
        return matrix

    def edge_index(self, global_node: bool = False) -> torch.Tensor:
        """Edges in both directions as a PyG ``edge_index`` of shape ``(2, 2E)``.

        Args:
            global_node: prepend a global node (index 0) linked to every finding; the
                findings are then numbered 1..N.

        Raises:
            ValueError: when ``nodes`` or ``edges`` were edited into an invalid graph
                (see `validate`).
        """
        self.validate()
        pairs = list(self.edges)
        if global_node:
            pairs = [(0, i + 1) for i in range(self.num_nodes)] + [(a + 1, b + 1) for a, b in pairs]
        if not pairs:
            return torch.zeros((2, 0), dtype=torch.long)
        forward = torch.tensor(pairs, dtype=torch.long).t()
        return torch.cat([forward, forward.flip(0)], dim=1)

    def to_dict(self) -> dict:
        """A JSON-ready description of the graph."""
        return {"type": "KnowledgeGraph", "name": self.name, "source": self.source,
                "nodes": [{"name": n, "synonyms": self.synonyms[n]} for n in self.nodes],
                "edges": [list(e) for e in self.edges]}

    def to_json_string(self) -> str:
        """The graph as indented JSON text (what `to_json` writes)."""
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write the graph as JSON (atomically).

        Args:
            path: the JSON file to write.
        """
        write_text_atomic(path, self.to_json_string())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KnowledgeGraph):
            return NotImplemented
        return (self.nodes, self.edges, self.synonyms) == (other.nodes, other.edges, other.synonyms)

    def __repr__(self) -> str:
        return f"KnowledgeGraph(name={self.name!r}, num_nodes={self.num_nodes}, num_edges={self.num_edges})"


GRAPHS: Registry[Callable[[], KnowledgeGraph]] = Registry(
    "knowledge graph", {"openi40": KnowledgeGraph.openi40, "chexpert14": KnowledgeGraph.chexpert14})


def register_graph(name: str, factory: Callable[[], KnowledgeGraph] | None = None) -> Callable:
    """Make a graph known by name to `KnowledgeGraph.by_name` and to ``cknet pretrain-graph
    --graph NAME``; returns ``factory`` (without it, a decorator: ``@register_graph("mine")``).

    Args:
        name: the graph's name (saved models keep it as ``KnowledgeGraph.name``).
        factory: builds the graph, without arguments.

    Raises:
        ValueError: for a built-in graph's name, or a factory that is not callable.
    """
    if factory is None:
        return lambda function: register_graph(name, function)
    if not callable(factory):
        raise ValueError(f"register_graph takes a function building the graph, got {type(factory).__name__}")
    return GRAPHS.register(name, factory)
