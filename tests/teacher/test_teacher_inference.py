"""Box-region inference of a trained teacher (``teacher.inference.teacher_predict_case``, ``nnts teacher-predict``):
region vs full-volume inference, the box constraint, and the output geometry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_teacher_student import cli
from nnunet_teacher_student.formats.boxes import BoxSet
from nnunet_teacher_student.evaluation.metrics import dice
from nnunet_teacher_student.core.geometry import Geometry
from nnunet_teacher_student.teacher.inference import dilate_in_plane, teacher_predict_case
from nnunet_teacher_student.formats.weak_set import WeakSet


def _region_mask(pred, shape) -> np.ndarray:
    inside = np.zeros(shape, bool)
    for r in pred.regions:
        inside[r.slices] = True
    return inside


def _compare_region_full(predictor, weak: WeakSet, on_case_grid: bool = False) -> list[dict]:
    """Per case: DSC of region vs full-volume masks and the probability agreement inside the dilated boxes.
    ``on_case_grid``: the configuration's spacing is set to each case's own (no resampling), then restored."""
    config = predictor.predictor.configuration_manager.configuration
    plans_spacing = config["spacing"]
    rows = []
    try:
        for case in weak.case_ids():
            ct, boxset = weak.read_case(case)
            spacing = Geometry.of(ct).spacing[::-1]
            if on_case_grid:
                config["spacing"] = list(spacing)
            region = teacher_predict_case(predictor, ct, boxset)
            full = teacher_predict_case(predictor, ct, boxset, full_volume=True)
            near = dilate_in_plane(boxset.mask(), spacing, 2.0)
            inside = _region_mask(region, near.shape)
            assert inside[near].all(), f"{case}: regions do not cover the dilated boxes"
            assert not region.probability[~inside].any(), (
                f"{case}: probability outside the predicted regions"
            )
            diff = np.abs(region.probability - full.probability)[near]
            near_prob = full.probability[near]
            rows.append(
                {
                    "case": case,
                    "dice": dice(region.mask > 0, full.mask > 0),
                    "voxels": (int(region.mask.sum()), int(full.mask.sum())),
                    "mean_abs_diff": float(diff.mean()),
                    "max_abs_diff": float(diff.max()),
                    "dilated_box_voxels": int(near.sum()),
                    "max_prob": float(near_prob.max()),
                    "prob_mass": float(near_prob.sum()),
                    "prob_std": float(near_prob.std()),
                    "corr": float(np.corrcoef(region.probability[near], near_prob)[0, 1]),
                }
            )
    finally:
        config["spacing"] = plans_spacing
    print("\nregion vs full volume:", json.dumps(rows))
    return rows


@pytest.fixture(scope="module")
def weak(phantom_study) -> WeakSet:
    return WeakSet(phantom_study / "weak")


@pytest.fixture(scope="module")
def saturated_model(box_teacher_model, tmp_path_factory) -> Path:
    """The trained teacher with its output layers set to "tumour everywhere" (same plans and pipeline):
    every voxel the network sees is tumour, so the box constraint alone shapes the mask."""
    import torch

    folder = tmp_path_factory.mktemp("saturated") / box_teacher_model.name
    shutil.copytree(
        box_teacher_model,
        folder,
        ignore=shutil.ignore_patterns("validation", "*.png", "*.txt", "checkpoint_best.pth"),
    )
    path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    seg = [k for k in ckpt["network_weights"] if "seg_layers" in k]
    assert seg
    for k in seg:
        w = ckpt["network_weights"][k]
        w.zero_()
        if k.endswith("bias"):
            w[0], w[-1] = -20.0, 20.0
    torch.save(ckpt, path)
    return folder


@pytest.fixture(scope="module")
def pointwise_predictor(box_teacher_model):
    """The teacher's predictor (its plans, preprocessing and nnU-Net's sliding window) with a voxel-wise
    network: tumour logit = 3 * CT(normalised) + 6 * box - 5. Its output does not depend on how the
    sliding window tiles the image, so region and full-volume inference must agree to float precision;
    any crop, margin or paste error shows up as a difference."""
    import torch

    from nnunet_teacher_student.prediction.region import RegionPredictor

    rp = RegionPredictor(box_teacher_model, tta=False)
    net = torch.nn.Conv3d(2, 2, kernel_size=1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
        net.weight[1, 0], net.weight[1, 1], net.bias[1] = 3.0, 6.0, -5.0
    p = rp.predictor
    p.manual_initialization(
        net,
        p.plans_manager,
        p.configuration_manager,
        [net.state_dict()],
        p.dataset_json,
        p.trainer_name,
        None,
    )
    return rp


@pytest.mark.slow
def test_region_inference_equals_full_volume(pointwise_predictor, weak):
    """Same model, regions vs whole CT, with the CT already on the network's grid (the configuration's
    spacing set to the case's, so nnU-Net resamples nothing): identical masks (DSC 1.0) and probabilities
    inside the dilated boxes (up to float16 rounding), never a probability outside the regions. Not vacuous:
    the masks are non-empty and smaller than the dilated boxes (the CT channel shapes them)."""
    rows = _compare_region_full(pointwise_predictor, weak, on_case_grid=True)
    assert sum(r["voxels"][1] for r in rows) > 0
    for r in rows:
        assert r["dice"] == 1.0 and r["voxels"][0] == r["voxels"][1], r
        assert r["max_abs_diff"] < 2e-3, (
            r
        )  # nnU-Net sums the tiles' logits in float16: measured <= 4e-4
        assert r["prob_std"] > 0.05 and 0 < r["voxels"][1] < r["dilated_box_voxels"], r


@pytest.mark.slow
def test_region_inference_with_resampling_stays_close(pointwise_predictor, weak):
    """On the plans' spacing nnU-Net resamples a region and the whole CT onto grids whose sub-voxel offsets
    differ (its resize maps a region of n voxels with the factor n / round(n * ratio)), so the probabilities
    differ by interpolation, not by position: measured mean |diff| 0.005-0.015 and correlation >= 0.977 inside
    the dilated boxes, DSC 0.81-1.0 on these 14-59-voxel masks; deterministic (fixed network and phantoms)."""
    rows = _compare_region_full(pointwise_predictor, weak)
    for r in rows:
        assert r["mean_abs_diff"] < 0.03 and r["corr"] > 0.95, r


@pytest.mark.slow
def test_constraint_holds(saturated_model, weak):
    """Tumour everywhere the network looks -> the mask is exactly the boxes dilated in-plane by the margin:
    nothing outside them, every unboxed slice empty; margin 0 gives the boxes themselves."""
    from nnunet_teacher_student.prediction.region import RegionPredictor

    predictor = RegionPredictor(saturated_model, tta=False)
    for case in weak.case_ids()[:2]:
        ct, boxset = weak.read_case(case)
        bmask = boxset.mask()
        spacing = Geometry.of(ct).spacing[::-1]
        for margin in (2.0, 0.0):
            pred = teacher_predict_case(predictor, ct, boxset, box_margin_mm=margin)
            expected = dilate_in_plane(bmask, spacing, margin)
            assert np.array_equal(pred.mask > 0, expected), (case, margin)
            assert not pred.mask[~bmask.any(axis=(1, 2))].any()
        assert dilate_in_plane(bmask, spacing, 2.0).sum() > bmask.sum()  # the margin mattered
        point = teacher_predict_case(
            predictor, ct, boxset, mode="point"
        )  # no box extent: the point regions only
        assert np.array_equal(point.mask > 0, _region_mask(point, bmask.shape))


@pytest.mark.slow
def test_teacher_predict_cli_keeps_geometry(saturated_model, weak, tmp_path, capsys):
    """``nnts teacher-predict`` on a CT with a non-trivial direction/origin: the mask has the CT's
    geometry and lies on the boxes; a box-mask image gives the same result as the box file."""
    case = weak.case_ids()[0]
    ct, boxset = weak.read_case(case)
    ct.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    ct.SetOrigin((12.5, -30.0, 7.25))
    geometry = Geometry.of(ct)
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    moved = BoxSet(geometry, boxset.boxes)
    moved.save(tmp_path / "boxes.json")
    sitk.WriteImage(moved.mask_image(), str(tmp_path / "boxmask.nii.gz"))
    common = [
        "-i",
        str(tmp_path / "ct.nii.gz"),
        "-m",
        str(saturated_model),
        "-device",
        "cpu",
        "--disable-tta",
    ]
    assert (
        cli.main(
            [
                "teacher-predict",
                *common,
                "-b",
                str(tmp_path / "boxes.json"),
                "-o",
                str(tmp_path / "a.nii.gz"),
                "--save-probability",
                str(tmp_path / "p.nii.gz"),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (
        report["boxes"] == len(boxset.boxes) and report["regions"] >= 1 and report["tumour_ml"] > 0
    )
    assert (
        cli.main(
            [
                "teacher-predict",
                *common,
                "-b",
                str(tmp_path / "boxmask.nii.gz"),
                "-o",
                str(tmp_path / "b.nii.gz"),
                "--box-margin-mm",
                "2",
            ]
        )
        == 0
    )
    a, b, p = (sitk.ReadImage(str(tmp_path / n)) for n in ("a.nii.gz", "b.nii.gz", "p.nii.gz"))
    for img in (a, b, p):
        assert Geometry.of(img).matches(geometry)
    arr = sitk.GetArrayFromImage(a)
    assert np.array_equal(arr, sitk.GetArrayFromImage(b))
    assert np.array_equal(arr > 0, dilate_in_plane(moved.mask(), geometry.spacing[::-1], 2.0))
    assert sitk.GetArrayFromImage(p).max() > 0.99
    # boxes drawn on another grid are refused before any model is loaded
    other = BoxSet(
        Geometry(geometry.size, (2.0, 2.0, 2.0), geometry.origin, geometry.direction), boxset.boxes
    )
    other.save(tmp_path / "other.json")
    assert (
        cli.main(
            [
                "teacher-predict",
                *common,
                "-b",
                str(tmp_path / "other.json"),
                "-o",
                str(tmp_path / "c.nii.gz"),
            ]
        )
        == 1
    )
    assert "geometry mismatch" in capsys.readouterr().err and not (tmp_path / "c.nii.gz").exists()
