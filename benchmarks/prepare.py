"""How long `cknet prepare mimic-cxr` takes on a fabricated miniature of N studies.

Writes a MIMIC-CXR-JPG layout (``files/pNN/pSUBJECT/sSTUDY/DICOM.jpg``, the three
gzipped tables) and a ``mimic-cxr-reports.zip`` of templated reports (a tenth without
FINDINGS), then times the preparation twice: images read in place, and resized copies
(``--image-size``); then a second, idempotent run. Prints a table.

    python benchmarks/prepare.py [--studies 10000] [--image 64] [--copy-size 32]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from machine import describe
from PIL import Image

from cknet.data.prepare import prepare_mimic_cxr
from cknet.labeler import OBSERVATIONS

REPORT = (
    " FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n \n INDICATION:  ___ with cough\n \n"
    " FINDINGS:  The lungs are clear.  Study {study}.\n There is no pleural effusion.\n \n"
    " IMPRESSION:  No acute process.\n"
)


def _gzip_table(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(buffer.getvalue())


def fabricate(root: Path, studies: int, size: int) -> tuple[Path, Path]:
    """A MIMIC-CXR-JPG miniature of ``studies`` studies, one image each, and its reports zip."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    jpg = root / "mimic-cxr-jpg"
    split_rows, meta_rows, label_rows = [], [], []
    with zipfile.ZipFile(root / "mimic-cxr-reports.zip", "w") as archive:
        for index in range(studies):
            subject, study, dicom = f"{10000000 + index // 3}", f"{50000000 + index}", f"d{index:08d}"
            folder = jpg / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{dicom}.jpg").write_bytes(jpeg)
            text = REPORT.format(study=study) if index % 10 else " FINAL REPORT\n IMPRESSION:  Normal.\n"
            archive.writestr(f"files/p{subject[:2]}/p{subject}/s{study}.txt", text)
            split = "test" if index % 50 == 3 else "validate" if index % 50 == 7 else "train"
            split_rows.append([dicom, study, subject, split])
            meta_rows.append([dicom, subject, study, "PA"])
            label_rows.append([subject, study] + ["" for _ in OBSERVATIONS])
    _gzip_table(
        jpg / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], split_rows
    )
    _gzip_table(
        jpg / "mimic-cxr-2.0.0-metadata.csv.gz",
        ["dicom_id", "subject_id", "study_id", "ViewPosition"],
        meta_rows,
    )
    _gzip_table(
        jpg / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id", *OBSERVATIONS], label_rows
    )
    return jpg, root / "mimic-cxr-reports.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=10000)
    parser.add_argument("--image", type=int, default=64, help="side of the fabricated images")
    parser.add_argument("--copy-size", type=int, default=32, help="--image-size of the copies")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        start = time.perf_counter()
        jpg, reports = fabricate(root, args.studies, args.image)
        rows = [("fabricate the miniature", time.perf_counter() - start)]
        for name, output, size in (
            ("prepare, images in place", root / "in-place", None),
            (f"prepare, copies at {args.copy_size} px", root / "copies", args.copy_size),
            ("second run (nothing left)", root / "copies", args.copy_size),
        ):
            start = time.perf_counter()
            prepare_mimic_cxr(jpg, reports, output, image_size=size, workers=args.workers, progress=False)
            rows.append((name, time.perf_counter() - start))
    print(f"\n{args.studies} fabricated MIMIC-CXR studies ({args.image} px JPEG); {describe()}\n")
    print("| step | seconds |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
