"""Releases as their owners publish them -> R2Gen's layout, with a record of what was
done: ``cknet prepare mimic-cxr | iu-xray | chexpert-plus``.

- `sections`: reports split at their headings (after MIT-LCP's MIMIC-CXR parser);
- `tables`: the release's CSV tables (plain or gzipped) and report files (folder or zip);
- `folder`: the output folder, marked, resumable, never written over;
- `mimic_cxr`, `iu_xray`, `chexpert_plus`: one reader per release.

Each ``prepare_*`` function writes ``OUT/annotation.json`` (train / val / test), the
images (read in place through a link ``OUT/images``, or resized copies), a label table
where the release has labels, ``dropped.csv`` and ``PREPARED.md``; ``cknet train
--data-dir OUT`` then reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cknet.data.prepare.chexpert_plus import read_chexpert_plus
from cknet.data.prepare.folder import Prepared, open_output, write_prepared
from cknet.data.prepare.iu_xray import read_iu_xray
from cknet.data.prepare.mimic_cxr import read_mimic_cxr
from cknet.persistence.files import folder_lock

PathLike = str | os.PathLike[str]


def _write(
    dataset: str, output: PathLike, settings: dict, read, image_size: int | None, workers: int, progress: bool
) -> Prepared:
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    output = Path(output)
    resumed = open_output(output, dataset, settings)
    with folder_lock(output, f"cknet prepare {dataset}"):
        prepared = read()
        write_prepared(output, dataset, prepared, settings, image_size, resumed, workers, progress)
    return prepared


def prepare_mimic_cxr(
    images: PathLike,
    reports: PathLike,
    output: PathLike,
    section: str = "findings",
    image_size: int | None = None,
    workers: int = 0,
    progress: bool = True,
) -> Prepared:
    """MIMIC-CXR-JPG and its reports -> ``output`` (see `cknet.data.prepare.mimic_cxr`).

    Args:
        images: the MIMIC-CXR-JPG folder (``files/`` and the ``mimic-cxr-2.0.0-*`` tables).
        reports: ``mimic-cxr-reports.zip`` or its unpacked folder.
        output: the folder to write (new, empty, or this same preparation to finish).
        section: ``"findings"``, ``"impression"`` or ``"both"``.
        image_size: the shorter side of resized copies; None reads the images in place.
        workers: threads for the copies (0: one per CPU).
        progress: show a progress bar.

    Returns:
        What was prepared.
    """
    settings = {
        "images": str(Path(images).resolve()),
        "reports": str(Path(reports).resolve()),
        "section": section,
        "image_size": image_size,
    }
    return _write(
        "mimic-cxr",
        output,
        settings,
        lambda: read_mimic_cxr(Path(images), Path(reports), section),
        image_size,
        workers,
        progress,
    )


def prepare_iu_xray(
    reports: PathLike,
    images: PathLike,
    output: PathLike,
    section: str = "findings",
    image_size: int | None = None,
    workers: int = 0,
    progress: bool = True,
) -> Prepared:
    """The Open-i IU X-Ray release -> ``output`` (see `cknet.data.prepare.iu_xray`).

    Args:
        reports: the ``ecgen-radiology`` folder of XML reports.
        images: the ``NLMCXR_png`` folder.
        output: the folder to write.
        section: ``"findings"``, ``"impression"`` or ``"both"``.
        image_size: the shorter side of resized copies; None reads the images in place.
        workers: threads for the copies (0: one per CPU).
        progress: show a progress bar.

    Returns:
        What was prepared.
    """
    settings = {
        "reports": str(Path(reports).resolve()),
        "images": str(Path(images).resolve()),
        "section": section,
        "image_size": image_size,
    }
    return _write(
        "iu-xray",
        output,
        settings,
        lambda: read_iu_xray(Path(reports), Path(images), section, copies=image_size is not None),
        image_size,
        workers,
        progress,
    )


def prepare_chexpert_plus(
    table: PathLike,
    images: PathLike,
    output: PathLike,
    section: str = "findings",
    val_percent: int = 2,
    image_size: int | None = None,
    workers: int = 0,
    progress: bool = True,
) -> Prepared:
    """CheXpert Plus -> ``output`` (see `cknet.data.prepare.chexpert_plus`).

    Args:
        table: ``df_chexpert_plus_*.csv``.
        images: the folder holding ``train/`` and ``valid/``.
        output: the folder to write.
        section: ``"findings"``, ``"impression"`` or ``"both"``.
        val_percent: the share of the training part's patients given to validation.
        image_size: the shorter side of resized copies; None reads the images in place.
        workers: threads for the copies (0: one per CPU).
        progress: show a progress bar.

    Returns:
        What was prepared.
    """
    if not 0 <= val_percent < 100:
        raise ValueError(f"val_percent must be in 0..99, got {val_percent}")
    settings = {
        "table": str(Path(table).resolve()),
        "images": str(Path(images).resolve()),
        "section": section,
        "val_percent": val_percent,
        "image_size": image_size,
    }
    return _write(
        "chexpert-plus",
        output,
        settings,
        lambda: read_chexpert_plus(
            Path(table), Path(images), section, val_percent, copies=image_size is not None
        ),
        image_size,
        workers,
        progress,
    )


__all__ = ["Prepared", "prepare_chexpert_plus", "prepare_iu_xray", "prepare_mimic_cxr"]
