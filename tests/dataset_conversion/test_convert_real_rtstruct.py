"""A real CT series with an RTSTRUCT as re-anonymised copies ship it (the layout of the NSCLC-Radiomics
cases in precision-medicine-toolbox: one flat folder per patient, per-contour slice UIDs stale): the
converter places the contours by position and reproduces the fixture mask."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import generate_uid

from nnunet_teacher_student.dataset_conversion.nsclc_radiomics import convert_nsclc_radiomics
from nnunet_teacher_student.dataset_conversion.settings import ConversionSettings


def dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def flat_patient(sample, dst, keep_series: bool):
    """Copy the real series and its RTSTRUCT into one flat folder; rewrite every per-contour slice UID."""
    series_dir = next((sample / "Lung-PET-CT-Dx").glob("*/*/*B40f*"))
    dst.mkdir(parents=True)
    for i, f in enumerate(sorted(series_dir.glob("*.dcm"))):
        shutil.copy(f, dst / f"{i + 1}.dcm")
    rt = pydicom.dcmread(sample / "rtstruct-seg-fixtures" / "A0002_B40f_GTV-1_rtstruct.dcm")
    for rc in rt.ROIContourSequence:
        for c in rc.ContourSequence:
            for img in c.get("ContourImageSequence", []):
                img.ReferencedSOPInstanceUID = generate_uid()
    if not keep_series:
        for fr in rt.ReferencedFrameOfReferenceSequence:
            fr.FrameOfReferenceUID = generate_uid()
            for st in fr.RTReferencedStudySequence:
                for se in st.RTReferencedSeriesSequence:
                    se.SeriesInstanceUID = generate_uid()
    rt.save_as(dst / "0.dcm")


def test_stale_contour_references_are_placed_by_position(sample, tmp_path):
    src = tmp_path / "dcms"
    flat_patient(sample, src / "LUNG1-901_CT", keep_series=True)
    summary, out = convert_nsclc_radiomics(
        src, ConversionSettings(out=str(tmp_path / "raw"), dataset_id=611, test_fraction=0)
    )
    assert [r.case for r in summary.cases("converted")] == ["LUNG1-901_CT"]
    ref = sitk.ReadImage(str(sample / "rtstruct-seg-fixtures" / "A0002_B40f_GTV-1_mask.nii.gz"))
    label = sitk.ReadImage(str(out.label_path("LUNG1-901_CT")))
    assert label.GetSize() == ref.GetSize() == (512, 512, 30)
    assert np.allclose(label.GetOrigin(), ref.GetOrigin()) and np.allclose(
        label.GetSpacing(), ref.GetSpacing()
    )
    assert dice(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(ref)) >= 0.99


def test_an_rtstruct_of_another_series_is_still_refused(sample, tmp_path):
    src = tmp_path / "dcms"
    flat_patient(sample, src / "LUNG1-902_CT", keep_series=False)
    summary, _ = convert_nsclc_radiomics(
        src, ConversionSettings(out=str(tmp_path / "raw"), dataset_id=612, test_fraction=0)
    )
    assert not summary.cases("converted")
    reason = summary.to_dict()["skipped"]["LUNG1-902_CT"]
    assert "0.dcm" in reason and "none of which is a CT series" in reason
