"""`cknet prepare`: fabricated miniatures of each release, in its published layout
(folder and file names, CSV headers, report headings, XML elements), with the awkward
cases, checked against what a reader of the release expects by hand."""

import csv
import gzip
import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from conftest import IU_ANNOTATION
from PIL import Image

from cknet import CKNetConfig
from cknet.cli import main
from cknet.data import AnnotationDataset, StudyDataset
from cknet.data.prepare import prepare_chexpert_plus, prepare_iu_xray, prepare_mimic_cxr
from cknet.data.prepare.iu_xray import r2gen_split
from cknet.data.prepare.sections import report_section, split_sections
from cknet.data.prepare.tables import checksum

CHEXPERT = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
]

STANDARD = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
~
 INDICATION:  ___ year old woman with ?pleural effusion  // ?pleural effusion
~
 COMPARISON:  ___
~
 FINDINGS:~
~
 Cardiac size cannot be evaluated.  Large left pleural effusion is new.  Small
 right effusion is new.  There is no pneumothorax.
~
 IMPRESSION:~
~
 Large left pleural effusion
""".replace("~", " ")
NO_FINDINGS = """                                 FINAL REPORT
 INDICATION:  Cough.
~
 IMPRESSION:  No acute cardiopulmonary process.
""".replace("~", " ")
LOWER_CASE = """FINAL REPORT
 history: fever
 Findings :   The lungs are clear.
   Heart size is normal.
 Impresson:  Normal chest.
""".replace("~", " ")
ADDENDUM = """ ADDENDUM: The findings below were discussed with Dr. ___ by telephone.
 ______________________________________________________________________________
                                 FINAL REPORT
 FINDINGS:  Right lower lobe opacity, concerning for pneumonia.
~
 IMPRESSION:  Pneumonia.
""".replace("~", " ")
EMPTY_THEN_FULL = """ CHEST, PA LATERAL:
~
 FINDINGS:
~
 FINDINGS:  Mild cardiomegaly.  No effusion.
 IMPRESSON:  Cardiomegaly.
""".replace("~", " ")


def _image(path, size=(40, 32), value=90):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full(size[::-1], value, dtype=np.uint8)
    array[: size[1] // 2] = 200
    Image.fromarray(array, mode="L").save(path)


def _table(path, header, rows, gz=True):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wt", encoding="utf-8") as fh:
            fh.write(buffer.getvalue())
    else:
        path.write_text(buffer.getvalue(), encoding="utf-8")


def mimic_miniature(root, gz=True, zipped=False):
    """Five studies of four patients (each in one split): standard, several images, no FINDINGS, lower-case
    headings, an addendum, an empty FINDINGS before a full one; plus an image only in
    the metadata table and a split-table image whose file is missing."""
    studies = [  # subject, study, split, report, dicoms
        ("10000032", "50414267", "train", STANDARD, ["d01", "d02"]),
        ("10000032", "50414268", "train", NO_FINDINGS, ["d03"]),
        ("10000033", "50414269", "validate", LOWER_CASE, ["d04"]),
        ("11000011", "51000001", "test", ADDENDUM, ["d05"]),
        ("11000012", "51000002", "train", EMPTY_THEN_FULL, ["d06", "d07"]),
    ]
    jpg, reports = root / "mimic-cxr-jpg", root / "mimic-cxr-reports"
    split_rows, meta_rows, label_rows = [], [], []
    for subject, study, split, text, dicoms in studies:
        for dicom in dicoms:
            if dicom != "d07":  # d07 is listed in the split table, its file is missing
                _image(jpg / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg")
            split_rows.append([dicom, study, subject, split])
            meta_rows.append(
                [dicom, subject, study, "CHEST (PA AND LAT)", "PA" if dicom != "d02" else "LATERAL"]
            )
        report = reports / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(text, encoding="utf-8")
        label_rows.append([subject, study] + ["1.0" if c == "Pleural Effusion" else "" for c in CHEXPERT])
    meta_rows.append(["d99", "11000011", "51000001", "CHEST (PA AND LAT)", "PA"])  # not in the split table
    _image(jpg / "files" / "p11" / "p11000011" / "s51000001" / "d99.jpg")
    _table(jpg / "mimic-cxr-2.0.0-split.csv", ["dicom_id", "study_id", "subject_id", "split"], split_rows, gz)
    _table(
        jpg / "mimic-cxr-2.0.0-metadata.csv",
        ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition"],
        meta_rows,
        gz,
    )
    _table(jpg / "mimic-cxr-2.0.0-chexpert.csv", ["subject_id", "study_id", *CHEXPERT], label_rows, gz)
    if zipped:
        archive = root / "mimic-cxr-reports.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for path in sorted(reports.rglob("*.txt")):
                zf.write(path, "mimic-cxr-reports/" + path.relative_to(reports).as_posix())
        reports = archive
    return jpg, reports


def test_sections_follow_mimic_conventions():
    assert report_section(STANDARD, "findings") == (
        "Cardiac size cannot be evaluated. Large left pleural "
        "effusion is new. Small right effusion is new. There is "
        "no pneumothorax."
    )
    assert report_section(STANDARD, "impression") == "Large left pleural effusion"
    assert report_section(NO_FINDINGS, "findings") is None
    assert report_section(NO_FINDINGS, "both") == "No acute cardiopulmonary process."
    assert report_section(LOWER_CASE, "findings") == "The lungs are clear. Heart size is normal."
    assert report_section(LOWER_CASE, "impression") == "Normal chest."
    assert report_section(ADDENDUM, "findings") == "Right lower lobe opacity, concerning for pneumonia."
    assert "telephone" not in report_section(ADDENDUM, "both")
    assert report_section(EMPTY_THEN_FULL, "findings") == "Mild cardiomegaly. No effusion."
    names = [name for name, _ in split_sections(STANDARD)]
    assert names == [
        "preamble",
        "examination",
        "indication",
        "comparison",
        "findings",
        "impression",
    ]
    assert split_sections("No headings here.\nAt all.") == [("full report", "No headings here. At all.")]
    assert (
        report_section("Note: the lungs are clear.", "findings") is None
    )  # not a heading: not capitals, unknown
    with pytest.raises(ValueError, match="section must be"):
        report_section(STANDARD, "summary")


@pytest.mark.parametrize("gz, zipped", [(True, False), (False, True)])
def test_mimic_cxr_miniature(tmp_path, gz, zipped):
    jpg, reports = mimic_miniature(tmp_path, gz=gz, zipped=zipped)
    out = tmp_path / "out"
    prepare_mimic_cxr(jpg, reports, out, progress=False)
    annotation = json.loads((out / "annotation.json").read_text())
    by_id = {e["id"]: e for split in annotation.values() for e in split}
    assert sorted(by_id) == ["d01", "d02", "d04", "d05", "d06"]
    assert [e["id"] for e in annotation["train"]] == ["d01", "d02", "d06"]
    assert [e["id"] for e in annotation["val"]] == ["d04"] and [e["id"] for e in annotation["test"]] == [
        "d05"
    ]
    assert by_id["d01"] == {
        "id": "d01",
        "study_id": 50414267,
        "subject_id": 10000032,
        "report": report_section(STANDARD, "findings"),
        "image_path": ["p10/p10000032/s50414267/d01.jpg"],
        "split": "train",
        "view": "PA",
    }
    assert by_id["d02"]["report"] == by_id["d01"]["report"] and by_id["d02"]["view"] == "LATERAL"
    assert by_id["d05"]["report"] == "Right lower lobe opacity, concerning for pneumonia."
    dropped = dict(csv.reader((out / "dropped.csv").read_text().splitlines()[1:]))
    assert dropped == {
        "d99": "image not in the split table",
        "s50414268": "the report has no findings section",
        "d07": "image file missing",
    }
    record = (out / "PREPARED.md").read_text()
    suffix = ".csv.gz" if gz else ".csv"
    assert checksum(jpg / f"mimic-cxr-2.0.0-split{suffix}") in record
    assert "| train | 3 | 2 |" in record and "| val | 1 | 1 |" in record
    labels = list(csv.DictReader((out / "labels.csv").open()))
    assert [r["study_id"] for r in labels] == ["50414267", "50414269", "51000001", "51000002"]
    assert {r["Pleural Effusion"] for r in labels} == {"1"} and {r["Edema"] for r in labels} == {""}
    data = AnnotationDataset(
        out / "annotation.json", split="train", config=CKNetConfig.mimic_cxr(image_size=32)
    )
    assert data[0]["images"].shape[0] == 1 and (out / "images").is_symlink()


def test_mimic_cxr_sections_and_copies(tmp_path):
    jpg, reports = mimic_miniature(tmp_path)
    out = tmp_path / "out"
    prepare_mimic_cxr(jpg, reports, out, section="impression", image_size=16, workers=2, progress=False)
    annotation = json.loads((out / "annotation.json").read_text())
    by_id = {e["id"]: e for split in annotation.values() for e in split}
    assert by_id["d03"]["report"] == "No acute cardiopulmonary process."
    assert by_id["d06"]["report"] == "Cardiomegaly."
    with Image.open(out / "images" / "p10" / "p10000032" / "s50414267" / "d01.jpg") as image:
        assert image.size == (20, 16)  # shorter side 16, aspect kept
    assert not (out / "images").is_symlink()


def test_prepare_resumes_and_refuses_what_is_not_its_own(tmp_path, capsys):
    jpg, reports = mimic_miniature(tmp_path)
    out = tmp_path / "out"
    args = [
        "prepare",
        "mimic-cxr",
        "--images",
        str(jpg),
        "--reports",
        str(reports),
        "--output",
        str(out),
        "--image-size",
        "16",
        "--quiet",
    ]
    assert main(args) == 0
    copy = out / "images" / "p10" / "p10000032" / "s50414267" / "d01.jpg"
    copy.unlink()  # an interrupted run: one copy missing
    (out / "PREPARED.md").unlink()
    assert main(args) == 0 and copy.is_file()
    capsys.readouterr()
    assert main(args) == 0 and "nothing left to do" in capsys.readouterr().out
    assert main([*args[:-3], "--image-size", "32", "--quiet"]) == 1
    assert "prepared with" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main([*args[:6], "--output", str(mine), "--quiet"]) == 1
    assert "not empty" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "keep"
    assert (
        main(
            [
                "prepare",
                "mimic-cxr",
                "--images",
                str(tmp_path),
                "--reports",
                str(reports),
                "--output",
                str(tmp_path / "o2"),
                "--quiet",
            ]
        )
        == 1
    )
    assert "no files/ folder" in capsys.readouterr().err
    (jpg / "mimic-cxr-2.0.0-chexpert.csv.gz").unlink()
    assert main([*args[:6], "--output", str(tmp_path / "o3"), "--quiet"]) == 1
    assert "mimic-cxr-2.0.0-chexpert.csv" in capsys.readouterr().err


def test_missing_column_is_named(tmp_path):
    jpg, reports = mimic_miniature(tmp_path)
    _table(jpg / "mimic-cxr-2.0.0-split.csv", ["dicom_id", "study_id", "subject_id"], [["d01", "1", "2"]])
    with pytest.raises(ValueError, match=r"mimic-cxr-2.0.0-split.csv.gz has no column\(s\) \['split'\]"):
        prepare_mimic_cxr(jpg, reports, tmp_path / "out", progress=False)


@pytest.mark.slow
def test_mimic_cxr_output_trains_and_evaluates(tmp_path, capsys):
    jpg, reports = mimic_miniature(tmp_path)
    prepare_mimic_cxr(jpg, reports, tmp_path / "out", progress=False)
    tiny = ["--backbone", "resnet18", "--backbone-weights", "null", "--image-size", "64", "--d-model", "32",
            "--d-ff", "64", "--num-heads", "2", "--num-encoder-layers", "1", "--num-decoder-layers", "1",
            "--knowledge-source", "random", "--d-knowledge", "16", "--gamma", "4", "--batch-size", "3",
            "--num-workers", "0", "--eval-num-beams", "1", "--epochs", "1"]
    assert (
        main(
            [
                "train",
                "--config",
                "mimic_cxr",
                "--data-dir",
                str(tmp_path / "out"),
                "--output",
                str(tmp_path / "run"),
                "--quiet",
                "--device",
                "cpu",
                *tiny,
            ]
        )
        == 0
    )
    test = json.loads((tmp_path / "run" / "test_predictions.json").read_text())
    assert [p["id"] for p in test] == ["d05"]
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert test[0]["reference"] and set(metrics["scores"]) >= {"BLEU_4", "CIDEr"}


def iu_miniature(root):
    """Open-i's layout: ecgen-radiology/N.xml and NLMCXR_png/; four reports of R2Gen's
    split (one without FINDINGS, one with a lower-case label and three images) and one
    outside it."""
    split = {}
    for study, name in r2gen_split().items():
        split.setdefault(name, []).append(study)
    reports, images = root / "ecgen-radiology", root / "NLMCXR_png"
    reports.mkdir(parents=True)
    cases = [  # file, image ids, sections
        (
            "1",
            ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"],
            {
                "FINDINGS": "The cardiac silhouette and mediastinum size are within normal limits.",
                "IMPRESSION": "Normal chest x-XXXX.",
            },
        ),
        (
            "7",
            ["CXR7_IM-2263-1001", "CXR7_IM-2263-2001", "CXR7_IM-2263-3001"],
            {
                " findings ": "Mild cardiomegaly with pulmonary vascular congestion.",
                "IMPRESSION": "Mild changes.",
            },
        ),
        (
            "2372",
            ["CXR2372_IM-0933-0001-0001", "CXR2372_IM-0933-0001-0002"],
            {"IMPRESSION": "No acute disease."},
        ),
        ("99999", ["CXR99999_IM-9999-1001", "CXR99999_IM-9999-2001"], {"FINDINGS": "Clear lungs."}),
    ]
    for name, image_ids, sections in cases:
        texts = "".join(
            f'<AbstractText Label="{label}">{text}</AbstractText>' for label, text in sections.items()
        )
        parents = "".join(
            f'<parentImage id="{i}"><figureId>F1</figureId><caption>view</caption></parentImage>'
            for i in image_ids
        )
        (reports / f"{name}.xml").write_text(
            f'<?xml version="1.0" encoding="utf-8"?><eCitation><uId id="CXR{name}"/>'
            "<MedlineCitation><Article>"
            f"<Abstract>{texts}</Abstract></Article></MedlineCitation><MeSH><major>Cardiomegaly/mild</major>"
            f"<major>Pulmonary Congestion</major><minor>x</minor></MeSH>{parents}</eCitation>",
            encoding="utf-8",
        )
        for image in image_ids:
            _image(images / f"{image}.png")
    return reports, images, split


def test_iu_xray_miniature(tmp_path):
    reports, images, split = iu_miniature(tmp_path)
    out = tmp_path / "out"
    prepare_iu_xray(reports, images, out, progress=False)
    annotation = json.loads((out / "annotation.json").read_text())
    entries = {e["id"]: e for s in annotation.values() for e in s}
    assert sorted(entries) == ["CXR1_1_IM-0001", "CXR7_IM-2263"]
    assert entries["CXR7_IM-2263"] == {
        "id": "CXR7_IM-2263",
        "split": split_of("CXR7_IM-2263", split),
        "report": "Mild cardiomegaly with pulmonary vascular congestion.",
        "image_path": ["CXR7_IM-2263-1001.png", "CXR7_IM-2263-2001.png"],
    }
    dropped = dict(csv.reader((out / "dropped.csv").read_text().splitlines()[1:]))
    assert dropped["CXR2372_IM-0933-0001"] == "the report has no findings section"
    assert dropped["CXR99999_IM-9999"] == "outside R2Gen's split"
    assert sum(reason == "in R2Gen's split, not in the download" for reason in dropped.values()) == 2955 - 3
    mesh = list(csv.DictReader((out / "mesh_tags.csv").open()))
    assert mesh[0]["mesh"] == "Cardiomegaly/mild;Pulmonary Congestion"
    assert mesh[0]["problems"] == "Cardiomegaly;Pulmonary Congestion"
    study = AnnotationDataset(
        out / "annotation.json",
        split=entries["CXR7_IM-2263"]["split"],
        config=CKNetConfig.iu_xray(image_size=32),
    )
    assert study[0]["images"].shape[0] == 2
    copies = tmp_path / "copies"
    prepare_iu_xray(reports, images, copies, section="both", image_size=16, progress=False)
    entries = {e["id"]: e for s in json.loads((copies / "annotation.json").read_text()).values() for e in s}
    assert entries["CXR2372_IM-0933-0001"]["report"] == "No acute disease."
    assert entries["CXR1_1_IM-0001"]["image_path"] == ["CXR1_1_IM-0001/0.png", "CXR1_1_IM-0001/1.png"]
    assert (copies / "images" / "CXR1_1_IM-0001" / "1.png").is_file()


def split_of(study, split):
    return next(name for name, ids in split.items() if study in ids)


def test_shipped_iu_split_is_r2gens():
    shipped = r2gen_split()
    annotation = json.loads(IU_ANNOTATION.read_text())
    assert shipped == {e["id"]: split for split, entries in annotation.items() for e in entries}
    counts = {name: sum(v == name for v in shipped.values()) for name in ("train", "val", "test")}
    assert counts == {"train": 2069, "val": 296, "test": 590}


def test_chexpert_plus_miniature(tmp_path):
    images = tmp_path / "PNG"
    rows = []
    for split, patient, study, files, findings, impression in [
        (
            "train",
            "patient00001",
            "study1",
            ["view1_frontal", "view2_lateral"],
            "Heart is normal.",
            "Normal.",
        ),
        ("train", "patient00001", "study2", ["view2_lateral", "view1_lateral"], "", "No change."),
        ("train", "patient00002", "study1", ["view1_frontal"], "Small  effusion.\n", ""),
        ("valid", "patient64541", "study1", ["view1_frontal"], "Clear lungs.", ""),
        ("train", "patient00003", "study1", ["view1_frontal"], "Missing image.", ""),
    ]:
        for name in files:
            path = f"{split}/{patient}/{study}/{name}.jpg"
            if patient != "patient00003":
                _image((images / path).with_suffix(".png"))  # the PNG release
            rows.append([path, split, findings, impression, "Frontal" if "frontal" in name else "Lateral"])
    table = tmp_path / "df_chexpert_plus_240401.csv"
    _table(
        table,
        ["path_to_image", "split", "section_findings", "section_impression", "frontal_lateral"],
        rows,
        gz=False,
    )
    out = tmp_path / "out"
    prepare_chexpert_plus(table, images, out, val_percent=50, progress=False)
    annotation = json.loads((out / "annotation.json").read_text())
    entries = {e["id"]: e for s in annotation.values() for e in s}
    assert sorted(entries) == ["patient00001_study1", "patient00002_study1", "patient64541_study1"]
    assert entries["patient00001_study1"]["image_path"] == ["train/patient00001/study1/view1_frontal.png"]
    assert entries["patient00002_study1"]["report"] == "Small effusion."
    assert entries["patient64541_study1"]["split"] == "test"
    for key in ("patient00001_study1", "patient00002_study1"):
        patient = key.split("_")[0]
        expected = "val" if int(hashlib.sha256(patient.encode()).hexdigest()[:8], 16) % 100 < 50 else "train"
        assert entries[key]["split"] == expected
    dropped = dict(csv.reader((out / "dropped.csv").read_text().splitlines()[1:]))
    assert dropped == {
        "patient00001_study2": "the report has no findings section",
        "patient00003_study1": "image file missing: train/patient00003/study1/view1_frontal.jpg",
    }


def test_study_dataset_from_records_and_rows(tmp_path):
    for name in ("a0", "a1"):
        _image(tmp_path / "img" / f"{name}.png")
    config = CKNetConfig.iu_xray(image_size=32)
    records = [{"id": "s1", "image_path": ["a0.png", "a1.png"], "report": "clear lungs .", "labels": [1, 0]}]
    data = StudyDataset.from_records(records, tmp_path / "img", config=config)
    reference = AnnotationDataset(
        {"train": [{k: v for k, v in records[0].items() if k != "labels"}]}, tmp_path / "img", "train", config
    )[0]
    item = data[0]
    assert item["id"] == "s1" and item["report"] == "clear lungs ." and item["labels"].tolist() == [1.0, 0.0]
    assert np.array_equal(item["images"].numpy(), reference["images"].numpy())
    assert data.reports() == ["clear lungs ."] and data.study_ids() == ["s1"]
    with pytest.raises(ValueError, match="record 1 repeats the id 's1'"):
        StudyDataset.from_records(records * 2)
    with pytest.raises(ValueError, match=r"record 0 lacks \['report'\]"):
        StudyDataset.from_records([{"id": 1, "image_path": "x.png"}])
    pil = [Image.open(tmp_path / "img" / "a0.png"), Image.open(tmp_path / "img" / "a1.png")]
    rows = StudyDataset.from_rows([{"views": pil, "text": "clear lungs ."}], "views", "text", config=config)
    assert np.array_equal(rows[0]["images"].numpy(), reference["images"].numpy()) and rows.study_ids() == [
        "0"
    ]
    with pytest.raises(ValueError, match=r"no column\(s\) \['findings'\]"):
        StudyDataset.from_rows([{"views": pil, "text": ""}], "views", "findings")


@pytest.mark.slow
def test_records_train_through_the_pipeline_without_an_annotation(tmp_path):
    from test_pipeline import STAGE, model_config, training

    from cknet.data.synthetic import SyntheticDataset, synthetic_graph
    from cknet.tokenizers import ReportTokenizer
    from cknet.training import StudySplits, run_pipeline

    config = model_config()
    splits = {}
    for name, count, seed in (("train", 16, 0), ("val", 8, 1), ("test", 4, 2)):
        rendered = SyntheticDataset(count, config, seed=seed)
        records = []
        for i in range(count):
            path = tmp_path / "img" / f"{name}{i}.png"
            _image(path, size=(64, 64), value=40 + 10 * i)
            records.append({"id": f"{name}{i}", "image_path": path.name, "report": rendered.reports()[i],
                            "labels": rendered.label_matrix()[i].tolist()})
        splits[name] = StudyDataset.from_records(records, tmp_path / "img", config=config)
    data = StudySplits(splits["train"], splits["val"], splits["test"])
    tokenizer = ReportTokenizer.from_reports(data.train.reports())
    result = run_pipeline(tmp_path / "run", data, training(1), config, tokenizer, synthetic_graph(),
                          graph_model=STAGE, device="cpu", progress=False)
    assert result.graph_stage is not None and result.training.test is not None
    predictions = json.loads((tmp_path / "run" / "test_predictions.json").read_text())
    assert [p["id"] for p in predictions] == ["test0", "test1", "test2", "test3"]
