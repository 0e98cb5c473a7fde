"""End-to-end prediction (``nnts predict``): geometry of the output for NIfTI (non-identity direction)
and DICOM input, exact crop-and-paste, dropping of lesions outside the lungs, batch resume.

The model is the 2-epoch toy of the session fixtures: these tests check pipeline properties, not accuracy.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from nnunet_teacher_student.cli import main as nnts
from nnunet_teacher_student.lungs.cropping import crop_image, paste_image
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.core.geometry import Geometry, read_image
from nnunet_teacher_student.prediction.lesions import describe_lesions, drop_outside_lungs
from nnunet_teacher_student.prediction.batch import find_cases, predict_path
from nnunet_teacher_student.prediction.case import predict_case
from nnunet_teacher_student.prediction.region import tumour_label
from nnunet_teacher_student.prediction.settings import PredictSettings


# --------------------------------------------------------------------------- fixtures
def write_dicom_series(image: sitk.Image, folder: Path) -> None:
    """``image`` (HU, 3-D) as a single-frame CT DICOM series with its own geometry (any direction whose
    first two columns are the row/column directions), files named in reverse slice order."""
    folder.mkdir(parents=True, exist_ok=True)
    array = sitk.GetArrayFromImage(image).astype(np.int16)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    sx, sy, sz = image.GetSpacing()
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    n = array.shape[0]
    for z in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = (
            CTImageStorage,
            generate_uid(),
        )
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = (
            "P1",
            "P1^",
            "CT",
            2,
            n - z,
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [
            float(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])
        ]
        ds.ImagePositionPatient = [float(v) for v in image.TransformIndexToPhysicalPoint((0, 0, z))]
        ds.PixelSpacing, ds.SliceThickness = [float(sy), float(sx)], float(sz)
        ds.Rows, ds.Columns = array.shape[1], array.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.ascontiguousarray(array[z]).tobytes()
        ds.save_as(folder / f"im{n - z:03d}.dcm", enforce_file_format=True)


@pytest.fixture(scope="module")
def test_ct(phantom_study) -> Path:
    """The smaller phantom test CT."""
    images = sorted((phantom_study / "test" / "images").glob("*.nii.gz"))
    return min(images, key=lambda p: np.prod(sitk.ReadImage(str(p)).GetSize()))


@pytest.fixture(scope="module")
def predictor(strong_model):
    from nnunet_teacher_student.prediction.region import RegionPredictor

    return RegionPredictor(strong_model, (0,), device="cpu", tta=False)


def assert_same_geometry(out: sitk.Image, ref: sitk.Image) -> None:
    assert out.GetSize() == ref.GetSize()
    assert np.allclose(out.GetSpacing(), ref.GetSpacing(), atol=1e-5)
    assert np.allclose(out.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    assert np.allclose(out.GetDirection(), ref.GetDirection(), atol=1e-6)


# --------------------------------------------------------------------------- no model
def test_lesions_outside_the_dilated_lungs_are_dropped():
    spacing = (2.0, 1.0, 1.0)  # z, y, x mm
    lungs = np.zeros((20, 40, 40), np.uint8)
    lungs[5:15, 10:30, 5:18] = 1
    pred = np.zeros_like(lungs)
    pred[8:10, 15:18, 16:22] = 1  # crosses the lung border: kept whole
    pred[8:10, 15:18, 21:23] = 1  # ... joined to the first (26-connected)
    pred[10, 20, 22] = 1  # 4 mm right of the lung (x 17 -> 22 is 5 voxels = 5 mm): kept
    pred[10, 25, 23] = 1  # 6 mm away: dropped
    pred[0:2, 0:3, 35:39] = 1  # far outside: dropped
    kept, comps, dropped = drop_outside_lungs(pred, lungs, spacing, dilation_mm=5.0)
    assert kept.dtype == np.uint8
    assert kept[8:10, 15:18, 16:23].all() and kept[10, 20, 22] == 1
    assert kept[10, 25, 23] == 0 and not kept[0:2].any()
    assert len(dropped) == 2 and set(np.unique(comps[kept > 0])) & set(dropped) == set()
    assert (kept <= pred).all()
    # no lungs within reach: everything goes; a larger distance keeps the 6 mm lesion
    assert not drop_outside_lungs(pred, np.zeros_like(lungs), spacing, 5.0)[0].any()
    assert drop_outside_lungs(pred, lungs, spacing, 6.0)[0][10, 25, 23] == 1


def test_lesion_volume_and_physical_centroid_follow_the_ct_geometry():
    mask = np.zeros((6, 10, 12), np.uint8)
    mask[1:3, 2:4, 3:7] = 1  # 16 voxels
    mask[5, 9, 11] = 1  # 1 voxel
    ct = sitk.GetImageFromArray(np.zeros(mask.shape, np.int16))
    ct.SetSpacing((0.5, 0.8, 2.0))
    ct.SetOrigin((10.0, -20.0, 30.0))
    ct.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))  # rotated 90 degrees about z
    lesions = describe_lesions(mask, ct)
    assert [les["voxels"] for les in lesions] == [16, 1]
    assert lesions[0]["volume_ml"] == pytest.approx(16 * 0.5 * 0.8 * 2.0 / 1000, abs=1e-4)
    assert lesions[0]["centroid_voxel_zyx"] == [1.5, 2.5, 4.5]
    # index (x 4.5, y 2.5, z 1.5): origin + D @ (4.5*0.5, 2.5*0.8, 1.5*2) = (10 + 2, -20 - 2.25, 30 + 3)
    assert lesions[0]["centroid_mm_xyz"] == pytest.approx([12.0, -22.25, 33.0])
    assert lesions[0]["bbox_voxel_zyx"] == {"start": [1, 2, 3], "stop": [3, 4, 7]}


def test_tumour_label_is_the_tumour_not_the_box():
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    do = LabelManager({"background": 0, "box": [1, 2], "tumor": 2}, regions_class_order=[1, 2])
    assert tumour_label(do) == (2, 1)
    # nnU-Net's own region segmentation of box-only / tumour voxels: our label keeps the tumour only
    probs = np.zeros((2, 1, 1, 3), np.float32)
    probs[0, ..., 1:] = 0.9  # box region
    probs[1, ..., 2] = 0.8  # tumour region
    seg = do.convert_probabilities_to_segmentation(probs)
    assert ((seg == tumour_label(do)[0]) == (probs[1] > 0.5)).all() and (seg == 1).any()
    so = LabelManager({"background": 0, "tumor": 1}, regions_class_order=None)
    assert tumour_label(so) == (1, 1)
    named = {"background": 0, "tumour": 1, "lung": 2}
    assert tumour_label(LabelManager(named, None), named) == (1, 1)
    assert tumour_label(LabelManager(named, None), {}) == (2, 2)
    with pytest.raises(InputError, match="not a foreground label"):
        tumour_label(so, label=3)


# --------------------------------------------------------------------------- with the toy model
def test_crop_and_paste_round_trip_is_exact(predictor, test_ct):
    ct = read_image(test_ct)
    # per-lung crops of the CT paste back to the CT exactly inside the box, 0 outside
    result = predict_case(
        predictor,
        ct,
        PredictSettings(
            per_lung=True, lung_dilation_mm=None, save_probabilities=True, skip_tiles=False
        ),
    )
    rep = result.report
    assert rep["per_lung"] and len(rep["crops"]) == 2 and rep["merge"]
    from nnunet_teacher_student.lungs.cropping import CropBox

    boxes = [CropBox.from_dict(b) for b in rep["crops"]]
    arr = sitk.GetArrayFromImage(ct)
    for box in boxes:
        back = sitk.GetArrayFromImage(paste_image(crop_image(ct, box), box, ct, fill=-2000))
        assert (back[box.slices] == arr[box.slices]).all() and (back != -2000).sum() == np.prod(
            box.size
        )
    # the pipeline's mask/probability = nnU-Net's prediction on each crop, pasted and merged, bit for bit
    expect_mask = np.zeros(arr.shape, bool)
    expect_prob = np.zeros(arr.shape, np.float32)
    for box in boxes:
        seg, prob, _ = predictor.predict_array(
            sitk.GetArrayFromImage(crop_image(ct, box)).astype(np.float32)[None],
            Geometry.of(ct).spacing[::-1],
        )
        expect_mask[box.slices] |= seg == 1
        expect_prob[box.slices] = np.maximum(expect_prob[box.slices], prob)
    assert (result.mask == expect_mask).all() and np.array_equal(result.probability, expect_prob)
    outside = np.ones(arr.shape, bool)
    for box in boxes:
        outside[box.slices] = False
    assert not result.mask[outside].any() and not result.probability[outside].any()
    assert rep["timings_s"]["total"] > 0 and rep["lung_mask"]["method"] == "classical"


def test_pipeline_drops_exactly_the_lesions_away_from_the_lungs(predictor, test_ct):
    from nnunet_teacher_student.lungs.mask import lung_mask
    from nnunet_teacher_student.prediction.lesions import near_mask

    ct = read_image(test_ct)
    raw = predict_case(predictor, ct, PredictSettings(lung_crop=False, lung_dilation_mm=None))
    kept = predict_case(predictor, ct, PredictSettings(lung_crop=False, lung_dilation_mm=5.0))
    assert raw.report["crops"][0]["name"] == "full" and not raw.report["dropped_outside_lungs"]
    near = near_mask(lung_mask(ct).mask > 0, Geometry.of(ct).spacing[::-1], 5.0)
    import cc3d

    comps, n = cc3d.connected_components(raw.mask, connectivity=26, return_N=True)
    assert n > 0  # the toy model predicts plenty of noise
    for i in range(1, n + 1):
        lesion = comps == i
        assert kept.mask[lesion].all() == (near & lesion).any()
        assert kept.mask[lesion].any() == (near & lesion).any()
    assert kept.report["n_lesions"] + len(kept.report["dropped_outside_lungs"]) == n
    assert sum(les["voxels"] for les in kept.report["lesions"]) == int(kept.mask.sum())


def test_nifti_with_permuted_flipped_axes_keeps_its_geometry(
    strong_model, test_ct, tmp_path, capsys
):
    ct = sitk.DICOMOrient(read_image(test_ct), "SRA")  # axes permuted and flipped
    assert not np.allclose(ct.GetDirection(), np.eye(3).ravel())
    src = tmp_path / "ct.nrrd"
    sitk.WriteImage(ct, str(src))
    out = tmp_path / "pred" / "mask.nii.gz"
    code = nnts(
        [
            "predict",
            "-i",
            str(src),
            "-o",
            str(out),
            "-m",
            str(strong_model),
            "-f",
            "0",
            "-device",
            "cpu",
            "--disable-tta",
            "--save-probabilities",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (
        "at the model's spacing" in captured.out and "tile(s)" in captured.out
    )  # the work, before it starts
    mask = sitk.ReadImage(str(out))
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert_same_geometry(mask, ct)
    assert set(np.unique(sitk.GetArrayFromImage(mask))) <= {0, 1}
    assert_same_geometry(sitk.ReadImage(str(tmp_path / "pred" / "mask_probability.nii.gz")), ct)
    report = json.loads((tmp_path / "pred" / "mask.json").read_text())
    assert report["n_lesions"] == len(report["lesions"])
    assert (
        len(report["sliding_window"]) == len(report["crops"])
        and report["sliding_window"][0]["tiles"] >= 1
    )
    assert sum(les["voxels"] for les in report["lesions"]) == int(
        sitk.GetArrayFromImage(mask).sum()
    )
    assert report["lung_mask"]["method"] == "classical" and report["lung_mask"]["found"]
    assert {
        "read",
        "lung_mask",
        "predict",
        "drop_outside_lungs",
        "describe",
        "write",
        "total",
    } <= set(report["timings_s"])
    assert Geometry.from_dict(report["geometry"]).matches(Geometry.of(ct))


def test_dicom_series_keeps_its_geometry(strong_model, test_ct, tmp_path):
    from nnunet_teacher_student.dataset_conversion.dicom_series import (
        read_ct_series,
        scan_dicom_tree,
    )

    ct = read_image(test_ct)
    ct.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))  # rotated 90 degrees about z
    write_dicom_series(ct, tmp_path / "series")
    series = read_ct_series(next(iter(scan_dicom_tree(tmp_path / "series")[0].values()))).image
    summary = predict_path(
        tmp_path / "series",
        tmp_path / "out.nii.gz",
        strong_model,
        PredictSettings(folds=(0,), tta=False),
        progress=False,
    )
    assert summary.predicted == ["series"]
    mask = sitk.ReadImage(str(tmp_path / "out.nii.gz"))
    assert_same_geometry(mask, series)
    assert_same_geometry(mask, ct)  # and the series is the CT we wrote
    assert json.loads((tmp_path / "out.json").read_text())["input"] == str(tmp_path / "series")


def test_batch_mode_resumes(strong_model, test_ct, tmp_path):
    batch = tmp_path / "in"
    batch.mkdir()
    os.symlink(test_ct, batch / "a_0000.nii.gz")
    write_dicom_series(read_image(test_ct), batch / "patient" / "ct")
    (batch / "notes.txt").write_text("ignored")
    assert [c.name for c in find_cases(batch)] == ["a", "patient__ct"]
    out = tmp_path / "out"
    first = predict_path(
        batch, out, strong_model, PredictSettings(folds=(0,), tta=False), progress=False
    )
    assert first.predicted == ["a", "patient__ct"]
    done = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert set(done) == {"a.nii.gz", "a.json", "patient__ct.nii.gz", "patient__ct.json"}
    (out / "patient__ct.json").unlink()  # interrupted after the mask: the case counts as not done
    second = predict_path(
        batch, out, strong_model, PredictSettings(folds=(0,), tta=False), progress=False
    )
    assert second.predicted == ["patient__ct"] and second.skipped == ["a"]
    assert (out / "a.nii.gz").stat().st_mtime_ns == done["a.nii.gz"]
    assert (out / "a.json").stat().st_mtime_ns == done["a.json"]
    assert (out / "patient__ct.json").is_file()
    third = predict_path(batch, out, tmp_path / "no-model-needed", progress=False)
    assert third.predicted == [] and third.skipped == ["a", "patient__ct"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_ct_without_lungs_falls_back_to_the_whole_volume(predictor):
    zz, yy, xx = np.indices((10, 32, 32))
    hu = np.where((yy - 16) ** 2 + (xx - 16) ** 2 < 12**2, 40, -1000).astype(np.int16)
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing((0.9, 0.9, 1.3))
    result = predict_case(predictor, ct)
    rep = result.report
    assert not rep["lung_mask"]["found"] and not rep["lung_crop"]
    assert rep["crops"] == [
        {"name": "full", "start": [0, 0, 0], "stop": [10, 32, 32], "shape": [10, 32, 32]}
    ]
    assert any("no lung found" in w for w in rep["warnings"])
    assert result.mask.shape == hu.shape and result.mask.dtype == np.uint8


def test_bad_input_is_a_clear_error(strong_model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert (
        nnts(
            [
                "predict",
                "-i",
                str(tmp_path / "empty"),
                "-o",
                str(tmp_path / "o"),
                "-m",
                str(strong_model),
            ]
        )
        == 1
    )
    assert "no CT found" in capsys.readouterr().err
    (tmp_path / "ct.nii.gz").write_text("not an image")
    assert (
        nnts(
            [
                "predict",
                "-i",
                str(tmp_path / "ct.nii.gz"),
                "-o",
                str(tmp_path / "o"),
                "-m",
                str(strong_model),
                "-device",
                "cpu",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "ct.nii.gz" in err and "cannot read image" in err
    assert not (tmp_path / "o").exists()
    ct = tmp_path / "ok.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((4, 8, 8), -1000, np.int16)), str(ct))
    assert nnts(["predict", "-i", str(ct), "-o", str(tmp_path / "o"), "-m", str(tmp_path)]) == 1
    assert "not an nnU-Net model folder" in capsys.readouterr().err
    # plans.json and dataset.json but no trained fold (nnU-Net itself fails with an UnboundLocalError)
    broken = tmp_path / "model"
    broken.mkdir()
    for name in ("plans.json", "dataset.json"):
        shutil.copyfile(strong_model / name, broken / name)
    for folds in ([], ["-f", "0"]):
        assert (
            nnts(
                [
                    "predict",
                    "-i",
                    str(ct),
                    "-o",
                    str(tmp_path / "o"),
                    "-m",
                    str(broken),
                    *folds,
                    "-device",
                    "cpu",
                ]
            )
            == 1
        )
        err = capsys.readouterr().err
        assert (
            str(broken) in err
            and ("no fold_X" in err or "checkpoint missing" in err)
            and "Traceback" not in err
        )
    # a checkpoint that is not one
    (broken / "fold_0").mkdir()
    (broken / "fold_0" / "checkpoint_final.pth").write_bytes(b"\x00" * 64)
    assert (
        nnts(
            [
                "predict",
                "-i",
                str(ct),
                "-o",
                str(tmp_path / "o"),
                "-m",
                str(broken),
                "-f",
                "0",
                "-device",
                "cpu",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert (
        "cannot load the model" in err and "Traceback" not in err and not (tmp_path / "o").exists()
    )


def test_kill9_then_rerun_equals_an_uninterrupted_folder_prediction(
    strong_model, test_ct, tmp_path
):
    from nnts_testlib import kill9_when, nnts_cli

    batch = tmp_path / "in"
    batch.mkdir()
    for k in range(5):
        os.symlink(test_ct, batch / f"case{k}_0000.nii.gz")
    argv = [
        "predict",
        "-i",
        str(batch),
        "-m",
        str(strong_model),
        "-f",
        "0",
        "-device",
        "cpu",
        "--disable-tta",
    ]
    killed = tmp_path / "killed"
    assert kill9_when(
        nnts_cli(*argv, "-o", str(killed)), lambda: len(list(killed.glob("*.json"))) >= 1
    ), "the prediction finished before the kill"
    assert len(list(killed.glob("*.json"))) < 5
    assert nnts([*argv, "-o", str(killed)]) == 0
    assert nnts([*argv, "-o", str(tmp_path / "straight")]) == 0
    for k in range(5):
        a, b = (
            sitk.GetArrayFromImage(sitk.ReadImage(str(d / f"case{k}.nii.gz")))
            for d in (killed, tmp_path / "straight")
        )
        assert (a == b).all()
    assert not [p for p in killed.iterdir() if p.name.startswith(".")]  # no temp files left


def test_no_crop_and_no_lesion_filter_need_no_lungs_nor_hounsfield_units(predictor):
    """Pre-scaled images (e.g. patches in [0, 1]) predict whole when neither the crop, the lesion filter nor tile
    skipping is asked for: the lung mask, which needs HU, is not computed."""
    rng = np.random.default_rng(0)
    ct = sitk.GetImageFromArray(rng.uniform(0, 1, (6, 32, 32)).astype(np.float32))
    with pytest.raises(InputError, match="Hounsfield"):
        predict_case(predictor, ct)  # the default crops to the lungs: a clear error
    result = predict_case(
        predictor, ct, PredictSettings(lung_crop=False, lung_dilation_mm=None, skip_tiles=False)
    )
    rep = result.report
    assert rep["lung_mask"]["method"] == "none" and not rep["lung_crop"]
    assert rep["crops"] == [
        {"name": "full", "start": [0, 0, 0], "stop": [6, 32, 32], "shape": [6, 32, 32]}
    ]
    assert not any("no lung found" in w for w in rep["warnings"])
    assert result.mask.shape == (6, 32, 32)
