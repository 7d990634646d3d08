"""RadGraph F1: the overlap of a report's RadGraph annotation (`cknet.metrics.radgraph`)
with its reference's.

The annotations are compared as sets (the ``F1RadGraph`` rewards of the ``radgraph``
package 0.1.18):

- ``simple``: (tokens, label) of every entity;
- ``partial``: (tokens, label) of entities without relations, (tokens, label, True) of
  the others;
- ``complete``: (tokens, label) of entities without relations, (tokens, label,
  relation, target tokens) of each relation of the others, these lower-cased;
- ``combined`` (RadCliQ's RadGraph term, as RadEval computes it): the mean of the
  entity F1 over (tokens, label) and the relation F1 over (source, target, relation),
  case kept.

Each is F1 = 2PR/(P+R) over the two sets; an empty report on either side, or one
without entities (for the three rewards), scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class RadGraphScores:
    """Per-study RadGraph F1.

    Attributes:
        simple: ``(n,)`` entity F1 (the package's ``"simple"`` reward).
        partial: ``(n,)`` entity F1 with "has a relation" (``"partial"``).
        complete: ``(n,)`` entity and relation F1 (``"complete"``, RadGraph F1 in RRG24).
        combined: ``(n,)`` RadCliQ's term: mean of entity F1 and relation F1.
    """

    simple: np.ndarray
    partial: np.ndarray
    complete: np.ndarray
    combined: np.ndarray


def _f1(candidate: set, reference: set) -> float:
    hits = len(candidate & reference)
    precision = hits / len(candidate) if candidate else 0.0
    recall = hits / len(reference) if reference else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _reward_sets(graph: dict[str, Any], lowercase: bool) -> tuple[set, set, set]:
    def case(text: str) -> str:
        return text.lower() if lowercase else text

    simple, partial, complete = set(), set(), set()
    entities = graph["entities"]
    for entity in entities.values():
        key = (case(entity["tokens"]), entity["label"])
        simple.add(key)
        if entity["relations"]:
            partial.add((*key, True))
            complete.update(
                (entity["tokens"].lower(), entity["label"], rel, entities[target]["tokens"].lower())
                for rel, target in entity["relations"]
            )
        else:
            partial.add(key)
            complete.add(key)
    return simple, partial, complete


def _combined(candidate: dict[str, Any], reference: dict[str, Any]) -> float:
    def sets(graph: dict[str, Any]) -> tuple[set, set]:
        entities = graph["entities"]
        nodes = {(e["tokens"], e["label"]) for e in entities.values()}
        edges = {
            ((e["tokens"], e["label"]), (entities[t]["tokens"], entities[t]["label"]), rel)
            for e in entities.values()
            for rel, t in e["relations"]
        }
        return nodes, edges

    (hyp_nodes, hyp_edges), (ref_nodes, ref_edges) = sets(candidate), sets(reference)
    return (_f1(hyp_nodes, ref_nodes) + _f1(hyp_edges, ref_edges)) / 2


def radgraph_f1(
    candidate: dict[str, Any], reference: dict[str, Any], lowercase: bool = False
) -> tuple[float, float, float, float]:
    """RadGraph F1 of one report's annotation against its reference's (module docstring).

    Args:
        candidate: the generated report's annotation (`RadGraph.annotate`'s layout).
        reference: the reference's annotation.
        lowercase: compare every entity lower-cased in the three rewards (the fix on
            the package's main branch, unreleased); by default as 0.1.18 compares them.

    Returns:
        ``(simple, partial, complete, combined)``.
    """
    combined = _combined(candidate, reference)
    if not candidate["entities"] or not reference["entities"]:
        return 0.0, 0.0, 0.0, combined
    rewards = [
        _f1(h, r)
        for h, r in zip(_reward_sets(candidate, lowercase), _reward_sets(reference, lowercase), strict=True)
    ]
    return rewards[0], rewards[1], rewards[2], combined
