"""RTSTRUCT (rt-utils + fallback) and DICOM-SEG (highdicom) readers, on the real sample and on synthetic series."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.sequence import Sequence

from nnunet_teacher_student.dataset_conversion.dicom_labels import (
    read_rtstruct,
    read_seg_info,
    rtstruct_mask,
    seg_mask,
    select_segments,
)
from nnunet_teacher_student.dataset_conversion.dicom_series import read_ct_series, scan_dicom_tree
from nnunet_teacher_student.core.errors import InputError


def dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def real(sample):
    series, _ = scan_dicom_tree(sample / "Lung-PET-CT-Dx")
    ct = read_ct_series(next(iter(series.values())))
    fx = sample / "rtstruct-seg-fixtures"
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(fx / "A0002_B40f_GTV-1_mask.nii.gz")))
    return ct, fx, ref


@pytest.mark.parametrize("use_rt_utils", [True, False])
def test_rtstruct_reproduces_the_real_fixture_mask(real, use_rt_utils):
    ct, fx, ref = real
    mask, names = rtstruct_mask(
        read_rtstruct(fx / "A0002_B40f_GTV-1_rtstruct.dcm"), ct, use_rt_utils=use_rt_utils
    )
    assert names == ["GTV-1"]
    assert mask.shape == ref.shape
    assert dice(mask, ref) >= 0.99


def test_seg_reproduces_the_real_fixture_mask(real):
    ct, fx, ref = real
    info = read_seg_info(fx / "A0002_B40f_GTV-1_seg.dcm")
    ds = pydicom.dcmread(info.path)
    assert (
        "SegmentIdentificationSequence" in ds.SharedFunctionalGroupsSequence[0]
    )  # the shared variant
    mask, names = seg_mask(info, ct)
    assert names == ["GTV-1"] and dice(mask, ref) >= 0.99


def test_seg_with_per_frame_segment_identification_and_primary_neoplasm_type(real, tmp_path):
    ct, fx, ref = real
    ds = pydicom.dcmread(fx / "A0002_B40f_GTV-1_seg.dcm")
    ident = ds.SharedFunctionalGroupsSequence[0].SegmentIdentificationSequence
    del ds.SharedFunctionalGroupsSequence[0].SegmentIdentificationSequence
    for item in ds.PerFrameFunctionalGroupsSequence:
        item.SegmentIdentificationSequence = Sequence([copy.deepcopy(ident[0])])
    ds.SegmentSequence[0].SegmentLabel = "Tumour"
    ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning = "Neoplasm, Primary"
    path = tmp_path / "perframe.dcm"
    ds.save_as(path)
    info = read_seg_info(path)
    assert [s[0] for s in select_segments(info, "GTV-1")] == [
        1
    ]  # chosen by its type, not its label
    mask, _ = seg_mask(info, ct)
    assert dice(mask, ref) >= 0.99


def test_labels_refuse_a_series_they_do_not_refer_to(real, tmp_path, build):
    _, fx, _ = real
    vol, _ = build.blob_volume(shape=(6, 32, 32))
    build.write_series(tmp_path / "other", vol)
    series, _ = scan_dicom_tree(tmp_path / "other")
    other = read_ct_series(next(iter(series.values())))
    with pytest.raises(InputError, match="not slices of the CT"):
        seg_mask(read_seg_info(fx / "A0002_B40f_GTV-1_seg.dcm"), other)
    with pytest.raises(InputError, match="does not fit the CT series"):
        rtstruct_mask(read_rtstruct(fx / "A0002_B40f_GTV-1_rtstruct.dcm"), other)


def test_rtstruct_roi_pattern_merges_variants_and_reports_missing(tmp_path, build):
    vol, gtv1 = build.blob_volume()
    gtv2 = np.zeros_like(gtv1)
    gtv2[2:4, 5:10, 5:12] = 1
    datasets = build.write_series(tmp_path / "ct", vol)
    build.write_rtstruct(
        tmp_path / "ct",
        {"gtv-pre-op": gtv1, "GTV-2": gtv2, "Lung-Left": np.ones_like(gtv1)},
        tmp_path / "rt.dcm",
    )
    series, _ = scan_dicom_tree(tmp_path / "ct")
    ct = read_ct_series(next(iter(series.values())))
    assert ct.sop_uids == [d.SOPInstanceUID for d in datasets]  # SimpleITK's order = position order
    info = read_rtstruct(tmp_path / "rt.dcm")
    with pytest.raises(InputError, match="no ROI matching 'GTV-1'"):
        rtstruct_mask(info, ct)
    mask, names = rtstruct_mask(info, ct, "gtv-pre-op|GTV-2")
    assert names == ["GTV-2", "gtv-pre-op"]
    assert dice(mask, gtv1 | gtv2) >= 0.95
    one, _ = rtstruct_mask(info, ct, "GTV-2")
    assert dice(one, gtv2) >= 0.95 and not one[6].any()


def test_fallback_rasteriser_handles_non_square_slices(tmp_path, build):
    """rt-utils assumes square slices; the fallback places hand-made contours exactly."""
    vol = np.full((5, 30, 50), -900, np.int16)
    datasets = build.write_series(
        tmp_path / "ct", vol, spacing=(0.7, 0.9, 3.0), iop=(-1, 0, 0, 0, -1, 0)
    )
    series, _ = scan_dicom_tree(tmp_path / "ct")
    ct = read_ct_series(next(iter(series.values())))
    rt = pydicom.dcmread(tmp_path / "ct" / "1-01.dcm")  # any dataset as a carrier
    # rectangle of pixel centres: columns 10..20, rows 5..12 on slice z=3
    d = datasets[3]
    col = np.asarray(d.ImageOrientationPatient[:3], float) * float(d.PixelSpacing[1])
    row = np.asarray(d.ImageOrientationPatient[3:], float) * float(d.PixelSpacing[0])
    p0 = np.asarray(d.ImagePositionPatient, float)
    corners = [p0 + c * col + r * row for c, r in [(10, 5), (20, 5), (20, 12), (10, 12)]]
    contour = pydicom.Dataset()
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = 4
    contour.ContourData = [float(v) for p in corners for v in p]
    roi_contour = pydicom.Dataset()
    roi_contour.ReferencedROINumber = 1
    roi_contour.ContourSequence = Sequence([contour])
    roi = pydicom.Dataset()
    roi.ROINumber, roi.ROIName = 1, "GTV-1"
    rt.Modality = "RTSTRUCT"
    rt.StructureSetROISequence = Sequence([roi])
    rt.ROIContourSequence = Sequence([roi_contour])
    rt.save_as(tmp_path / "rt.dcm")
    mask, _ = rtstruct_mask(read_rtstruct(tmp_path / "rt.dcm"), ct)
    expected = np.zeros((5, 30, 50), np.uint8)
    expected[3, 5:13, 10:21] = 1
    assert (mask == expected).all()


def test_seg_from_highdicom_with_two_segments_on_a_flipped_series(tmp_path, build):
    vol, gtv = build.blob_volume()
    lung = np.zeros_like(gtv)
    lung[:, :5, :5] = 1
    datasets = build.write_series(tmp_path / "ct", vol, iop=(0, 1, 0, -1, 0, 0))  # rotated in-plane
    path = build.write_seg(datasets, {"Lung": lung, "GTV-1": gtv}, tmp_path / "seg.dcm")
    series, _ = scan_dicom_tree(tmp_path / "ct")
    ct = read_ct_series(next(iter(series.values())))
    mask, names = seg_mask(read_seg_info(path), ct)
    assert names == ["GTV-1"] and (mask == gtv).all()
    # the bright voxels of the CT are exactly the mask: mask and image share the voxels
    assert (sitk.GetArrayFromImage(ct.image)[mask > 0] == 40).all()
