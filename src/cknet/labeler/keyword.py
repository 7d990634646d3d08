"""`KeywordLabeler`: finding labels for the nodes of a `KnowledgeGraph`, from report text.

For any graph, each node is found by its name and synonyms (whole words, a trailing
"s" optional), then classified by the rules of `cknet.labeler.rules` (negation and
uncertainty scoped to the clause). `KeywordLabeler.openi40()` uses phrases tuned, on
the IU X-Ray train split only, to agree with the human MeSH indexing of the reports
(see ``docs/knowledge_graph.md`` for per-node agreement on the val split).
`keyword_labeler` picks the labeler of a graph: the one registered for its name in
`KEYWORD_LABELERS` (``register_keyword_labeler``), else the generic one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources

import numpy as np

from cknet.graph import KnowledgeGraph
from cknet.labeler.rules import Finding, RuleLabeler, binarize
from cknet.registry import Registry


def _phrase_pattern(phrase: str) -> str:
    words = [re.escape(w) for w in phrase.lower().split()]
    if words and not words[-1].endswith("s"):
        words[-1] += "s?"
    return r"\s+".join(words)


class KeywordLabeler:
    """Label reports for every node of a knowledge graph.

    Args:
        graph: the knowledge graph; one output column per node, in node order.
        patterns: optional ``{node: {"patterns": [regex, ...], "exclude": [...]}}``
            replacing the default (the node's name and synonyms as phrases) for the
            nodes it names.
        normal_node: name of a node meaning "no finding" (e.g. openi40's ``"normal"``):
            it is labelled 1 when no other node is positive or uncertain, else 0
            (CheXpert's "No Finding" rule); its own phrases are not used.
        ignore_for_normal: nodes that do not make a report abnormal (e.g. symptoms).

    Example:
        ```python
        g = KnowledgeGraph(["effusion", "atelectasis"], [(0, 1)])
        labeler = KeywordLabeler(g)
        labeler.label(["Small effusion. No atelectasis."]).tolist()   # [[1.0, 0.0]]
        ```
    """

    def __init__(
        self,
        graph: KnowledgeGraph,
        patterns: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        normal_node: str | None = None,
        ignore_for_normal: Sequence[str] = (),
    ) -> None:
        patterns = dict(patterns or {})
        unknown = sorted(set(patterns) - set(graph.nodes))
        if unknown:
            raise ValueError(f"patterns given for nodes not in the graph: {unknown}")
        for name in [normal_node, *ignore_for_normal]:
            if name is not None and name not in graph.nodes:
                raise ValueError(f"{name!r} is not a node of the graph")
        self.graph = graph
        self.normal_node = normal_node
        self._abnormal = [i for i, n in enumerate(graph.nodes)
                          if n != normal_node and n not in set(ignore_for_normal)]
        findings = []
        for node in graph.nodes:
            if node in patterns:
                spec = patterns[node]
                findings.append(Finding(node, list(spec["patterns"]), list(spec.get("exclude", ()))))
            else:
                phrases = [node, *graph.synonyms[node]]
                findings.append(Finding(node, [_phrase_pattern(p) for p in phrases]))
        self.rules = RuleLabeler(findings)

    @classmethod
    def openi40(cls, graph: KnowledgeGraph | None = None) -> KeywordLabeler:
        """The labeler tuned for the built-in openi40 graph on the IU X-Ray train split.

        Args:
            graph: the openi40 graph (default `KnowledgeGraph.openi40()`).

        Returns:
            The labeler.
        """
        graph = graph if graph is not None else KnowledgeGraph.openi40()
        path = resources.files("cknet") / "resources" / "labeler" / "openi40_patterns.json"
        spec = json.loads(path.read_text("utf-8"))
        return cls(graph, spec["patterns"], spec["normal_node"], spec["ignore_for_normal"])

    @property
    def nodes(self) -> list[str]:
        """Output columns: the graph's node names."""
        return list(self.graph.nodes)

    def label(self, reports: Iterable[str]) -> np.ndarray:
        """Label report texts.

        Args:
            reports: raw report texts.

        Returns:
            ``(num_reports, num_nodes)`` float array: 1 positive, 0 negative,
            -1 uncertain, NaN not mentioned.
        """
        labels = self.rules.label(reports)
        if self.normal_node is not None and len(labels):
            abnormal = labels[:, self._abnormal]
            any_finding = ((abnormal == 1) | (abnormal == -1)).any(axis=1)
            labels[:, self.graph.nodes.index(self.normal_node)] = np.where(any_finding, 0.0, 1.0)
        return labels

    def label_binary(self, reports: Iterable[str], uncertain: float = 0.0) -> np.ndarray:
        """`label`, then `binarize`.

        Args:
            reports: raw report texts.
            uncertain: what an uncertain mention counts as, 0 or 1.

        Returns:
            ``(num_reports, num_nodes)`` int64 0/1 labels.
        """
        return binarize(self.label(reports), uncertain)


KEYWORD_LABELERS: Registry[Callable[[KnowledgeGraph], KeywordLabeler]] = Registry(
    "keyword labeler", {"openi40": KeywordLabeler.openi40})


def register_keyword_labeler(graph_name: str,
                             factory: Callable[[KnowledgeGraph], KeywordLabeler] | None = None) -> Callable:
    """Use ``factory(graph)`` as the labeler of graphs named ``graph_name`` (tuned phrases
    for your graph's nodes); returns ``factory``. Without ``factory``, a decorator.

    Args:
        graph_name: the `KnowledgeGraph.name` it labels.
        factory: builds the labeler from the graph.
    """
    if factory is None:
        return lambda function: register_keyword_labeler(graph_name, function)
    return KEYWORD_LABELERS.register(graph_name, factory)


def keyword_labeler(graph: KnowledgeGraph) -> KeywordLabeler:
    """The labeler of a graph's nodes: the one registered for its name, else the generic
    `KeywordLabeler` over the nodes' names and synonyms.

    Args:
        graph: the knowledge graph.

    Returns:
        The labeler.
    """
    factory = KEYWORD_LABELERS.get(graph.name)
    return factory(graph) if factory is not None else KeywordLabeler(graph)
