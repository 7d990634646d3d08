"""Agreement of cknet's built-in labeler with CheXbert on every IU X-Ray report.

CheXbert (Smit et al., EMNLP 2020) is the labeler papers report clinical efficacy with.
Its labels of the 2,955 IU X-Ray reports of the standard split are public as
``files/iu_xray/labels_14.pickle`` of the XProNet repository (Markin-Wang/XProNet; made by
its ``files/gen_labels.ipynb``): a dict from study id (the annotation id without a
``-0001``-style view suffix) to 14 binary values in CheXbert's column order
(`CHEXBERT_ORDER`: the 13 findings, then No Finding), positive or uncertain = 1. That is
the binarisation of the field's CE scripts, so cknet's labels are binarised the same way
(uncertain = 1, blank = 0) before they are compared.

The file is a pickle: it is read with a restricted unpickler that builds numpy arrays
and nothing else (`load_chexbert_pickle`), never with ``pickle.load``. Neither the file
nor labels derived from it ship with cknet.

**Which text CheXbert read.** The IU X-Ray ``report`` of the standard split is the
FINDINGS section of the Open-i report, but XProNet's labels are CheXbert's labels of the
IMPRESSION section: given the Open-i reports (``--openi-reports``: the ``ecgen-radiology``
XML folder of the Open-i release, or the ``indiana_reports.csv`` table with ``uid``,
``findings`` and ``impression`` columns), ``--text impression`` labels the text CheXbert
labelled and so measures agreement with CheXbert's conventions like for like; ``--text
findings`` (the default) measures how well the impression's labels can be read from the
findings, the text report generators write.

Printed per split (train, val, test): for each finding CheXbert's positives, ours,
precision, recall and F1 of ours against CheXbert's; micro and macro F1 over the 13
findings; No Finding's agreement beside them; and the rate in reports per second.

    python benchmarks/labeler_vs_chexbert.py PATH/labels_14.pickle [--splits train val test]
        [--labeler rules] [--openi-reports ecgen-radiology/ --text findings|impression|both]
        [--disagreements val --finding Pneumonia]

``--disagreements SPLIT`` prints the sentences of that split's reports where ours and
CheXbert's differ (for developing rules: never on the test split).
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from machine import describe
from shared_data import IU_XRAY

from cknet.cli.label import CHEXBERT_COLUMNS as CHEXBERT_ORDER
from cknet.labeler import OBSERVATIONS, binarize, make_labeler

FINDINGS = [o for o in OBSERVATIONS if o != "No Finding"]
# What the restricted unpickler may build: numpy arrays and their dtypes, nothing else.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")


def load_chexbert_pickle(path: Path) -> dict[str, np.ndarray]:
    """CheXbert's labels from XProNet's ``labels_14.pickle``, read without running code.

    Args:
        path: the pickle file.

    Returns:
        study id -> ``(14,)`` float array in CheXpert's order (`OBSERVATIONS`: No Finding first).

    Raises:
        ValueError: if the file is not a dict of 14-value arrays, or holds anything but arrays.
    """
    try:
        with open(path, "rb") as fh:
            table = _ArraysOnly(fh).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"{path} is not XProNet's labels_14.pickle: {err}") from None
    if not isinstance(table, dict) or not all(
        isinstance(v, np.ndarray) and v.shape == (14,) for v in table.values()
    ):
        raise ValueError(f"{path} is not XProNet's labels_14.pickle: expected a dict of 14-value arrays")
    order = [CHEXBERT_ORDER.index(o) for o in OBSERVATIONS]
    return {str(k): np.asarray(v, dtype=float)[order] for k, v in table.items()}


def study_key(annotation_id: str) -> str:
    """The pickle's key of an annotation id: without a view suffix
    (``CXR2372_IM-0933-0001`` -> ``CXR2372_IM-0933``)."""
    return re.sub(r"^(.+-\d+)-\d+$", r"\1", annotation_id)


def openi_sections(path: Path) -> dict[str, dict[str, str]]:
    """The FINDINGS and IMPRESSION of every Open-i report, by its number (``CXR12_...`` -> ``"12"``).

    Args:
        path: the ``ecgen-radiology`` folder of XML reports, or a CSV with ``uid``,
            ``findings`` and ``impression`` columns.

    Returns:
        uid -> ``{"findings": ..., "impression": ...}`` (empty strings where absent).
    """
    sections: dict[str, dict[str, str]] = {}
    if path.is_dir():
        for file in sorted(path.glob("*.xml")):
            root = ET.parse(file).getroot()
            uid_element = root.find(".//uId")  # <uId id="CXR12"/>; else the file is 12.xml
            uid = (uid_element.get("id", "") if uid_element is not None else file.stem).removeprefix("CXR")
            text = {(e.get("Label") or "").lower(): (e.text or "") for e in root.iter("AbstractText")}
            sections[uid] = {"findings": text.get("findings", ""), "impression": text.get("impression", "")}
        return sections
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            sections[row["uid"]] = {"findings": row["findings"], "impression": row["impression"]}
    return sections


def report_texts(entries: list[dict], text: str, openi: dict[str, dict[str, str]] | None) -> list[str]:
    """The text to label for each study: the annotation's report, or an Open-i section."""
    if text == "findings" and openi is None:
        return [e["report"] for e in entries]
    if openi is None:
        raise SystemExit(f"--text {text} needs --openi-reports (the Open-i reports with their impressions)")
    uids = [re.match(r"CXR(\d+)_", e["id"]).group(1) for e in entries]
    missing = [u for u in uids if u not in openi]
    if missing:
        raise SystemExit(f"the Open-i reports lack {len(missing)} studies, e.g. CXR{missing[0]}")
    sections = [openi[u] for u in uids]
    if text == "both":
        return [f"{s['findings']} {s['impression']}".strip() for s in sections]
    return [s[text] for s in sections]


def agreement(reference: np.ndarray, predicted: np.ndarray) -> dict:
    """Per-column counts, precision, recall and F1 of 0/1 ``predicted`` against ``reference``."""
    tp = (reference & predicted).sum(0)
    fp = (~reference & predicted).sum(0)
    fn = (reference & ~predicted).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
    return dict(
        positives=reference.sum(0),
        labelled=predicted.sum(0),
        precision=precision,
        recall=recall,
        f1=f1,
        tp=tp,
        fp=fp,
        fn=fn,
    )


def compare(reference: np.ndarray, labels: np.ndarray) -> dict:
    """Agreement over the 13 findings (micro, macro) and No Finding's, of ``(n, 14)`` 0/1 arrays."""
    columns = [OBSERVATIONS.index(f) for f in FINDINGS]
    ref, ours = reference[:, columns].astype(bool), labels[:, columns].astype(bool)
    per = agreement(ref, ours)
    tp, fp, fn = per["tp"].sum(), per["fp"].sum(), per["fn"].sum()
    nf = OBSERVATIONS.index("No Finding")
    no_finding = agreement(reference[:, [nf]].astype(bool), labels[:, [nf]].astype(bool))
    return dict(
        per=per,
        micro=2 * tp / (2 * tp + fp + fn),
        micro_p=tp / (tp + fp),
        micro_r=tp / (tp + fn),
        macro=float(np.nanmean(per["f1"])),
        no_finding=no_finding,
    )


def print_split(split: str, n: int, result: dict, rate: float) -> None:
    per = result["per"]
    print(f"\n{split}: {n} reports, labelled at {rate:,.0f} reports/s")
    print("| finding | CheXbert + | ours + | precision | recall | F1 |\n|---|---|---|---|---|---|")
    for i, name in enumerate(FINDINGS):
        print(
            f"| {name} | {per['positives'][i]} | {per['labelled'][i]} | {per['precision'][i]:.2f} | "
            f"{per['recall'][i]:.2f} | {per['f1'][i]:.2f} |"
        )
    nf = result["no_finding"]
    print(
        f"| micro, 13 findings | {per['positives'].sum()} | {per['labelled'].sum()} | "
        f"{result['micro_p']:.3f} | "
        f"{result['micro_r']:.3f} | **{result['micro']:.3f}** |"
    )
    print(f"| macro, 13 findings | | | | | {result['macro']:.3f} |")
    print(
        f"| No Finding | {nf['positives'][0]} | {nf['labelled'][0]} | {nf['precision'][0]:.2f} | "
        f"{nf['recall'][0]:.2f} | {nf['f1'][0]:.2f} |"
    )


def print_disagreements(reports: list[str], reference: np.ndarray, labels: np.ndarray, finding: str) -> None:
    column = OBSERVATIONS.index(finding)
    for report, ref, ours in zip(reports, reference[:, column], labels[:, column]):
        if ref != ours:
            print(f"CheXbert {int(ref)} ours {int(ours)}: {report}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pickle", type=Path, help="XProNet's files/iu_xray/labels_14.pickle")
    parser.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    parser.add_argument("--labeler", default="rules", help="as cknet evaluate's --labeler")
    parser.add_argument("--data-dir", type=Path, default=IU_XRAY)
    parser.add_argument(
        "--openi-reports",
        type=Path,
        help="the Open-i reports: the ecgen-radiology XML folder or indiana_reports.csv",
    )
    parser.add_argument(
        "--text",
        choices=["findings", "impression", "both"],
        default="findings",
        help="which section to label (CheXbert's labels are of the impression)",
    )
    parser.add_argument(
        "--disagreements",
        metavar="SPLIT",
        choices=["train", "val"],
        help="print the reports of SPLIT where the labelers differ on --finding",
    )
    parser.add_argument("--finding", choices=OBSERVATIONS, default="Lung Opacity")
    args = parser.parse_args()
    chexbert = load_chexbert_pickle(args.pickle)
    annotation = json.loads((args.data_dir / "annotation.json").read_text())
    openi = openi_sections(args.openi_reports) if args.openi_reports else None
    labeler = make_labeler(args.labeler)
    print(
        f"labeler {args.labeler!r} on the {args.text} against CheXbert's labels of the impression "
        f"(positive or uncertain = 1) -- {describe()}"
    )
    for split in [args.disagreements] if args.disagreements else args.splits:
        entries = annotation[split]
        missing = [e["id"] for e in entries if study_key(e["id"]) not in chexbert]
        if missing:
            raise SystemExit(
                f"{args.pickle} has no labels for {len(missing)} {split} studies, e.g. {missing[:3]}"
            )
        reports = report_texts(entries, args.text, openi)
        reference = np.stack([chexbert[study_key(e["id"])] for e in entries]).astype(np.int64)
        start = time.perf_counter()
        labels = binarize(labeler(reports), uncertain=1)
        rate = len(reports) / (time.perf_counter() - start)
        if args.disagreements:
            print_disagreements(reports, reference, labels, args.finding)
        else:
            print_split(split, len(reports), compare(reference, labels), rate)


if __name__ == "__main__":
    main()
