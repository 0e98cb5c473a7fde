"""The benchmark scripts stay runnable with one command each: each runs here on the test models with
the smallest sizes (in this process, to spare the imports) and writes its report. Their figures are
benchmarks, not asserted: only the report's shape and sanity."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, argv: list[str], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [script, *argv])
    try:
        runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
    except SystemExit as e:
        assert e.code in (0, None), f"{script} exited with {e.code}"


@pytest.mark.slow
def test_bench_teacher_region_runs(box_teacher_model, tmp_path, monkeypatch):
    out = tmp_path / "region.json"
    _run(
        "bench_teacher_region.py",
        [
            "-m",
            str(box_teacher_model),
            "--preset",
            "tiny",
            "--volume",
            "64x64x32",
            "--cases",
            "1",
            "--out",
            str(out),
        ],
        monkeypatch,
    )
    report = json.loads(out.read_text())
    case, summary = report["bench"]["cases"][0], report["bench"]["summary"]
    assert report["date"] and report["machine"] and case["grid_xyz"] == [64, 64, 32]
    assert 0 < case["region_share"] < 1 and case["time_region_s"] > 0 and case["time_full_s"] > 0
    assert (
        summary["n_cases"] == 1 and summary["mean_dsc_region_vs_full"] == case["dsc_region_vs_full"]
    )
    assert summary["mean_dsc_region_vs_truth"] == case["dsc_region_vs_truth"]


@pytest.mark.slow
def test_bench_predict_runs(strong_model, tmp_path, monkeypatch):
    out = tmp_path / "predict.json"
    _run(
        "bench_predict.py",
        [
            "-m",
            str(strong_model),
            "--size",
            "tiny",
            "--cases",
            "1",
            "--repeats",
            "1",
            "--fov-pad",
            "1.0",
            "--out",
            str(out),
        ],
        monkeypatch,
    )
    speed = json.loads(out.read_text())["speed"]
    modes = speed["cases"][0]["modes"]
    assert set(modes) == {
        "full",
        "full-shifted",
        "box",
        "per-lung",
        "full-skip",
        "grid-box",
        "grid-skip",
        "aligned",
        "unaligned",
        "margin5",
        "default",
    }
    assert all(m["cpu_s"] > 0 and m["tiles_run"] > 0 for m in modes.values())
    # skipping tiles runs fewer of them than the full tiling, and changes nothing near the lungs
    assert modes["full-skip"]["tiles_run"] < modes["full"]["tiles_run"]
    assert (
        modes["full-skip"]["dsc_vs_full_near_lungs"] == 1.0
        and modes["full"]["dsc_vs_full_near_lungs"] == 1.0
    )
    assert 0 < modes["box"]["predicted_fraction"] < 1 and speed["summary"]["n_cases"] == 1
    # 5 mm of air on the low x and y sides moves the whole-CT tiling: at least the tiles of the unshifted CT
    assert modes["full-shifted"]["tiles_run"] >= modes["full"]["tiles_run"]
    assert modes["margin5"]["predicted_fraction"] < modes["default"]["predicted_fraction"]


def test_make_fov_dataset(phantom_study, tmp_path, monkeypatch):
    """The clinical-FOV copy: a square in-plane grid twice the case's larger side, the label where it was in
    space, air around the body and a table under it; a second run leaves the written cases alone."""
    import os

    import numpy as np
    import SimpleITK as sitk

    from nnts_testlib import STRONG_ID

    raw = Path(os.environ["nnUNet_raw"])
    argv = [
        "--raw-id",
        str(STRONG_ID),
        "--id",
        "597",
        "--name",
        "FovTest",
        "--factor",
        "2",
        "--test",
        str(phantom_study / "test"),
        "--test-out",
        str(tmp_path / "test_fov"),
    ]
    _run("make_fov_dataset.py", argv, monkeypatch)
    src, dst = next(raw.glob(f"Dataset{STRONG_ID}_*")), raw / "Dataset597_FovTest"
    labels = sorted((src / "labelsTr").glob("*.nii.gz"))
    assert [p.name for p in sorted((dst / "labelsTr").glob("*.nii.gz"))] == [p.name for p in labels]
    assert json.loads((dst / "dataset.json").read_text())["name"] == "FovTest"
    for label in labels:
        a, b = sitk.ReadImage(str(label)), sitk.ReadImage(str(dst / "labelsTr" / label.name))
        ct = sitk.GetArrayFromImage(
            sitk.ReadImage(str(dst / "imagesTr" / label.name.replace(".nii", "_0000.nii")))
        )
        side = 2 * round(max(a.GetSize()[:2]))
        assert b.GetSize() == (side, side, a.GetSize()[2]) and ct.shape == (
            a.GetSize()[2],
            side,
            side,
        )
        centre = [np.argwhere(sitk.GetArrayFromImage(x) > 0).mean(0)[::-1] for x in (a, b)]
        pa, pb = (
            x.TransformContinuousIndexToPhysicalPoint(c.tolist()) for x, c in zip((a, b), centre)
        )
        assert np.allclose(pa, pb, atol=1e-3)
        assert ct[:, 0].max() == -1000 and ct[:, :, 0].max() == -1000  # padded air at the edges
        table = np.nonzero((ct == 150).all(axis=0).sum(axis=1) > 0.8 * side)[
            0
        ]  # rows of a slab on every slice
        body = np.setdiff1d(np.nonzero((ct > -500).any(axis=(0, 2)))[0], table)
        assert table.size and table.min() > body.max() + 1  # under the body, not touching it
        assert (ct[:, body.max() + 1 : table.min()] < -500).all()  # air between
    images = sorted((tmp_path / "test_fov" / "images").glob("*.nii.gz"))
    assert len(images) == len(list((phantom_study / "test" / "labels").glob("*.nii.gz"))) > 0
    stamp = [p.stat().st_mtime_ns for p in images]
    _run("make_fov_dataset.py", argv, monkeypatch)
    assert [p.stat().st_mtime_ns for p in images] == stamp


@pytest.mark.slow
def test_make_sized_model_predicts(strong_model, tmp_path, monkeypatch):
    """The untrained clinical-size model loads in nnU-Net's predictor and its plain U-Net has nnU-Net's strides
    for the patch (here a small one: 16 x 32 x 32 pools z twice and y, x three times)."""
    import numpy as np

    from nnunet_teacher_student.prediction.region import RegionPredictor

    out = tmp_path / "sized"
    _run(
        "make_sized_model.py",
        [
            "--like",
            str(strong_model),
            "--out",
            str(out),
            "--patch",
            "16",
            "32",
            "32",
            "--spacing",
            "2",
            "1",
            "1",
        ],
        monkeypatch,
    )
    arch = json.loads((out / "plans.json").read_text())["configurations"]["3d_fullres"][
        "architecture"
    ]
    assert arch["arch_kwargs"]["strides"] == [[1, 1, 1], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    assert arch["arch_kwargs"]["features_per_stage"] == [32, 64, 128, 256]
    predictor = RegionPredictor(out, ["all"], device="cpu", tta=False)
    seg, _, _ = predictor.predict_array(np.full((1, 20, 40, 40), -500, np.float32), (2.0, 1.0, 1.0))
    assert seg.shape == (20, 40, 40) and predictor.predictor.tiles_run > 0
