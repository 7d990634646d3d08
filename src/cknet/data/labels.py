"""Finding labels users already have: CheXpert-style CSVs and IU X-Ray MeSH tags.

`load_label_csv` reads a table keyed by study id (e.g. MIMIC-CXR's
``mimic-cxr-2.0.0-chexpert.csv``) into a float array of 1 / 0 / -1 / NaN.

`load_mesh_labels` maps the human MeSH indexing of IU X-Ray reports (``mesh_tags.csv``:
``id, split, mesh, problems``; tags separated by ";", each "Term/qualifier/...") onto
the nodes of a `KnowledgeGraph`: a node is positive when one of its phrases (name or
synonym) occurs as whole words in a component of a tag, compared in lower case with
commas removed. "Fractures, Bone/clavicle" thus gives "fractures bone"; "Spine/
degenerative" gives openi40's "degenerative"; "Calcified Granuloma" gives both
"granuloma" and "calcified". Every other node is 0 (MeSH indexing lists what is present).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence

import numpy as np

from cknet.graph import KnowledgeGraph


def label_cell(cell: str | None, where: str) -> float:
    """A label CSV cell as a number: 1, 0, -1, or NaN for a blank.

    Args:
        cell: the cell's text.
        where: file, line and column, for the message.

    Raises:
        ValueError: for any other content, naming ``where``.
    """
    text = (cell or "").strip()
    try:
        value = float(text) if text else np.nan
    except ValueError:
        value = None
    if value is None or not (np.isnan(value) or value in (1.0, 0.0, -1.0)):
        raise ValueError(f"{where}: expected 1, 0, -1 or blank, got {text!r}")
    return value


def read_csv_rows(path: str | os.PathLike[str], needed: Sequence[str],
                  id_columns: Sequence[str]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and rows of a labels CSV, every row checked whole.

    Args:
        path: the file (UTF-8; a byte-order mark is read).
        needed: the columns it must have.
        id_columns: the columns whose joined values identify a row: no two rows may share them.

    Returns:
        ``(header, [(line number, row)])``.

    Raises:
        ValueError: naming the file, and the line where a row has too few or too many
            cells or repeats an id; for a missing column; for a file that is not UTF-8.
    """
    name = os.fspath(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            records = list(enumerate(reader, start=2))
    except UnicodeDecodeError as err:
        raise ValueError(f"{name} is not UTF-8 text: {err}") from None
    missing = [c for c in needed if c not in header]
    if missing:
        raise ValueError(f"{name} has no column(s) {missing}; it has {header}")
    seen: dict[str, int] = {}
    for line, record in records:
        if None in record or None in record.values():
            cells = len(header) + len(record.get(None) or []) - sum(v is None for v in record.values())
            raise ValueError(f"{name}, line {line}: {cells} cells where the header has {len(header)}")
        key = "_".join(record[c] for c in id_columns)
        if key in seen:
            raise ValueError(f"{name}, line {line}: the id {key!r} is given twice (also on line {seen[key]})")
        seen[key] = line
    return header, records


def load_label_csv(
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    id_column: str | Sequence[str] = "study_id",
) -> tuple[list[str], list[str], np.ndarray]:
    """Read labels keyed by study id from a CSV file.

    Args:
        path: the CSV file.
        columns: label columns to read (default: every column but the id columns).
        id_column: the column holding the study id, or several whose values are joined
            with "_" (e.g. ``["subject_id", "study_id"]``).

    Returns:
        ``(ids, columns, labels)`` with labels ``(num_rows, num_columns)`` float:
        1, 0, -1 as written, NaN for blank cells.

    Raises:
        ValueError: naming the file and the column when a column is missing or a cell
            is not 1, 0, -1 or blank; naming the line of a short or long row or a repeated id.
    """
    id_columns = [id_column] if isinstance(id_column, str) else list(id_column)
    header, records = read_csv_rows(path, id_columns + list(columns or []), id_columns)
    names = list(columns) if columns is not None else [c for c in header if c not in id_columns]
    ids, rows = [], []
    for line, record in records:
        ids.append("_".join(record[c] for c in id_columns))
        rows.append([label_cell(record[name], f"{os.fspath(path)}, line {line}, column {name!r}")
                     for name in names])
    labels = np.array(rows, dtype=float).reshape(len(rows), len(names))
    return ids, names, labels


def mesh_components(tags: str) -> list[str]:
    """Split a MeSH tag string into its components.

    Args:
        tags: ``";"``-separated tags, each ``"/"``-separated (as in ``mesh_tags.csv``).

    Returns:
        The lower-cased, comma-free components.
    """
    parts = []
    for tag in tags.split(";"):
        parts.extend(p.strip().lower().replace(",", "") for p in tag.split("/"))
    return [" ".join(p.split()) for p in parts if p.strip()]


def load_mesh_labels(
    path: str | os.PathLike[str],
    graph: KnowledgeGraph | None = None,
    column: str = "mesh",
) -> tuple[list[str], list[str], np.ndarray]:
    """Map IU X-Ray MeSH tags onto the nodes of a graph.

    Args:
        path: ``mesh_tags.csv`` with columns ``id``, ``split`` and ``column``.
        graph: the knowledge graph (default `KnowledgeGraph.openi40()`).
        column: ``"mesh"`` (terms with qualifiers) or ``"problems"`` (terms only).

    Returns:
        ``(ids, splits, labels)`` with labels ``(num_studies, num_nodes)`` int64 0/1.

    Raises:
        ValueError: if the file lacks a needed column, or a row is short, long or repeats
            an id (the line is named).
    """
    graph = graph if graph is not None else KnowledgeGraph.openi40()
    node_patterns = [
        re.compile("|".join(rf"\b{re.escape(p.lower())}\b" for p in [n, *graph.synonyms[n]]))
        for n in graph.nodes
    ]
    ids, splits, rows = [], [], []
    for _, record in read_csv_rows(path, ("id", "split", column), ("id",))[1]:
        components = mesh_components(record[column])
        ids.append(record["id"])
        splits.append(record["split"])
        rows.append([int(any(p.search(c) for c in components)) for p in node_patterns])
    return ids, splits, np.array(rows, dtype=np.int64).reshape(len(rows), graph.num_nodes)
