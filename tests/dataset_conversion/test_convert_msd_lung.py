"""MSD Task06_Lung converter: geometry kept per image, bad labels reported, dataset id rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_teacher_student import cli
from nnunet_teacher_student.dataset_conversion.msd_lung import convert_msd_lung
from nnunet_teacher_student.dataset_conversion.settings import ConversionSettings
from nnunet_teacher_student.core.errors import InputError

PERMUTED = (0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0)  # flipped and permuted axes


def _image(arr, spacing=(0.8, 0.8, 2.5), origin=(10.0, -5.0, 3.0), direction=None):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction:
        img.SetDirection(direction)
    return img


@pytest.fixture
def task06(tmp_path, build):
    src = tmp_path / "Task06_Lung"
    (src / "imagesTr").mkdir(parents=True)
    (src / "labelsTr").mkdir()
    (src / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "cancer"}}))
    ct, mask = build.blob_volume(shape=(10, 24, 28), centre=(5, 10, 14), radius=(3, 5, 6))
    w = sitk.WriteImage
    w(_image(ct.astype(np.float32) + 0.2), str(src / "imagesTr" / "lung_001.nii.gz"))  # float CT
    w(_image(mask), str(src / "labelsTr" / "lung_001.nii.gz"))
    img2 = _image(ct, direction=PERMUTED)
    w(img2, str(src / "imagesTr" / "lung_002.nii.gz"))
    # the label of lung_002 describes the same voxels but is stored in another axis order
    w(
        sitk.DICOMOrient(_image(mask, direction=PERMUTED), "LPS"),
        str(src / "labelsTr" / "lung_002.nii.gz"),
    )
    w(_image(ct), str(src / "imagesTr" / "lung_003.nii.gz"))
    w(_image(mask, spacing=(0.8, 0.8, 5.0)), str(src / "labelsTr" / "lung_003.nii.gz"))
    w(_image(ct), str(src / "imagesTr" / "lung_004.nii.gz"))
    w(_image(mask * 2), str(src / "labelsTr" / "lung_004.nii.gz"))
    w(_image(ct), str(src / "imagesTr" / "lung_005.nii.gz"))
    (src / "imagesTr" / "._lung_001.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (src / "labelsTr" / "._lung_001.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    return src, ct, mask


def test_convert_task06(task06, tmp_path, capsys):
    src, ct, mask = task06
    raw = tmp_path / "raw"
    assert cli.main(["convert", "msd-lung", str(src), "-d", "501", "-o", str(raw)]) == 0
    printed = capsys.readouterr().out
    assert "2 converted" in printed and "3 skipped" in printed
    root = raw / "Dataset501_MSDLung"
    summary = json.loads((root / "conversion_summary.json").read_text())
    assert summary["converted"] == ["lung_001", "lung_002"]
    assert "geometry differs" in summary["skipped"]["lung_003"]
    assert "mask values [0, 2]" in summary["skipped"]["lung_004"]
    assert "no label" in summary["skipped"]["lung_005"]
    assert sorted(p.name for p in (root / "imagesTr").iterdir()) == [
        "lung_001_0000.nii.gz",
        "lung_002_0000.nii.gz",
    ]

    img1 = sitk.ReadImage(str(root / "imagesTr" / "lung_001_0000.nii.gz"))
    assert (
        img1.GetPixelID() == sitk.sitkInt16 and (sitk.GetArrayFromImage(img1) == ct).all()
    )  # HU rounded
    img2 = sitk.ReadImage(str(root / "imagesTr" / "lung_002_0000.nii.gz"))
    lab2 = sitk.ReadImage(str(root / "labelsTr" / "lung_002.nii.gz"))
    assert np.allclose(img2.GetDirection(), PERMUTED) and np.allclose(lab2.GetDirection(), PERMUTED)
    assert np.allclose(img2.GetSpacing(), (0.8, 0.8, 2.5)) and np.allclose(
        img2.GetOrigin(), (10.0, -5.0, 3.0)
    )
    assert (sitk.GetArrayFromImage(lab2) == mask).all()  # realigned onto the CT's voxels
    dataset = json.loads((root / "dataset.json").read_text())
    assert dataset["numTraining"] == 2 and dataset["labels"]["tumor"] == 1
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(root), num_processes=1)  # nnU-Net accepts the dataset as it is
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["cases"]["lung_001"] == {
        "patient": "lung_001",
        "dataset": "msd-lung",
        "split": "train",
        "source": str(src / "imagesTr" / "lung_001.nii.gz"),
    }


def test_dataset_id_rules_and_resume(task06, tmp_path):
    src, _, _ = task06
    raw = str(tmp_path / "raw")
    first, lung2 = (
        ConversionSettings(out=raw, dataset_id=7),
        ConversionSettings(out=raw, dataset_id=7, name="Lung2"),
    )
    convert_msd_lung(src, first)
    with pytest.raises(InputError, match="finished conversion"):
        convert_msd_lung(src, first)
    with pytest.raises(InputError, match="already used by .*Dataset007_MSDLung"):
        convert_msd_lung(src, lung2)
    summary, out = convert_msd_lung(
        src, ConversionSettings(out=raw, dataset_id=7, name="Lung2", overwrite=True)
    )
    assert (
        not (tmp_path / "raw" / "Dataset007_MSDLung").exists()
        and out.root.name == "Dataset007_Lung2"
    )
    # interrupted run: no dataset.json yet, lung_002 unfinished
    (out.root / "dataset.json").unlink()
    out.label_path("lung_002").unlink()
    again, _ = convert_msd_lung(src, lung2)
    assert [r.case for r in again.cases("resumed")] == ["lung_001"]
    assert [r.case for r in again.cases("converted")] == ["lung_002"]
    assert json.loads((out.root / "dataset.json").read_text())["numTraining"] == 2
    with pytest.raises(InputError, match="no imagesTr"):
        convert_msd_lung(tmp_path, ConversionSettings(out=raw, dataset_id=8))
