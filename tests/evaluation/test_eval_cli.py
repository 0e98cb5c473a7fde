"""``nnts evaluate`` end to end on tiny NIfTI folders, and its input errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_teacher_student.cli import main
from nnunet_teacher_student.evaluation import EvaluationSettings, evaluate_folders, load_manifest
from nnunet_teacher_student.core.errors import InputError

SPACING_XYZ = (0.8, 0.8, 2.0)


def write_mask(path: Path, arr: np.ndarray, spacing=SPACING_XYZ) -> None:
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.SetSpacing(spacing)
    img.SetOrigin((-10.0, 5.0, 3.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def lesion(z0, z1, y0, y1, x0, x1, value=1, shape=(12, 16, 16)) -> np.ndarray:
    a = np.zeros(shape, np.uint8)
    a[z0:z1, y0:y1, x0:x1] = value
    return a


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    write_mask(gt / "msd_001.nii.gz", lesion(2, 6, 2, 6, 2, 6))
    write_mask(pred / "msd_001.nii.gz", lesion(2, 6, 2, 6, 3, 7, value=2))  # DSC 0.75
    write_mask(gt / "nsclc_001.nii.gz", lesion(2, 6, 2, 6, 2, 6) | lesion(8, 10, 10, 14, 10, 14))
    write_mask(pred / "nsclc_001_0000.nii.gz", lesion(2, 6, 2, 6, 2, 6, value=2))  # nnU-Net name
    write_mask(gt / "nsclc_002.nii.gz", np.zeros((12, 16, 16)))  # empty GT
    write_mask(pred / "nsclc_002.nii.gz", np.zeros((12, 16, 16)))
    (pred / "dataset.json").write_text("{}")  # ignored
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "cases": {
                    "msd_001": {"dataset": "MSD-Lung"},
                    "nsclc_001": {"site": "NSCLC-Radiomics"},
                    "nsclc_002": {"site": "NSCLC-Radiomics", "patient": "p2"},
                }
            }
        )
    )
    return pred, gt, manifest


def evaluate(pred, gt, out, *extra: str) -> int:
    """``nnts evaluate --pred PRED --gt GT -o OUT --quiet EXTRA...``; its exit status."""
    return main(
        ["evaluate", "--pred", str(pred), "--gt", str(gt), "-o", str(out), "--quiet", *extra]
    )


def test_cli_end_to_end(folders, tmp_path, capsys):
    pred, gt, manifest = folders
    out = tmp_path / "out"
    rc = evaluate(pred, gt, out, "--manifest", str(manifest), "--name", "Student")
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "lesions.csv",
        "per_case.csv",
        "summary.json",
        "summary.md",
    ]
    rows = {r["case"]: r for r in csv.DictReader((out / "per_case.csv").open())}
    assert set(rows) == {"msd_001", "nsclc_001", "nsclc_002"}
    assert float(rows["msd_001"]["dsc"]) == pytest.approx(0.75)
    assert rows["nsclc_001"]["dataset"] == "NSCLC-Radiomics"
    assert (rows["nsclc_001"]["tp"], rows["nsclc_001"]["fn"], rows["nsclc_001"]["fp"]) == (
        "1",
        "1",
        "0",
    )
    assert rows["nsclc_002"]["recall"] == "nan" and float(rows["nsclc_002"]["dsc"]) == 1.0
    # volumes use the spacing: 64 voxels * 0.8 * 0.8 * 2.0 mm^3
    assert float(rows["msd_001"]["gt_volume_ml"]) == pytest.approx(64 * 1.28 / 1000)
    summary = json.loads((out / "summary.json").read_text())  # strict JSON: NaN written as null
    assert summary["name"] == "Student"
    assert summary["summary"]["datasets"]["NSCLC-Radiomics"]["recall"] == {
        "mean": 0.5,
        "std": 0.0,
        "n": 1,
        "n_undefined": 0,
    }  # the empty case is not averaged
    assert summary["summary"]["overall"]["dsc"]["n"] == 2  # the tumour cases: nsclc_002 has none
    assert summary["summary"]["all_cases"]["dsc"]["n"] == 3
    assert (
        summary["summary"]["tumour_free"]["n_cases"] == 1
        and summary["summary"]["tumour_free"]["n_with_fp"] == 0
    )
    md = (out / "summary.md").read_text()
    assert "| Dataset | Model | DSC | DSC-TP | F1-score | Recall | Precision |" in md
    assert "| MSD-Lung | Student | 75.00 ± 0.00 |" in md and "| All | Student |" in md
    assert (
        "over the 2 tumour cases" in md and "Tumour-free cases: 0 of 1 with false positives" in md
    )
    assert (
        "both empty" in summary["rules"].lower() and summary["rules"] in md
    )  # the rules, stated in both
    lesions = list(csv.DictReader((out / "lesions.csv").open()))
    assert [(r["case"], r["mask"], r["positive"]) for r in lesions if r["case"] == "nsclc_001"] == [
        ("nsclc_001", "gt", "True"),
        ("nsclc_001", "gt", "False"),
        ("nsclc_001", "pred", "True"),
    ]
    assert "NSCLC-Radiomics" in capsys.readouterr().out


def test_label_option_selects_tumour_label(folders, tmp_path):
    pred, gt, _ = folders
    write_mask(
        pred / "msd_001.nii.gz",
        lesion(2, 6, 2, 6, 3, 7, value=2) + lesion(8, 10, 2, 4, 2, 4, value=1),
    )
    by_any = evaluate_folders(pred, gt, progress=False)
    by_label = evaluate_folders(
        pred, gt, settings=EvaluationSettings(label=2, gt_label=1), progress=False
    )
    assert by_any["cases"][0]["fp"] == 1 and by_label["cases"][0]["fp"] == 0
    assert list(by_label["summary"]["datasets"]) == ["All"]
    strict = evaluate_folders(
        pred, gt, settings=EvaluationSettings(overlap=0.5, nsd_tolerance_mm=1.0), progress=False
    )
    assert ">= 50 % of its voxels" in strict["rules"] and "within 1 mm" in strict["rules"]


def test_geometry_mismatch_names_the_file(folders, tmp_path, capsys):
    pred, gt, _ = folders
    write_mask(pred / "msd_001.nii.gz", lesion(2, 6, 2, 6, 3, 7), spacing=(1.0, 1.0, 2.0))
    out = tmp_path / "out"
    rc = evaluate(pred, gt, out)
    err = capsys.readouterr().err
    assert rc == 1
    assert (
        "nnts evaluate: error:" in err
        and str(pred / "msd_001.nii.gz") in err
        and "geometry mismatch" in err
    )
    assert not out.exists()  # nothing half-written


def test_missing_prediction_fails_or_scores_empty(folders, tmp_path, capsys):
    pred, gt, _ = folders
    (pred / "msd_001.nii.gz").unlink()
    rc = evaluate(pred, gt, tmp_path / "o1")
    assert rc == 1 and "msd_001" in capsys.readouterr().err
    rc = evaluate(pred, gt, tmp_path / "o2", "--allow-missing")
    assert rc == 0
    row = next(
        r
        for r in csv.DictReader((tmp_path / "o2" / "per_case.csv").open())
        if r["case"] == "msd_001"
    )
    assert (float(row["dsc"]), row["recall"], row["missing_prediction"]) == (0.0, "0", "True")


def test_manifest_forms_and_errors(tmp_path, folders):
    assert load_manifest({"a": "X", "b": {"site": "Y"}}) == {"a": "X", "b": "Y"}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        load_manifest(bad)
    with pytest.raises(InputError, match='no "dataset"'):
        load_manifest({"cases": {"a": {"patient": 1}}})
    pred, gt, _ = folders
    with pytest.raises(InputError, match="no dataset for case"):
        evaluate_folders(pred, gt, {"msd_001": "MSD-Lung"}, progress=False)


def test_probability_maps_are_rejected(folders, tmp_path):
    pred, gt, _ = folders
    img = sitk.GetImageFromArray(np.full((12, 16, 16), 0.3, np.float32))
    img.SetSpacing(SPACING_XYZ)
    img.SetOrigin((-10.0, 5.0, 3.0))
    sitk.WriteImage(img, str(pred / "msd_001.nii.gz"))
    with pytest.raises(InputError, match="msd_001.nii.gz: has non-integer values"):
        evaluate_folders(pred, gt, progress=False)
