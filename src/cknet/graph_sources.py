"""Where a `KnowledgeGraph`'s edges come from, before a graph exists: an adjacency
matrix, an edge-list file, a training label matrix (co-occurrence), or a graph shipped
with cknet.

`cknet.graph` builds graphs from what these return (`KnowledgeGraph.from_adjacency`,
`KnowledgeGraph.from_edge_list`, `KnowledgeGraph.from_cooccurrence`,
`KnowledgeGraph.openi40`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from importlib import resources

import numpy as np
import torch


def adjacency_edges(adjacency: np.ndarray | torch.Tensor | Sequence[Sequence[float]],
                    num_nodes: int) -> list[tuple[int, int]]:
    """The edges of a symmetric ``(N, N)`` 0/1 adjacency matrix.

    Args:
        adjacency: the matrix (array-like).
        num_nodes: N, the number of node names given with it.

    Returns:
        Index pairs ``(a, b)`` with a < b.

    Raises:
        ValueError: if the matrix is not square, does not match the nodes, is not
            symmetric, or has a non-zero diagonal.
    """
    matrix = np.asarray(adjacency.cpu() if isinstance(adjacency, torch.Tensor) else adjacency)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"adjacency must be a square matrix, got shape {matrix.shape}")
    if matrix.shape[0] != num_nodes:
        raise ValueError(f"adjacency is {matrix.shape[0]}x{matrix.shape[1]} but {num_nodes} nodes were given")
    if not np.array_equal(matrix, matrix.T):
        raise ValueError("adjacency must be symmetric (the graph is undirected)")
    if np.any(np.diag(matrix) != 0):
        raise ValueError("adjacency has a non-zero diagonal: self-loops are not allowed")
    rows, cols = np.nonzero(np.triu(matrix))
    return list(zip(rows.tolist(), cols.tolist()))


def read_edge_list(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """The ``a,b`` (or tab-separated) pairs of a text file, one a line; blank lines and
    ``#`` comments skipped.

    Args:
        path: the file.

    Returns:
        The named pairs, in file order.

    Raises:
        ValueError: naming the file and line of a malformed pair.
    """
    pairs = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = [p.strip() for p in text.replace("\t", ",").split(",")]
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"{os.fspath(path)}, line {number}: expected 'node_a,node_b', got {text!r}")
            pairs.append((parts[0], parts[1]))
    return pairs


def cooccurrence_edges(labels: np.ndarray, nodes: Sequence[str], min_count: int,
                       min_probability: float) -> list[tuple[int, int]]:
    """Pairs of findings positive together in at least ``min_count`` studies, with
    P(a | b) or P(b | a) at least ``min_probability``.

    Args:
        labels: ``(num_studies, N)``; 1 is positive, anything else (0, -1, NaN) not.
        nodes: the N node names.
        min_count: fewest studies positive for both ends of an edge.
        min_probability: smallest P(a | b) or P(b | a) of an edge.

    Returns:
        Index pairs ``(a, b)`` with a < b.

    Raises:
        ValueError: if the label matrix does not match ``nodes``.
    """
    matrix = np.asarray(labels, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] != len(nodes):
        raise ValueError(f"labels must have shape (num_studies, {len(nodes)}) to match nodes, "
                         f"got {matrix.shape}")
    positive = (matrix == 1).astype(np.int64)
    together = positive.T @ positive  # (N, N) co-occurrence counts
    counts = np.diag(together).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        conditional = np.nan_to_num(together / counts[None, :])  # P(row | column)
    strongest = np.maximum(conditional, conditional.T)
    keep = (together >= min_count) & (strongest >= min_probability)
    np.fill_diagonal(keep, False)
    rows, cols = np.nonzero(np.triu(keep))
    return list(zip(rows.tolist(), cols.tolist()))


def builtin_graph(name: str) -> dict:
    """The JSON form of a graph shipped with cknet.

    Args:
        name: its file name in ``cknet/resources/graphs``: ``"openi40"`` or ``"chexpert14"``.

    Returns:
        The graph's JSON form (nodes, edges, name).
    """
    return json.loads((resources.files("cknet") / "resources" / "graphs" / f"{name}.json").read_text("utf-8"))
