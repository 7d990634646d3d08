"""The input tables and report files of a release, read with messages that name what is
missing: CSV files plain or gzipped, and report text from a folder or a zip archive."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

# A report file larger than this is not a report (the longest MIMIC-CXR report is a few KB).
MAX_REPORT_BYTES = 100_000


def find_table(root: Path, stem: str, what: str) -> Path:
    """A release's table, plain (``STEM.csv``) or gzipped (``STEM.csv.gz``).

    Args:
        root: the folder that should hold it.
        stem: its name without ``.csv``, e.g. ``"mimic-cxr-2.0.0-split"``.
        what: the download it belongs to, for the message.

    Raises:
        FileNotFoundError: naming both names looked for.
    """
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{root} has neither {stem}.csv.gz nor {stem}.csv; is it the folder of {what}?")


def read_table(path: Path, needed: Sequence[str]) -> Iterator[dict[str, str]]:
    """The rows of a CSV file (``.csv`` or ``.csv.gz``) as dicts.

    Args:
        path: the file.
        needed: columns it must have.

    Raises:
        ValueError: naming the file and the missing columns, or a file that is neither
            UTF-8 CSV nor gzipped CSV.
    """
    try:
        with (
            gzip.open(path, "rt", encoding="utf-8-sig", newline="")
            if path.suffix == ".gz"
            else open(path, encoding="utf-8-sig", newline="")
        ) as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in needed if c not in header]
            if missing:
                raise ValueError(f"{path} has no column(s) {missing}; its header is {list(header)}")
            yield from reader
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as err:
        raise ValueError(f"{path} is not a readable CSV file: {err}") from None


def checksum(path: Path) -> str:
    """The SHA-256 of a file, hex.

    Args:
        path: the file.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ReportFiles:
    """MIMIC-CXR's free-text reports, ``files/pNN/pSUBJECT/sSTUDY.txt``, from the unpacked
    folder (the folder holding ``files/``, or ``files/`` itself) or from the zip archive.

    Args:
        source: the folder or the ``.zip`` file.

    Raises:
        FileNotFoundError: for a path that does not exist, or a folder without report files.
        ValueError: for a file that is not a zip archive.
    """

    _MEMBER = re.compile(r"(?:^|/)p\d\d/p(\d+)/s(\d+)\.txt$")

    def __init__(self, source: str | os.PathLike[str]) -> None:
        self.source = Path(source)
        self.archive: zipfile.ZipFile | None = None
        if not self.source.exists():
            raise FileNotFoundError(f"the reports {self.source} do not exist")
        if self.source.is_file():
            if not zipfile.is_zipfile(self.source):
                raise ValueError(
                    f"{self.source} is a file but not a zip archive; give mimic-cxr-reports.zip "
                    f"or the folder it unpacks to"
                )
            self.archive = zipfile.ZipFile(self.source)
            self.members: dict[tuple[str, str], zipfile.ZipInfo] = {}
            for info in self.archive.infolist():
                match = self._MEMBER.search(info.filename)
                if match:
                    key = (match.group(1), match.group(2))  # (subject, study), as the folder reader
                    if key in self.members:
                        raise ValueError(
                            f"{self.source} holds two reports of subject {key[0]}, study {key[1]}: "
                            f"{self.members[key].filename} and {info.filename}; remove one"
                        )
                    self.members[key] = info
        else:
            files = self.source / "files" if (self.source / "files").is_dir() else self.source
            self.root = files
            if not any(p.name.startswith("p") for p in files.iterdir() if p.is_dir()):
                raise FileNotFoundError(
                    f"{self.source} holds no pNN/ folders of reports; give the folder that "
                    f"holds files/pNN/pSUBJECT/sSTUDY.txt"
                )

    def read(self, subject_id: str, study_id: str) -> str | None:
        """A study's report, or None when the release has none.

        Args:
            subject_id: e.g. ``"10000032"``.
            study_id: e.g. ``"50414267"``.
        """
        if self.archive is not None:
            info = self.members.get((subject_id, study_id))
            if info is None:
                return None
            _check_report_size(info.file_size, f"{self.source}: {info.filename}")
            with self.archive.open(info) as fh:
                return io.TextIOWrapper(fh, encoding="utf-8").read(MAX_REPORT_BYTES + 1)
        path = self.root / f"p{subject_id[:2]}" / f"p{subject_id}" / f"s{study_id}.txt"
        if not path.is_file():
            return None
        _check_report_size(path.stat().st_size, str(path))
        return path.read_text(encoding="utf-8")


def _check_report_size(size: int, where: str) -> None:
    """Refuse a report file larger than any real report before reading it."""
    if size > MAX_REPORT_BYTES:
        raise ValueError(f"{where} holds {size:,} bytes, more than any real report "
                         f"({MAX_REPORT_BYTES:,} bytes at most); the file is not a report")
