"""`StudyDataset`: studies from records in any form, for data that is not in R2Gen's
layout: a list of dicts (`StudyDataset.from_records`), or the rows of a Hugging Face
``datasets.Dataset`` or any sequence of row dicts (`StudyDataset.from_rows`).

Items are of the study form (`cknet.data.studies`): ``id``, ``images`` ``(V, 3, S, S)``
read with the configuration's transform, ``report`` and, when the records have them,
``labels`` ``(N,)``; so the datasets go straight into `cknet.training.pipeline`
(`StudySplits`), `cknet.evaluation.evaluate` or a ``DataLoader`` with
`cknet.data.collate`. Rows are read when an item is asked for, so a Hugging Face dataset
is never loaded whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cknet.config import CKNetConfig
from cknet.data.images import load_image
from cknet.data.transforms import evaluation_transform, training_transform


class StudyDataset(Dataset):
    """Studies read from rows on demand; build it with `from_records` or `from_rows`.

    Args:
        rows: a sequence of row dicts (indexable, with ``len``).
        image_key: the row key of the image(s): one image or a list of views, each a
            path, a PIL image or an array.
        report_key: the row key of the report.
        id_key: the row key of the study id (None: the row's index, as a string).
        labels_key: the row key of ``(N,)`` labels, or None.
        image_root: the folder relative image paths are read from.
        config: the model config: number of views, image size, normalisation.
        train: use the training transform (random crops).
        flip: random horizontal flips in training.
    """

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        image_key: str,
        report_key: str,
        id_key: str | None = None,
        labels_key: str | None = None,
        image_root: str | os.PathLike[str] | None = None,
        config: CKNetConfig | None = None,
        train: bool = False,
        flip: bool = False,
    ) -> None:
        self.rows, self.image_key, self.report_key = rows, image_key, report_key
        self.id_key, self.labels_key = id_key, labels_key
        self.image_root = Path(image_root) if image_root is not None else None
        self.config = config if config is not None else CKNetConfig()
        self.train, self.flip = train, flip

    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, Any]],
        image_root: str | os.PathLike[str] | None = None,
        config: CKNetConfig | None = None,
        train: bool = False,
        flip: bool = False,
    ) -> StudyDataset:
        """Studies from a list of dicts ``{"id", "image_path", "report"[, "labels"]}``.

        Args:
            records: the studies; ``image_path`` one path or a list (one per view),
                relative to ``image_root`` or absolute; ``labels`` optional ``(N,)`` 0/1.
            image_root: the folder of relative paths.
            config: the model config.
            train: use the training transform.
            flip: random horizontal flips in training.

        Raises:
            ValueError: naming the first record that lacks a key or repeats an id.
        """
        records = list(records)
        seen: dict[str, int] = {}
        for index, record in enumerate(records):
            missing = [k for k in ("id", "image_path", "report") if k not in record]
            if missing:
                raise ValueError(f"record {index} lacks {missing}; each needs id, image_path and report")
            key = str(record["id"])
            if key in seen:
                raise ValueError(f"record {index} repeats the id {key!r} of record {seen[key]}")
            seen[key] = index
        has_labels = bool(records) and all("labels" in r for r in records)
        return cls(
            records,
            "image_path",
            "report",
            "id",
            "labels" if has_labels else None,
            image_root,
            config,
            train,
            flip,
        )

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Mapping[str, Any]],
        image_column: str,
        report_column: str,
        id_column: str | None = None,
        labels_column: str | None = None,
        config: CKNetConfig | None = None,
        train: bool = False,
        flip: bool = False,
    ) -> StudyDataset:
        """Studies from a Hugging Face ``datasets.Dataset`` (one split) or any sequence of
        row dicts, with the columns named by the user.

        Args:
            rows: e.g. ``load_dataset(...)["train"]``.
            image_column: the column of the image (a PIL image, as ``datasets.Image``
                decodes it) or of a list of views.
            report_column: the column of the report text.
            id_column: the column of the study id (None: the row's index).
            labels_column: a column of ``(N,)`` labels, or None.
            config: the model config.
            train: use the training transform.
            flip: random horizontal flips in training.

        Raises:
            ValueError: naming the column the rows lack.
        """
        names = getattr(rows, "column_names", None)
        if names is None and len(rows):
            names = list(rows[0].keys())
        wanted = [c for c in (image_column, report_column, id_column, labels_column) if c is not None]
        missing = [c for c in wanted if names is not None and c not in names]
        if missing:
            raise ValueError(f"the rows have no column(s) {missing}; they have {list(names or [])}")
        return cls(rows, image_column, report_column, id_column, labels_column, None, config, train, flip)

    def __len__(self) -> int:
        return len(self.rows)

    def _column(self, key: str) -> list[Any]:
        column_names = getattr(self.rows, "column_names", None)
        if column_names is not None:  # a datasets.Dataset reads one column without decoding images
            return list(self.rows[key])
        return [row[key] for row in self.rows]

    def reports(self) -> list[str]:
        """The studies' reports, in order, without reading images."""
        return [str(text) for text in self._column(self.report_key)]

    def study_ids(self) -> list[str]:
        """The studies' ids, in order."""
        if self.id_key is None:
            return [str(i) for i in range(len(self))]
        return [str(key) for key in self._column(self.id_key)]

    def _image(self, view: Any) -> Any:
        if isinstance(view, (str, os.PathLike)) and self.image_root is not None:
            return self.image_root / view
        return view

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        key = str(row[self.id_key]) if self.id_key is not None else str(index)
        views = row[self.image_key]
        views = list(views) if isinstance(views, (list, tuple)) else [views]
        if len(views) < self.config.num_views:
            raise ValueError(
                f"study {key} has {len(views)} image(s) but the model takes {self.config.num_views}"
            )
        images = []
        for view in views[: self.config.num_views]:
            try:
                image = load_image(self._image(view))
            except (FileNotFoundError, ValueError) as err:
                raise type(err)(f"study {key}: {err}") from None
            images.append(
                training_transform(image, self.config, self.flip)
                if self.train
                else evaluation_transform(image, self.config)
            )
        item = {"id": key, "images": torch.stack(images), "report": str(row[self.report_key])}
        if self.labels_key is not None:
            item["labels"] = torch.as_tensor(np.asarray(row[self.labels_key], dtype=np.float32))
        return item
