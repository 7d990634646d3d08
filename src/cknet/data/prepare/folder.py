"""The folder `cknet prepare` writes: marked as a prepared dataset, resumable, and written
so that nothing the user has is replaced or deleted.

``OUT/`` holds ``annotation.json`` (R2Gen's layout), ``images/`` (resized copies, or a
link to the release's own image folder), a label table, ``dropped.csv`` (every study or
image left out and why), ``PREPARED.md`` (sources, checksums, counts, rules, cknet
version) and the marker ``cknet.json`` of kind ``"dataset"``, which records the dataset
and the settings. A second run with the same settings finishes what the first left
(copies whose files exist are kept) or says that nothing is left; other settings, or a
folder cknet did not mark, are refused.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cknet.persistence.files import write_atomic, write_text_atomic
from cknet.persistence.folders import FORMAT, MARKER, check_kind, read_marker
from cknet.version import __version__

SPLITS = ("train", "val", "test")


@dataclass
class Prepared:
    """What a prepare command built: the annotation's entries and what was left out.

    Attributes:
        annotation: ``{split: [entries]}`` in R2Gen's layout.
        dropped: ``[(id, reason)]`` of the studies or images left out.
        images: ``[(source file, path under images/)]`` to copy (resized), or empty when
            the images are read in place.
        image_root: the folder the entries' image paths are relative to when read in place.
        sources: file name -> SHA-256 (or a description for folders) of each input.
        rules: the extraction rules, for ``PREPARED.md`` (Markdown lines).
        labels: ``(header, rows)`` of the label table, or None.
        labels_file: its name, e.g. ``"labels.csv"``.
        labels_use: how to use it, for ``PREPARED.md``.
        next_steps: the commands that train on it (``OUT`` stands for the folder).
    """

    annotation: dict[str, list[dict[str, Any]]]
    dropped: list[tuple[str, str]]
    images: list[tuple[Path, str]] = field(default_factory=list)
    image_root: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    labels: tuple[list[str], list[list[str]]] | None = None
    labels_file: str = "labels.csv"
    labels_use: str = ""
    next_steps: list[str] = field(default_factory=list)


def open_output(folder: Path, dataset: str, settings: Mapping[str, Any]) -> bool:
    """Make ``folder`` ready for a prepared dataset.

    Args:
        folder: the output folder.
        dataset: e.g. ``"mimic-cxr"``.
        settings: the options that decide its content (sources, section, image size).

    Returns:
        Whether the folder already held this dataset prepared with these settings (a resume).

    Raises:
        FileExistsError: for a folder of another kind, a non-empty folder cknet did not
            mark, or one prepared from other sources or settings.
    """
    check_kind(folder, "dataset", writing=True)
    wanted = {"dataset": dataset, "settings": dict(settings)}
    if (folder / MARKER).is_file():
        marker = read_marker(folder)
        found = {"dataset": marker.get("dataset"), "settings": marker.get("settings")}
        if found != json.loads(json.dumps(wanted)):
            raise FileExistsError(
                f"{folder} holds {found['dataset']} prepared with {found['settings']}, not "
                f"{dataset} with {dict(settings)}: choose another folder"
            )
        return True
    folder.mkdir(parents=True, exist_ok=True)
    marker = {
        "kind": "dataset",
        "format": FORMAT,
        "cknet": __version__,
        "save_id": uuid.uuid4().hex,
        **wanted,
    }
    write_text_atomic(folder / MARKER, json.dumps(marker, indent=1) + "\n")
    return False


def check_image_paths(prepared: Prepared) -> None:
    """Refuse a preparation whose image paths, built from the release's tables, XML or
    archive members, leave their folders: every source must resolve (links followed)
    under the release's image folder, and every path under ``images/`` must be relative
    and free of ``..``, so that nothing is read or written outside the given folders.

    Args:
        prepared: what the reader built (``images`` and ``image_root``).

    Raises:
        ValueError: naming the study and the path at fault.
    """
    owner = {path: entry["id"] for entries in prepared.annotation.values() for entry in entries
             for path in entry["image_path"]}
    root = prepared.image_root.resolve() if prepared.image_root is not None else None
    for source, relative in prepared.images:
        where = f"study {owner.get(relative, '?')}: image path {relative!r}"
        parts = Path(relative).parts
        if not relative or Path(relative).is_absolute() or ".." in parts or "\\" in relative:
            raise ValueError(f"{where} is not a relative path inside the image folder; the release's "
                             f"table or report names a file outside it")
        if root is not None and not source.resolve().is_relative_to(root):
            raise ValueError(f"{where} resolves to {source.resolve()}, outside the image folder {root}")


def refuse_split_leaks(annotation: Mapping[str, Sequence[Mapping[str, Any]]], key: str, what: str,
                       source: Path | str) -> None:
    """Refuse a split in which one study or patient (the entries' ``key``) is in two
    splits: a model would be tested on what it was trained on.

    Args:
        annotation: ``{split: [entries]}``.
        key: the entries' field that names the study or patient.
        what: its name in the message (``"study"``, ``"patient"``).
        source: the table that assigned the splits, for the message.

    Raises:
        ValueError: naming the first ids (at most five) and their splits.
    """
    splits: dict[Any, set[str]] = {}
    for split, entries in annotation.items():
        for entry in entries:
            splits.setdefault(entry[key], set()).add(split)
    leaks = sorted((str(k), sorted(v)) for k, v in splits.items() if len(v) > 1)
    if leaks:
        named = "; ".join(f"{what} {k} in {' and '.join(v)}" for k, v in leaks[:5])
        raise ValueError(f"{source} puts {len(leaks)} {what}(s) in two splits ({named}): a model would be "
                         f"tested on what it was trained on; correct the table")


def link_images(folder: Path, image_root: Path) -> None:
    """Point ``folder/images`` at the release's image folder (images read in place).

    Args:
        folder: the output folder.
        image_root: the folder the annotation's image paths are relative to.

    Raises:
        FileExistsError: when ``images`` exists and is not that link.
    """
    link = folder / "images"
    target = image_root.resolve()
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.exists() or link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a link to {target}; choose another output folder")
    link.symlink_to(target, target_is_directory=True)


def resize_copy(source: Path, target: Path, size: int) -> None:
    """Write a copy of an image whose shorter side is ``size`` (never enlarged), in the
    target's format, atomically.

    Args:
        source: the release's image.
        target: the copy.
        size: the shorter side in pixels.
    """
    from PIL import Image

    with Image.open(source) as image:
        image = image.convert("L") if image.mode not in ("L", "RGB") else image
        scale = size / min(image.size)
        if scale < 1:
            image = image.resize(
                (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                Image.Resampling.BILINEAR,
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        jpeg = target.suffix.lower() in (".jpg", ".jpeg")
        write_atomic(target, lambda temporary: image.save(temporary, format="JPEG" if jpeg else "PNG",
                                                          **({"quality": 95} if jpeg else {})))


def copy_images(jobs: Sequence[tuple[Path, Path]], size: int, workers: int, progress: bool) -> list[str]:
    """Resized copies of the images not yet copied, in parallel.

    Args:
        jobs: ``[(source, target)]``.
        size: the shorter side.
        workers: threads.
        progress: show a progress bar.

    Returns:
        The sources that could not be read, as ``"path: reason"``.
    """
    from tqdm.auto import tqdm

    todo = [(s, t) for s, t in jobs if not t.is_file()]
    failed: list[str] = []

    def copy(job: tuple[Path, Path]) -> None:
        try:
            resize_copy(*job, size)
        except (OSError, ValueError, SyntaxError) as err:
            failed.append(f"{job[0]}: {err}")

    with (ThreadPoolExecutor(max(1, workers)) as pool,
          tqdm(total=len(todo), desc="images", unit="image", disable=not progress) as bar):
        for _ in pool.map(copy, todo):
            bar.update()
    return failed


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_prepared(
    folder: Path,
    dataset: str,
    prepared: Prepared,
    settings: Mapping[str, Any],
    image_size: int | None,
    resumed: bool,
    workers: int = 0,
    progress: bool = True,
    report: Callable[[str], object] = print,
) -> None:
    """Write (or finish) a prepared dataset: images, annotation, labels, the record.

    Args:
        folder: the output folder, opened with `open_output`.
        dataset: the dataset's name.
        prepared: what the reader built.
        settings: the options, for ``PREPARED.md``.
        image_size: the shorter side of the copies, or None to read the images in place.
        resumed: whether the folder held this preparation already (`open_output`).
        workers: threads for the copies (0: the number of CPUs).
        progress: show a progress bar.
        report: where the summary lines go.
    """
    check_image_paths(prepared)
    annotation_text = json.dumps(prepared.annotation, indent=1) + "\n"
    copies_done = all((folder / "images" / target).is_file() for _, target in prepared.images)
    if (
        resumed
        and (folder / "PREPARED.md").is_file()
        and copies_done
        and (folder / "annotation.json").is_file()
        and (folder / "annotation.json").read_text(encoding="utf-8") == annotation_text
    ):
        report(f"{folder} is complete: nothing left to do")
        return
    if image_size is None:
        assert prepared.image_root is not None
        link_images(folder, prepared.image_root)
        failed: list[str] = []
    else:
        jobs = [(source, folder / "images" / target) for source, target in prepared.images]
        failed = copy_images(jobs, image_size, workers or os.cpu_count() or 1, progress)
        bad = {line.split(": ", 1)[0] for line in failed}
        if bad:
            unreadable = {target for source, target in prepared.images if str(source) in bad}
            for split, entries in prepared.annotation.items():
                kept = [e for e in entries if not unreadable & set(e["image_path"])]
                prepared.dropped += [
                    (e["id"], "an image could not be read") for e in entries if e not in kept
                ]
                prepared.annotation[split] = kept
    write_text_atomic(folder / "annotation.json", json.dumps(prepared.annotation, indent=1) + "\n")
    write_text_atomic(folder / "dropped.csv", _csv_text(["id", "reason"], sorted(prepared.dropped)))
    if prepared.labels is not None:
        write_text_atomic(folder / prepared.labels_file, _csv_text(*prepared.labels))
    # PREPARED.md is written last: its presence says the folder is complete
    write_text_atomic(folder / "PREPARED.md", prepared_record(folder, dataset, prepared, settings, failed))
    counts = ", ".join(f"{split} {len(prepared.annotation.get(split, []))}" for split in SPLITS)
    report(f"{folder}: {counts} entries; {len(prepared.dropped)} left out (dropped.csv); see PREPARED.md")


def prepared_record(
    folder: Path, dataset: str, prepared: Prepared, settings: Mapping[str, Any], failed: Sequence[str]
) -> str:
    """The text of ``PREPARED.md``.

    Args:
        folder: the output folder (named in the commands it suggests).
        dataset: the dataset's name.
        prepared: what was built.
        settings: the options.
        failed: images that could not be read.
    """
    lines = [
        f"# {dataset}, prepared by cknet {__version__}",
        "",
        f"Written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        "## Settings",
        "",
    ]
    lines += [f"- {key}: `{value}`" for key, value in settings.items()]
    lines += ["", "## Sources", "", "| file | SHA-256 |", "|---|---|"]
    lines += [f"| {name} | {digest} |" for name, digest in prepared.sources.items()]
    lines += ["", "## Counts", "", "| split | entries | studies |", "|---|---|---|"]
    for split in SPLITS:
        entries = prepared.annotation.get(split, [])
        studies = len({str(e.get("study_id", e["id"])) for e in entries})
        lines.append(f"| {split} | {len(entries)} | {studies} |")
    lines += ["", "## Left out", "", "| reason | count |", "|---|---|"]
    lines += [
        f"| {reason} | {count} |" for reason, count in Counter(r for _, r in prepared.dropped).most_common()
    ]
    lines += ["", "Every one is listed in `dropped.csv`."]
    if failed:
        lines += ["", f"{len(failed)} image(s) could not be read, e.g. {failed[0]}"]
    lines += ["", "## Rules", "", *prepared.rules]
    if prepared.labels is not None:
        lines += [
            "",
            "## Labels",
            "",
            f"`{prepared.labels_file}`: {prepared.labels_use.replace('OUT', str(folder))}",
        ]
    images = (
        "resized copies in `images/`"
        if settings.get("image_size")
        else f"read in place: `images` links to `{Path(prepared.image_root or '.').resolve()}`"
    )
    lines += ["", "## Images", "", f"Images are {images}."]
    steps = [line.replace("OUT", str(folder)) for line in prepared.next_steps]
    lines += ["", "## Next", "", "```bash", *steps, "```", ""]
    return "\n".join(lines)
