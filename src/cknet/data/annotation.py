"""`AnnotationDataset`: studies of an R2Gen-format ``annotation.json`` and image folder.

The layout of R2Gen, R2GenCMN and the CKNet release: ``{"train": [...], "val": [...],
"test": [...]}``, each entry ``{"id", "report", "image_path": [relative paths], "split"}``,
the paths relative to an image root. IU X-Ray studies have two views (frontal, lateral),
encoded by one shared backbone; MIMIC-CXR studies use their first view.

Studies are read with `cknet.data.transforms`: the training transform (random crops)
or the evaluation one. `read_annotation` is the one reader of the file, for the
datasets, the tokenizer and the command line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cknet.config import CKNetConfig
from cknet.data.images import load_image
from cknet.data.transforms import evaluation_transform, training_transform

ALLOW_OUTSIDE_ENV = "CKNET_ALLOW_OUTSIDE_IMAGES"
"""Set to ``1`` to let annotations name images outside their image folder (absolute
paths, or paths through ``..``), for every command and reader."""


def outside_image_path(path: str) -> bool:
    """Whether an annotation's image path leaves its image folder: absolute, or through ``..``.

    Args:
        path: an entry's ``image_path`` item.
    """
    parts = Path(path).parts
    return Path(path).is_absolute() or ".." in parts or (bool(parts) and parts[0].startswith("~"))


def read_annotation(path: str | os.PathLike[str],
                    allow_outside: bool | None = None) -> dict[str, list[dict[str, Any]]]:
    """Read an R2Gen ``annotation.json``.

    Args:
        path: the file.
        allow_outside: accept image paths that leave the image folder (absolute, or
            through ``..``), for images kept elsewhere on purpose; default: only when the
            environment variable ``CKNET_ALLOW_OUTSIDE_IMAGES`` is ``1``. Refused by
            default, so that an annotation from elsewhere cannot make cknet read
            ``/etc/passwd`` or ``../../`` files.

    Returns:
        ``{split: [entries]}``.

    Raises:
        ValueError: naming the file when it is not ``{split: [entries]}`` with ``id``,
            ``report`` and ``image_path`` in every entry, or an image path leaves the
            image folder (not allowed).
    """
    if allow_outside is None:
        allow_outside = os.environ.get(ALLOW_OUTSIDE_ENV) == "1"
    name = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            annotation = json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} is not valid JSON: {err}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{name} is not UTF-8 text ({err}); save the annotation as UTF-8") from None
    if not isinstance(annotation, dict) or not all(isinstance(v, list) for v in annotation.values()):
        raise ValueError(f"{name}: expected {{split: [entries]}} as R2Gen writes it")
    ids: dict[str, str] = {}
    for split, entries in annotation.items():
        for index, entry in enumerate(entries):
            where = f"{name}: {split}[{index}]"
            if not isinstance(entry, dict):
                raise ValueError(f"{where} is a {type(entry).__name__}, not an entry "
                                 f'{{"id", "report", "image_path"}}')
            missing = [k for k in ("id", "report", "image_path") if k not in entry]
            if missing:
                raise ValueError(f"{where} lacks {missing}")
            paths = entry["image_path"]
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise ValueError(f"{where}: image_path must be a list of relative paths (one per view), "
                                 f"got {paths!r}")
            outside = [p for p in paths if outside_image_path(p)]
            if outside and not allow_outside:
                raise ValueError(f"{where}: the image path {outside[0]!r} leaves the image folder; paths "
                                 f"are relative to it. To read images kept elsewhere on purpose, set "
                                 f"{ALLOW_OUTSIDE_ENV}=1 (or read_annotation(..., allow_outside=True))")
            key = str(entry["id"])
            if key in ids:
                raise ValueError(f"{where}: the id {key!r} is given twice (also in {ids[key]}); each study "
                                 f"must have its own id")
            ids[key] = f"{split}[{index}]"
    return annotation


class AnnotationDataset(Dataset):
    """One split of an R2Gen-format dataset.

    Args:
        annotation: path of ``annotation.json`` or the parsed dict.
        image_dir: root of the entries' ``image_path`` (default: ``images/`` beside the
            annotation file).
        split: ``"train"``, ``"val"`` or ``"test"``.
        config: the model config: number of views, image size and normalisation.
        train: use the training transform (random crops) instead of the evaluation one.
        flip: random horizontal flips in training (off by default).
        labels: optional ``{study id: (N,) labels}`` returned with each study.
        skip_invalid: drop studies whose images are missing or unreadable (checked once,
            here) instead of failing when they are read; ``skipped`` lists them.

    Items are dicts: ``id`` (str), ``images`` ``(V, 3, S, S)``, ``report`` (str) and,
    with ``labels``, ``labels`` ``(N,)`` float32.

    Raises:
        ValueError: for an unknown split, a study with too few views, or a study
            without labels when ``labels`` is given.
    """

    def __init__(
        self,
        annotation: str | os.PathLike[str] | Mapping[str, Any],
        image_dir: str | os.PathLike[str] | None = None,
        split: str = "train",
        config: CKNetConfig | None = None,
        train: bool = False,
        flip: bool = False,
        labels: Mapping[str, np.ndarray] | None = None,
        skip_invalid: bool = False,
    ) -> None:
        if isinstance(annotation, (str, os.PathLike)):
            root = Path(annotation).parent
            annotation = read_annotation(annotation)
        else:
            root = Path(".")
        if split not in annotation:
            raise ValueError(f"split {split!r} not in the annotation (has {sorted(annotation)})")
        self.config = config if config is not None else CKNetConfig()
        self.image_dir = Path(image_dir) if image_dir is not None else root / "images"
        self.train, self.flip, self.labels = train, flip, labels
        self.skipped: list[str] = []
        self.entries = []
        views = self.config.num_views
        for entry in annotation[split]:
            if len(entry["image_path"]) < views:
                raise ValueError(
                    f"study {entry['id']} has {len(entry['image_path'])} image(s) but the model takes {views}"
                    + (" (one view per study, as MIMIC-CXR: cknet pretrain-graph --dataset mimic_cxr, "
                       "cknet train --config mimic_cxr, or CKNetConfig(num_views=1))"
                       if len(entry["image_path"]) == 1 else "")
                )
            if labels is not None and entry["id"] not in labels:
                raise ValueError(f"no labels for study {entry['id']}")
            if skip_invalid and not self._readable(entry):
                self.skipped.append(entry["id"])
                continue
            self.entries.append(entry)

    def _paths(self, entry: Mapping[str, Any]) -> list[Path]:
        return [self.image_dir / p for p in entry["image_path"][: self.config.num_views]]

    def _readable(self, entry: Mapping[str, Any]) -> bool:
        from PIL import Image

        for path in self._paths(entry):
            try:
                with Image.open(path) as image:
                    image.verify()
            except (OSError, SyntaxError, ValueError):
                return False
        return True

    def __len__(self) -> int:
        return len(self.entries)

    def reports(self) -> list[str]:
        """The studies' reports, in order (without reading images)."""
        return [e["report"] for e in self.entries]

    def study_ids(self) -> list[str]:
        """The studies' ids, in order."""
        return [e["id"] for e in self.entries]

    def label_matrix(self) -> np.ndarray:
        """``(len(self), N)`` labels of the studies, in order (without reading images).

        Raises:
            ValueError: if the dataset was built without labels.
        """
        if self.labels is None:
            raise ValueError("this AnnotationDataset was built without labels")
        return np.stack([np.asarray(self.labels[e["id"]], dtype=float) for e in self.entries])

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        views = []
        for path in self._paths(entry):
            try:
                image = load_image(path)
            except (FileNotFoundError, ValueError) as err:
                raise type(err)(f"study {entry['id']}: {err}") from None
            if self.train:
                views.append(training_transform(image, self.config, self.flip))
            else:
                views.append(evaluation_transform(image, self.config))
        item = {"id": entry["id"], "images": torch.stack(views), "report": entry["report"]}
        if self.labels is not None:
            item["labels"] = torch.as_tensor(np.asarray(self.labels[entry["id"]], dtype=np.float32))
        return item
