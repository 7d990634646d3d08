"""``cknet label``: reports in, CheXbert's CSV layout out, read back by `CsvLabeler`."""

import csv
import json

import numpy as np
import pytest

from cknet.cli import main
from cknet.labeler import OBSERVATIONS, CheXpertLabeler, CsvLabeler

REPORTS = [
    "No effusion. The heart is enlarged.",
    "Possible small left pleural effusion.",
    "Stable cardiomediastinal silhouette. The lungs are clear.",
    "Right PICC line, tip in the SVC.",
]


def _same(a, b):
    return np.array_equal(np.nan_to_num(a, nan=9), np.nan_to_num(b, nan=9))


def test_text_file_round_trips_through_csv_labeler(tmp_path, capsys):
    source = tmp_path / "reports.txt"
    source.write_text("\n".join(REPORTS[:2]) + "\n\n" + "\n".join(REPORTS[2:]) + "\n")
    out = tmp_path / "labels.csv"
    assert main(["label", str(source), "--output", str(out)]) == 0
    assert "labelled 4 reports" in capsys.readouterr().out
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    # CheXbert's label.py layout: the report, the 13 findings in its order, No Finding last
    assert rows[0][0] == "Report Impression" and rows[0][1] == "Enlarged Cardiomediastinum"
    assert rows[0][-1] == "No Finding" and len(rows[0]) == 15 and sorted(rows[0][1:]) == sorted(OBSERVATIONS)
    assert [r[0] for r in rows[1:]] == REPORTS
    assert (
        rows[2][rows[0].index("Pleural Effusion")] == "-1" and rows[1][rows[0].index("Cardiomegaly")] == "1"
    )
    assert rows[1][rows[0].index("Pneumothorax")] == ""  # not mentioned: blank
    assert _same(CsvLabeler(out).label(REPORTS), CheXpertLabeler().label(REPORTS))


def test_csv_column_annotation_split_and_chexpert_convention(tmp_path):
    table = tmp_path / "reports.csv"
    table.write_bytes("\ufeffid,findings\n1,Stable cardiomediastinal silhouette.\n".encode())  # with a BOM
    out = tmp_path / "a.csv"
    assert (
        main(
            ["label", str(table), "--column", "findings", "--output", str(out), "--labeler", "rules:chexpert"]
        )
        == 0
    )
    row = next(csv.DictReader(open(out, newline="")))
    assert row["Enlarged Cardiomediastinum"] == "-1"  # the CheXpert labeler's reading of "stable"
    annotation = tmp_path / "annotation.json"
    annotation.write_text(
        json.dumps(
            {"train": [{"id": "a", "report": REPORTS[0]}], "test": [{"id": "b", "report": REPORTS[1]}]}
        )
    )
    assert main(["label", str(annotation), "--split", "test", "--output", str(tmp_path / "b.csv")]) == 0
    assert [r["Report Impression"] for r in csv.DictReader(open(tmp_path / "b.csv"))] == [REPORTS[1]]
    assert main(["label", str(annotation), "--output", str(tmp_path / "c.csv")]) == 0
    assert len(list(csv.DictReader(open(tmp_path / "c.csv")))) == 2


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--output", "{dir}/labels.csv"], "exists; pass --overwrite"),
        (["--output", "{dir}/reports.csv", "--overwrite"], "is one of the command's inputs"),
        (["--output", "{dir}"], "is a folder"),
        (["--output", "{dir}/missing/x.csv"], "does not exist"),
        (["--output", "{dir}/new.csv", "--column", "text"], "has no column 'text'"),
        (["--output", "{dir}/new.csv", "--split", "test"], "--split applies to an annotation.json"),
        (["--output", "{dir}/new.csv", "--labeler", "negbio"], "a labeler is 'rules'"),
    ],
)
def test_refusals_name_the_thing_at_fault(tmp_path, capsys, arguments, message):
    (tmp_path / "reports.csv").write_text("report\nNo effusion.\n")
    (tmp_path / "labels.csv").write_text("keep me\n")
    argv = ["label", str(tmp_path / "reports.csv"), *[a.format(dir=tmp_path) for a in arguments]]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert (tmp_path / "labels.csv").read_text() == "keep me\n"
    assert (tmp_path / "reports.csv").read_text() == "report\nNo effusion.\n"


def test_the_chexbert_benchmark_reads_arrays_and_refuses_code(tmp_path):
    import os
    import pickle
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    from labeler_vs_chexbert import CHEXBERT_ORDER, compare, load_chexbert_pickle, study_key

    row = np.zeros(14)
    row[CHEXBERT_ORDER.index("Cardiomegaly")] = 1
    good = tmp_path / "labels_14.pickle"
    good.write_bytes(pickle.dumps({"CXR1_IM-0001": row}))
    table = load_chexbert_pickle(good)
    assert table["CXR1_IM-0001"][OBSERVATIONS.index("Cardiomegaly")] == 1 and table["CXR1_IM-0001"].sum() == 1
    assert (
        study_key("CXR2372_IM-0933-0001") == "CXR2372_IM-0933" and study_key("CXR1_IM-0001") == "CXR1_IM-0001"
    )

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pickle"
    evil.write_bytes(pickle.dumps({"CXR1_IM-0001": Payload()}))
    with pytest.raises(ValueError, match="only numpy arrays"):
        load_chexbert_pickle(evil)
    assert not (tmp_path / "pwned").exists()
    # micro F1 by hand: 2 TP, 1 FP, 1 FN over the findings -> 2*2 / (2*2 + 1 + 1)
    reference = np.zeros((3, 14), dtype=np.int64)
    ours = np.zeros((3, 14), dtype=np.int64)
    reference[0, 2] = reference[1, 2] = reference[2, 5] = 1
    ours[0, 2] = ours[1, 2] = ours[2, 6] = 1
    result = compare(reference, ours)
    assert result["micro"] == pytest.approx(4 / 6)


def test_the_chexbert_benchmark_reads_openi_xml_and_csv_sections(tmp_path):
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    from labeler_vs_chexbert import openi_sections, report_texts

    folder = tmp_path / "ecgen-radiology"
    folder.mkdir()
    (folder / "7.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><eCitation><uId id="CXR7"/><MedlineCitation><Article>'
        '<Abstract><AbstractText Label="COMPARISON">None.</AbstractText>'
        '<AbstractText Label="FINDINGS">Minimal atelectasis.</AbstractText>'
        '<AbstractText Label="IMPRESSION">No acute disease.</AbstractText></Abstract></Article>'
        '</MedlineCitation><parentImage id="CXR7_IM-2263-1001"/></eCitation>'
    )
    (folder / "8.xml").write_text(  # no uId, no impression: the file name, an empty section
        '<eCitation><MedlineCitation><Article><Abstract><AbstractText Label="FINDINGS">Clear.'
        "</AbstractText></Abstract></Article></MedlineCitation></eCitation>"
    )
    sections = openi_sections(folder)
    assert sections == {"7": {"findings": "Minimal atelectasis.", "impression": "No acute disease."},
                        "8": {"findings": "Clear.", "impression": ""}}
    table = tmp_path / "indiana_reports.csv"
    table.write_text('uid,findings,impression\n7,"Minimal atelectasis.",No acute disease.\n')
    assert openi_sections(table)["7"] == sections["7"]
    entries = [{"id": "CXR7_IM-2263", "report": "Minimal atelectasis."}]
    assert report_texts(entries, "impression", sections) == ["No acute disease."]
    assert report_texts(entries, "both", sections) == ["Minimal atelectasis. No acute disease."]
    assert report_texts(entries, "findings", None) == ["Minimal atelectasis."]
