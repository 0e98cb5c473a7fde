"""NSCLC-Radiomics converter on a small synthetic TCIA-layout collection."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_teacher_student import cli
from nnunet_teacher_student.dataset_conversion.nsclc_radiomics import convert_nsclc_radiomics
from nnunet_teacher_student.dataset_conversion.settings import ConversionSettings
from nnunet_teacher_student.core.errors import InputError


def dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture
def collection(tmp_path, build):
    """LUNG1-001: CT + RTSTRUCT + SEG; LUNG1-002: GTV variants only; LUNG1-003: SEG only (flipped CT);
    LUNG1-004: a missing slice; LUNG1-005: a corrupt slice; LUNG1-128: no GTV at all."""
    src = tmp_path / "NSCLC-Radiomics"
    vol, gtv = build.blob_volume()
    truth = {}

    def patient(pid, rois=None, seg=None, iop=(1, 0, 0, 0, 1, 0), positions=None):
        base = src / pid / "01-01-2000-study"
        ds = build.write_series(
            base / "1.000000-CT", vol, iop=iop, patient=pid, positions_z=positions
        )
        if rois is not None:
            (base / "2.000000-RTSTRUCT").mkdir(parents=True)
            build.write_rtstruct(base / "1.000000-CT", rois, base / "2.000000-RTSTRUCT" / "1-1.dcm")
        if seg is not None:
            (base / "3.000000-SEG").mkdir(parents=True)
            build.write_seg(ds, seg, base / "3.000000-SEG" / "1-1.dcm")
        return base

    other = np.zeros_like(gtv)
    other[1:3, 2:6, 2:8] = 1
    patient("LUNG1-001", {"GTV-1": gtv, "Lung-Left": np.ones_like(gtv)}, {"GTV-1": gtv})
    patient("LUNG1-002", {"gtv-pre-op": gtv, "GTV-2": other})
    patient("LUNG1-003", None, {"Heart": other, "GTV-1": gtv}, iop=(-1, 0, 0, 0, -1, 0))
    patient(
        "LUNG1-004",
        {"GTV-1": gtv},
        positions=[i * 2.5 for i in range(6)] + [i * 2.5 for i in range(7, 13)],
    )
    base = patient("LUNG1-005", {"GTV-1": gtv})
    corrupt = sorted((base / "1.000000-CT").glob("*.dcm"))[3]
    corrupt.write_bytes(corrupt.read_bytes()[:-1000])  # header intact, pixel data truncated
    patient("LUNG1-128", {"Lung-Right": np.ones_like(gtv)})
    truth["gtv"], truth["other"] = gtv, other
    return src, truth


def test_convert_collection(collection, tmp_path, monkeypatch, capsys):
    src, truth = collection
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    rc = cli.main(["convert", "nsclc-radiomics", str(src), "-d", "502"])
    printed = capsys.readouterr().out
    assert rc == 0
    root = tmp_path / "raw" / "Dataset502_NSCLCRadiomics"
    summary = json.loads((root / "conversion_summary.json").read_text())
    assert summary["converted"] == ["LUNG1-001", "LUNG1-003"]
    skipped = summary["skipped"]
    assert set(skipped) == {"LUNG1-002", "LUNG1-004", "LUNG1-005", "LUNG1-128"}
    assert (
        "no ROI matching 'GTV-1'" in skipped["LUNG1-128"] and "Lung-Right" in skipped["LUNG1-128"]
    )
    assert "non-uniform slice spacing" in skipped["LUNG1-004"]
    assert "skipped 1 file(s)" in skipped["LUNG1-005"] and "skipped LUNG1-128" in printed
    dataset = json.loads((root / "dataset.json").read_text())
    assert dataset["numTraining"] == 2 and dataset["labels"] == {"background": 0, "tumor": 1}
    assert dataset["channel_names"] == {"0": "CT"} and dataset["file_ending"] == ".nii.gz"
    for case in ("LUNG1-001", "LUNG1-003"):
        image = sitk.ReadImage(str(root / "imagesTr" / f"{case}_0000.nii.gz"))
        label = sitk.ReadImage(str(root / "labelsTr" / f"{case}.nii.gz"))
        assert image.GetPixelID() == sitk.sitkInt16 and label.GetPixelID() == sitk.sitkUInt8
        assert (
            label.GetDirection() == image.GetDirection() and label.GetOrigin() == image.GetOrigin()
        )
        lab, ct = sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(image)
        assert dice(lab, truth["gtv"]) >= 0.95
        assert (ct[lab > 0] == 40).mean() > 0.95  # the mask sits on the bright tumour voxels
    meta = json.loads((root / ".nnts_convert" / "LUNG1-003.json").read_text())
    assert meta["label_source"] == "seg" and meta["rois"] == ["GTV-1"]
    manifest = json.loads((root / "manifest.json").read_text())
    assert set(manifest["cases"]) == {"LUNG1-001", "LUNG1-003"}
    assert {e["dataset"] for e in manifest["cases"].values()} == {"nsclc-radiomics"}


def test_patterns_all_gtv_and_label_source(collection, tmp_path):
    src, truth = collection
    raw = str(tmp_path / "raw")
    summary, out = convert_nsclc_radiomics(
        src, ConversionSettings(out=raw, dataset_id=503), pattern="GTV.*"
    )
    assert "LUNG1-002" in [r.case for r in summary.cases("converted")]
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(out.label_path("LUNG1-002"))))
    assert dice(lab, truth["gtv"] | truth["other"]) >= 0.95
    seg_only, out2 = convert_nsclc_radiomics(
        src, ConversionSettings(out=raw, dataset_id=504), label_source="seg"
    )
    assert [r.case for r in seg_only.cases("converted")] == ["LUNG1-001", "LUNG1-003"]
    assert "no DICOM-SEG" in seg_only.to_dict()["skipped"]["LUNG1-002"]
    with pytest.raises(InputError, match="already used by"):
        convert_nsclc_radiomics(src, ConversionSettings(out=raw, dataset_id=504, name="Other"))
    with pytest.raises(InputError, match="invalid ROI pattern"):
        convert_nsclc_radiomics(src, ConversionSettings(out=raw, dataset_id=505), pattern="GTV-(")
