"""Folder converter: NIfTI/NRRD/DICOM CTs with masks or boxes, matched by case id, in any orientation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_teacher_student import cli
from nnunet_teacher_student.formats.boxes import Box, BoxSet
from nnunet_teacher_student.dataset_conversion.own_folder import convert_folder
from nnunet_teacher_student.dataset_conversion.settings import ConversionSettings
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.core.geometry import Geometry
from nnunet_teacher_student.formats.weak_set import WeakSet

PERMUTED = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0, -1.0, 0.0, 0.0)


def _image(arr, direction=None, spacing=(0.9, 0.7, 3.0)):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin((4.0, -8.0, 12.0))
    if direction:
        img.SetDirection(direction)
    return img


def test_masks_in_any_orientation_to_raw_dataset(tmp_path, build):
    src, masks = tmp_path / "cts", tmp_path / "masks"
    src.mkdir(), masks.mkdir()
    ct, mask = build.blob_volume(shape=(8, 20, 22), centre=(4, 9, 11), radius=(2, 4, 5))
    sitk.WriteImage(_image(ct, PERMUTED), str(src / "a.nii.gz"))
    sitk.WriteImage(
        sitk.DICOMOrient(_image(mask, PERMUTED), "RAS"), str(masks / "a.nii.gz")
    )  # same voxels
    sitk.WriteImage(_image(ct), str(src / "b.nrrd"))
    sitk.WriteImage(_image(mask, spacing=(0.9, 0.7, 2.0)), str(masks / "b.nrrd"))  # another grid
    build.write_series(
        src / "c", ct, spacing=(0.9, 0.7, 3.0), iop=(0, 1, 0, 1, 0, 0)
    )  # DICOM folder
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(src / "c")))
    mask_c = sitk.GetImageFromArray(mask)
    mask_c.CopyInformation(reader.Execute())
    sitk.WriteImage(mask_c, str(masks / "c.nii.gz"))
    sitk.WriteImage(_image(ct), str(src / "d.mha"))
    (tmp_path / "patients.csv").write_text("case,patient\na,p1\nc,p1\nd,p2\n")
    summary, out = convert_folder(
        src,
        ConversionSettings(out=str(tmp_path / "raw"), dataset_id=9, name="Mine"),
        masks=masks,
        patient_map=str(tmp_path / "patients.csv"),
    )
    converted = [r.case for r in summary.cases("converted")]
    skipped = summary.to_dict()["skipped"]
    assert converted == ["a", "c"]
    assert "geometry differs" in skipped["b"]
    assert "no mask named d.*" in skipped["d"]
    lab = sitk.ReadImage(str(out.label_path("a")))
    assert np.allclose(lab.GetDirection(), PERMUTED)
    assert (sitk.GetArrayFromImage(lab) == mask).all()
    assert json.loads((out.root / "manifest.json").read_text())["cases"]["a"]["patient"] == "p1"
    ct_c = sitk.GetArrayFromImage(sitk.ReadImage(str(out.image_path("c"))))
    lab_c = sitk.GetArrayFromImage(sitk.ReadImage(str(out.label_path("c"))))
    assert (ct_c[lab_c > 0] == 40).all() and (lab_c == mask).all()
    manifest = json.loads((out.root / "manifest.json").read_text())["cases"]
    assert manifest["a"]["split"] == manifest["c"]["split"]  # one patient, one side of the split
    assert json.loads((out.root / "dataset.json").read_text())["numTraining"] == 2


def test_boxes_csv_and_json_to_weak_set(tmp_path, build):
    src, boxes = tmp_path / "cts", tmp_path / "boxes"
    src.mkdir(), boxes.mkdir()
    ct, _ = build.blob_volume(shape=(8, 20, 22))
    sitk.WriteImage(_image(ct, PERMUTED), str(src / "a.nii.gz"))
    (boxes / "a.csv").write_text("slice,xmin,ymin,xmax,ymax,label\n3,2,4,10,12,A\n5,0,0,1,1,\n")
    sitk.WriteImage(_image(ct), str(src / "b.nii.gz"))
    BoxSet(Geometry.of(_image(ct)), [Box(2, 1, 1, 5, 5, label="G")]).save(boxes / "b.json")
    sitk.WriteImage(_image(ct), str(src / "c.nii.gz"))
    BoxSet(Geometry.of(_image(ct, PERMUTED)), [Box(2, 1, 1, 5, 5)]).save(
        boxes / "c.json"
    )  # other grid
    sitk.WriteImage(_image(ct), str(src / "d.nii.gz"))
    (boxes / "d.csv").write_text("slice,xmin,ymin,xmax\n3,2,4,10\n")
    sitk.WriteImage(_image(ct), str(src / "e.nii.gz"))
    (boxes / "e.csv").write_text("slice,xmin,ymin,xmax,ymax\n30,2,4,10,12\n")
    rc = cli.main(
        ["convert", "folder", str(src), "--boxes", str(boxes), "-o", str(tmp_path / "weak")]
    )
    assert rc == 0
    summary = json.loads((tmp_path / "weak" / "conversion_summary.json").read_text())
    assert summary["converted"] == ["a", "b"]
    assert "geometry mismatch" in summary["skipped"]["c"]
    assert "lacks column(s) ['ymax']" in summary["skipped"]["d"]
    assert "outside the image" in summary["skipped"]["e"]
    weak = WeakSet(tmp_path / "weak")
    image, boxset = weak.read_case("a")
    assert np.allclose(image.GetDirection(), PERMUTED)
    assert [(b.as_tuple(), b.label) for b in sorted(boxset.boxes)] == [
        ((3, 2, 4, 10, 12), "A"),
        ((5, 0, 0, 1, 1), None),
    ]
    assert weak.read_case("b")[1].boxes[0].label == "G"
    assert weak.metadata()["a"]["dataset"] == "folder:cts"


def test_a_conversion_that_converted_nothing_does_not_block_a_corrected_rerun(tmp_path, build):
    src, masks, wrong = tmp_path / "cts", tmp_path / "masks", tmp_path / "empty"
    for d in (src, masks, wrong):
        d.mkdir()
    ct, mask = build.blob_volume(shape=(8, 20, 22), centre=(4, 9, 11), radius=(2, 4, 5))
    sitk.WriteImage(_image(ct), str(src / "a.nii.gz"))
    sitk.WriteImage(_image(mask), str(masks / "a.nii.gz"))
    out = tmp_path / "raw"
    summary, _ = convert_folder(
        src, ConversionSettings(out=str(out), dataset_id=8, name="Mine"), masks=wrong
    )  # no mask found
    assert not summary.cases("converted") and not list(
        out.glob("Dataset008_*")
    )  # nothing left behind
    summary, target = convert_folder(
        src, ConversionSettings(out=str(out), dataset_id=8, name="Mine", seed=3), masks=masks
    )
    assert [r.case for r in summary.cases("converted")] == ["a"] and (
        target.root / "dataset.json"
    ).is_file()


def test_kill9_then_rerun_equals_an_uninterrupted_conversion(tmp_path, build):
    from nnts_testlib import kill9_when, nnts_cli

    src, masks = tmp_path / "cts", tmp_path / "masks"
    src.mkdir(), masks.mkdir()
    for k in range(8):
        ct, mask = build.blob_volume(shape=(24, 96, 96), centre=(12, 40 + k, 48), radius=(4, 8, 10))
        sitk.WriteImage(_image(ct + k), str(src / f"c{k}.nii.gz"))
        sitk.WriteImage(_image(mask), str(masks / f"c{k}.nii.gz"))
    argv = ["convert", "folder", str(src), "--masks", str(masks), "-d", "6", "--name", "Kill"]
    records = tmp_path / "killed" / "Dataset006_Kill" / ".nnts_convert"
    killed = kill9_when(
        nnts_cli(*argv, "-o", str(tmp_path / "killed")),
        lambda: len([p for p in records.glob("*.json") if p.name != "run.json"]) >= 1,
    )
    assert killed and not (records.parent / "dataset.json").exists(), (
        "the conversion finished before the kill"
    )
    assert cli.main([*argv, "-o", str(tmp_path / "killed")]) == 0  # the rerun resumes
    assert cli.main([*argv, "-o", str(tmp_path / "straight")]) == 0
    a, b = tmp_path / "killed" / "Dataset006_Kill", tmp_path / "straight" / "Dataset006_Kill"
    files = sorted(p.relative_to(a) for p in a.rglob("*.nii.gz"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.nii.gz")) and len(files) == 16
    for f in files:
        assert (
            sitk.GetArrayFromImage(sitk.ReadImage(str(a / f)))
            == sitk.GetArrayFromImage(sitk.ReadImage(str(b / f)))
        ).all(), f
    for name in ("dataset.json", "manifest.json"):
        assert json.loads((a / name).read_text()) == json.loads((b / name).read_text())
    assert not [
        p for p in a.rglob(".*") if p.is_file() and ".nnts_convert" not in p.parts
    ]  # no temp files


def test_nnunet_style_ct_names_match_their_masks_and_boxes(tmp_path, build):
    """``<case>_0000.nii.gz`` CTs (nnU-Net's imagesTr layout) with ``<case>.nii.gz`` masks or ``<case>.json`` boxes."""
    src, masks, boxes = tmp_path / "imagesTr", tmp_path / "labelsTr", tmp_path / "boxes"
    for d in (src, masks, boxes):
        d.mkdir()
    ct, mask = build.blob_volume(shape=(8, 20, 22), centre=(4, 9, 11), radius=(2, 4, 5))
    for case in ("case_000", "case_001"):
        sitk.WriteImage(_image(ct), str(src / f"{case}_0000.nii.gz"))
        sitk.WriteImage(_image(mask), str(masks / f"{case}.nii.gz"))
        BoxSet(Geometry.of(_image(ct)), [Box(4, 6, 5, 16, 13)]).save(boxes / f"{case}.json")
    summary, out = convert_folder(
        src, ConversionSettings(out=str(tmp_path / "raw"), dataset_id=5, name="Style"), masks=masks
    )
    assert [r.case for r in summary.cases("converted")] == ["case_000", "case_001"]
    assert out.image_path("case_000").name == "case_000_0000.nii.gz"
    summary, weak = convert_folder(src, ConversionSettings(out=str(tmp_path / "weak")), boxes=boxes)
    assert [r.case for r in summary.cases("converted")] == ["case_000", "case_001"]
    (src / "case_000.nii.gz").symlink_to(
        src / "case_000_0000.nii.gz"
    )  # both names of one case: ambiguous
    with pytest.raises(InputError, match="two inputs for case 'case_000'"):
        raw2 = ConversionSettings(out=str(tmp_path / "raw2"), dataset_id=4, name="Twice")
        convert_folder(src, raw2, masks=masks)


def test_box_mask_images_and_csv_lesion_ids_as_box_input(tmp_path, build):
    src, boxes = tmp_path / "cts", tmp_path / "boxmasks"
    src.mkdir(), boxes.mkdir()
    ct, _ = build.blob_volume(shape=(8, 20, 22))
    given = [
        Box(2, 1, 1, 5, 5, lesion_id=1),
        Box(3, 1, 2, 6, 5, lesion_id=1),
        Box(5, 12, 10, 18, 16, lesion_id=2),
    ]
    sitk.WriteImage(_image(ct), str(src / "a_0000.nii.gz"))
    sitk.WriteImage(
        BoxSet(Geometry.of(_image(ct)), given).mask_image(), str(boxes / "a.nii.gz")
    )  # a box mask
    sitk.WriteImage(_image(ct), str(src / "b.nii.gz"))
    (boxes / "b.csv").write_text(
        "slice,xmin,ymin,xmax,ymax,label,lesion_id\n3,2,4,10,12,A,7\n4,2,4,9,12,A,7\n"
    )
    sitk.WriteImage(_image(ct), str(src / "c.nii.gz"))
    sitk.WriteImage(_image(np.zeros_like(ct, np.uint8)), str(boxes / "c.nii.gz"))  # empty mask
    summary, out = convert_folder(src, ConversionSettings(out=str(tmp_path / "weak")), boxes=boxes)
    assert [r.case for r in summary.cases("converted")] == ["a", "b"]
    assert "box mask is empty" in summary.to_dict()["skipped"]["c"]
    got = WeakSet(tmp_path / "weak").read_case("a")[1].boxes
    assert sorted(b.as_tuple() for b in got) == sorted(b.as_tuple() for b in given)
    assert (
        len({b.lesion_id for b in got if b.slice in (2, 3)}) == 1 != len({b.lesion_id for b in got})
    )
    assert [b.lesion_id for b in WeakSet(tmp_path / "weak").read_case("b")[1].boxes] == [7, 7]
