import numpy as np
import pytest
import torch
from conftest import SAMPLES, require
from PIL import Image

from cknet import CKNetConfig, load_image, prepare_images
from cknet.data.images import evaluation_transform

GRADIENT = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (32, 1))  # (32, 64), 0..252


def test_modes_agree_on_the_same_picture(tmp_path):
    grey = load_image(Image.fromarray(GRADIENT, mode="L"))
    assert grey.shape == (3, 32, 64) and grey.dtype == torch.float32
    torch.testing.assert_close(grey[0], torch.from_numpy(GRADIENT / 255.0).float())
    rgb = load_image(Image.fromarray(GRADIENT, mode="L").convert("RGB"))
    rgba = load_image(Image.fromarray(GRADIENT, mode="L").convert("RGBA"))
    torch.testing.assert_close(rgb, grey)
    torch.testing.assert_close(rgba, grey)
    path = tmp_path / "g.png"
    Image.fromarray(GRADIENT, mode="L").save(path)
    torch.testing.assert_close(load_image(path), grey)
    torch.testing.assert_close(load_image(str(path)), grey)
    torch.testing.assert_close(load_image(GRADIENT), grey)
    torch.testing.assert_close(load_image(torch.from_numpy(GRADIENT)), grey)
    torch.testing.assert_close(load_image(GRADIENT.astype(np.float32) / 255.0), grey)


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path):
    twelve_bit = (GRADIENT.astype(np.uint16) * 16)  # 0..4032, as a 12-bit detector stores it
    path = tmp_path / "g16.png"
    Image.fromarray(twelve_bit).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I")
    loaded = load_image(path)
    expected = (twelve_bit - twelve_bit.min()) / (twelve_bit.max() - twelve_bit.min())
    torch.testing.assert_close(loaded[0], torch.from_numpy(expected).float())
    torch.testing.assert_close(load_image(twelve_bit), loaded)
    assert loaded.max() == 1.0 and len(loaded.unique()) == len(np.unique(GRADIENT))


def test_bad_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ValueError, match="corrupt.png is not a readable image"):
        load_image(corrupt)
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4, 5\)"):
        load_image(np.zeros((2, 3, 4, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        load_image(np.full((4, 4), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="cannot read an image from int"):
        load_image(3)


def test_evaluation_transform_normalises():
    cfg = CKNetConfig(image_size=16)
    out = evaluation_transform(torch.full((3, 40, 30), 0.5), cfg)
    assert out.shape == (3, 16, 16)
    expected = (0.5 - torch.tensor(cfg.image_mean)) / torch.tensor(cfg.image_std)
    torch.testing.assert_close(out[:, 5, 5], expected)


def test_prepare_sample_radiographs():
    cfg = CKNetConfig.iu_xray(image_size=64)
    study = require(SAMPLES / "iu_xray" / "CXR7_IM-2263")
    other = SAMPLES / "iu_xray" / "CXR1900_IM-0584"
    from_folders = prepare_images([study, other], cfg)
    from_paths = prepare_images([[study / "0.png", study / "1.png"], [other / "0.png", other / "1.png"]], cfg)
    assert from_folders.shape == (2, 2, 3, 64, 64)
    torch.testing.assert_close(from_folders, from_paths)
    pil = [Image.open(study / "0.png"), Image.open(study / "1.png")]
    torch.testing.assert_close(prepare_images([pil], cfg), from_paths[:1])
    assert not torch.equal(from_paths[0, 0], from_paths[0, 1])  # frontal first, lateral second


def test_view_count_errors():
    cfg = CKNetConfig.iu_xray(image_size=32)
    nih = sorted(require(SAMPLES / "nih").glob("*.png"))
    expected = r"study 0 has 1 view\(s\) but the model takes 2.*repeat_single_view"
    with pytest.raises(ValueError, match=expected):
        prepare_images(nih[0], cfg)
    repeated = prepare_images(nih[0], cfg, repeat_single_view=True)
    assert repeated.shape == (1, 2, 3, 32, 32) and torch.equal(repeated[0, 0], repeated[0, 1])
    mimic = CKNetConfig.mimic_cxr(image_size=32)
    assert prepare_images(nih[:3], mimic).shape == (3, 1, 3, 32, 32)
    with pytest.raises(ValueError, match="study 0 has 2 view"):
        prepare_images([nih[:2]], mimic)


def write_dicom(path, pixels, photometric="MONOCHROME2"):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)


def test_dicom_radiographs(tmp_path):
    twelve_bit = GRADIENT.astype(np.uint16) * 16
    write_dicom(tmp_path / "frontal.dcm", twelve_bit)
    write_dicom(tmp_path / "inverted", 4032 - twelve_bit, photometric="MONOCHROME1")  # no suffix
    expected = load_image(twelve_bit)
    torch.testing.assert_close(load_image(tmp_path / "frontal.dcm"), expected)
    torch.testing.assert_close(load_image(tmp_path / "inverted"), expected)
    cfg = CKNetConfig.mimic_cxr(image_size=16)
    assert prepare_images(tmp_path / "frontal.dcm", cfg).shape == (1, 1, 3, 16, 16)
