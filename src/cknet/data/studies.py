"""The study form: what a dataset of studies yields, and its reports and ids read
without decoding images.

A dataset of studies is any map-style dataset whose items are dicts with

- ``"id"``: the study's id (str);
- ``"images"``: ``(V, 3, S, S)`` float images, preprocessed (`cknet.data.transforms`),
  or, from a `cknet.training.FeatureCache`, ``"maps"`` and ``"knowledge_matrix"``;
- ``"report"``: the reference report (str);
- ``"labels"``: ``(N,)`` 0/1 labels of the graph's nodes (only to train the graph stage).

`cknet.data.AnnotationDataset`, `cknet.data.synthetic.SyntheticDataset` and
`cknet.training.FeatureCache` are such datasets, and have ``reports()`` and
``study_ids()`` methods that `study_reports` and `study_ids` use when present.
"""

from __future__ import annotations

from torch.utils.data import Dataset


def study_reports(data: Dataset) -> list[str]:
    """The reports of a dataset of studies, without reading images where it can.

    Args:
        data: `AnnotationDataset`, `FeatureCache`, `SyntheticDataset`, or any dataset of
            study dicts.

    Returns:
        The reports, in order.
    """
    if hasattr(data, "reports"):
        return list(data.reports())
    return [data[i]["report"] for i in range(len(data))]


def study_ids(data: Dataset) -> list[str]:
    """The study ids of a dataset, in order (see `study_reports`).

    Args:
        data: the dataset.

    Returns:
        The ids.
    """
    if hasattr(data, "study_ids"):
        return list(data.study_ids())
    return [data[i]["id"] for i in range(len(data))]
