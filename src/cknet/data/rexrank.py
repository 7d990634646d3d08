"""ReXrank's files: its test sets and the prediction JSON a submission returns.

ReXrank (rajpurkarlab/ReXrank) publishes each test set as one JSON object keyed by study
id; every study holds ``image_path`` (its images, relative to the image folder),
``key_image_path`` (the frontal image, for single-image models), ``section_findings``,
``section_impression``, ``report`` (``"Findings: " + findings + " Impression: " +
impression``), ``context``, ``split`` and ``frontal_lateral``. A submission's inference
script writes the same object with a ``model_prediction`` added to every study, and
ReXrank's evaluation script scores ``model_prediction`` against ``"Findings: {findings}
Impression: {impression}"``.

`cknet generate --rexrank TEST.json` reads a test set and writes the prediction JSON;
`cknet evaluate` and `cknet compare` read prediction JSON like cknet's own files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PREDICTION = "model_prediction"


def is_rexrank(data: Any) -> bool:
    """Whether parsed JSON has ReXrank's layout: an object of studies, each an object.

    Args:
        data: the parsed JSON.
    """
    return isinstance(data, dict) and bool(data) and all(isinstance(v, dict) for v in data.values())


def rexrank_reference(study: dict[str, Any]) -> str:
    """The reference ReXrank's evaluation scores against: ``"Findings: {findings}
    Impression: {impression}"``, a missing section written ``None`` as its script writes it.

    Args:
        study: one study of a ReXrank file (``section_findings``/``section_impression``,
            or ``findings``/``impression`` in the older MIMIC-CXR example).
    """
    findings = study.get("section_findings", study.get("findings"))
    impression = study.get("section_impression", study.get("impression"))
    return f"Findings: {findings} Impression: {impression}"


def rexrank_records(
    data: dict[str, dict[str, Any]], path: str | os.PathLike[str], with_prediction: bool = True
) -> list[dict[str, Any]]:
    """A ReXrank file as cknet's records (id, prediction, reference).

    Args:
        data: the parsed JSON (`is_rexrank`).
        path: the file, for messages.
        with_prediction: read ``model_prediction`` (a prediction file); without, only
            the references (a test set given as ``--references``).

    Raises:
        ValueError: naming the studies without a ``model_prediction`` or without any
            report section.
    """
    missing = [key for key, study in data.items() if PREDICTION not in study] if with_prediction else []
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} of {len(data)} studies have no {PREDICTION!r} (e.g. {missing[:3]}): "
            f"a ReXrank test set must go through `cknet generate --rexrank` first"
        )
    sections = ("section_findings", "section_impression", "findings", "impression")
    empty = [key for key, study in data.items() if all(study.get(s) is None for s in sections)]
    if empty:
        raise ValueError(
            f"{path}: {len(empty)} studies have neither findings nor impression (e.g. {empty[:3]})"
        )
    return [
        {"id": key, "reference": rexrank_reference(study)}
        | ({"prediction": study[PREDICTION]} if with_prediction else {})
        for key, study in data.items()
    ]


def read_rexrank(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """A ReXrank test set or prediction file.

    Args:
        path: the JSON file.

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: when it is not JSON in ReXrank's layout.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable JSON file: {err}") from None
    if not is_rexrank(data):
        raise ValueError(f"{path} is not in ReXrank's layout (a JSON object of studies keyed by study id)")
    return data


def rexrank_views(study: dict[str, Any], key: str, num_views: int) -> list[str]:
    """The images of a study a model with ``num_views`` views reads: the first
    ``num_views`` of ``image_path``, or ``key_image_path`` (the frontal image) for one.

    Args:
        study: one study of a ReXrank test set.
        key: its id, for messages.
        num_views: the model's views.

    Raises:
        ValueError: when the study lists no image.
    """
    if num_views == 1 and study.get("key_image_path"):
        return [study["key_image_path"]]
    paths = study.get("image_path") or ([study["key_image_path"]] if study.get("key_image_path") else [])
    if not paths:
        raise ValueError(f"study {key!r} lists no image (image_path, key_image_path)")
    return list(paths)[:num_views]
