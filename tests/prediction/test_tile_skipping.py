"""Tile skipping: nnU-Net's sliding window without the tiles far from the lungs gives, near the lungs, exactly
the prediction of the full tiling, and background elsewhere; the layout choice follows the tile counts."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_teacher_student.core.geometry import Geometry, read_image
from nnunet_teacher_student.prediction.lesions import near_mask
from nnunet_teacher_student.prediction.case import predict_case
from nnunet_teacher_student.prediction.settings import PredictSettings
from nnunet_teacher_student.prediction.tiles import (
    UNPREDICTED_LOGIT,
    TileMask,
    count_tiles,
    fill_unpredicted,
)


@pytest.fixture(scope="module")
def predictor(strong_model):
    from nnunet_teacher_student.prediction.region import RegionPredictor

    return RegionPredictor(strong_model, (0,), device="cpu", tta=False)


@pytest.fixture(scope="module")
def padded_ct(phantom_study) -> sitk.Image:
    """The smaller phantom test CT with air around it (as a clinical field of view has), so that some tiles are
    far from the lungs."""
    images = sorted((phantom_study / "test" / "images").glob("*.nii.gz"))
    ct = read_image(min(images, key=lambda p: np.prod(sitk.ReadImage(str(p)).GetSize())))
    pad = list(ct.GetSize())
    return sitk.ConstantPad(ct, pad, pad, -1000)


def test_tile_mask_keeps_the_tiles_within_the_margin():
    mask = np.zeros((20, 40, 40), bool)
    mask[10, 5, 5] = True
    tm = TileMask(mask, (0, 2, 2))
    assert tm.touches(
        (10, 0, 0), (11, 4, 4), mask.shape
    )  # 1 voxel away in y and x: within the margin
    assert not tm.touches((0, 20, 20), (8, 40, 40), mask.shape)  # far away
    # on a grid resampled to half the size, the same voxel maps to about (5, 2.5, 2.5)
    assert tm.touches((5, 2, 2), (6, 3, 3), (10, 20, 20)) and not tm.touches(
        (0, 10, 10), (3, 20, 20), (10, 20, 20)
    )
    kept, total = count_tiles((20, 40, 40), (4, 8, 8), 0.5, TileMask(mask, (0, 0, 0)))
    # the tiles holding that voxel (2 per axis), and in z the tile ending just before it (one voxel of slack)
    assert total == 9 * 9 * 9 and kept == 3 * 2 * 2


def test_unpredicted_voxels_become_background():
    logits = torch.full((3, 2, 2, 2), float("nan"), dtype=torch.half)
    logits[:, 0] = 1.0
    fill_unpredicted(logits, has_regions=False)
    assert torch.all(logits[:, 0] == 1) and torch.all(logits[0, 1] == UNPREDICTED_LOGIT)
    assert torch.all(logits[1:, 1] == -UNPREDICTED_LOGIT)
    regions = torch.full((2, 2, 2, 2), float("nan"))
    fill_unpredicted(regions, has_regions=True)
    assert torch.all(regions == -UNPREDICTED_LOGIT)


def test_skipping_tiles_changes_nothing_near_the_lungs(predictor, padded_ct):
    from nnunet_teacher_student.lungs.mask import lung_mask

    margin = 3.0
    kw = dict(lung_crop=False, lung_dilation_mm=None, save_probabilities=True, margin_mm=margin)
    full = predict_case(predictor, padded_ct, PredictSettings(skip_tiles=False, **kw))
    before = predictor.predictor.tiles_run, predictor.predictor.tiles_total
    skipped = predict_case(predictor, padded_ct, PredictSettings(skip_tiles=True, **kw))
    run = predictor.predictor.tiles_run - before[0]
    total = predictor.predictor.tiles_total - before[1]
    est = skipped.report["sliding_window"][0]
    assert (
        0 < run < total and est["tiles_run"] == run and est["tiles"] == total
    )  # some tiles skipped, as estimated
    spacing = Geometry.of(padded_ct).spacing[::-1]
    lungs = lung_mask(padded_ct).mask > 0
    near = near_mask(lungs, spacing, margin / 2)
    assert np.array_equal(
        full.probability[near], skipped.probability[near]
    )  # bit for bit near the lungs
    assert np.array_equal(full.mask[near], skipped.mask[near])
    far = ~near_mask(
        lungs, spacing, margin + 2 * max(predictor.patch_size_mm)
    )  # beyond every kept tile
    assert far.any() and not skipped.mask[far].any() and skipped.probability[far].max() < 1e-6
    assert (
        full.mask.any()
    )  # the toy model predicts something, so the comparison is not of two empty masks


def test_auto_layout_picks_the_cheaper_one(predictor, padded_ct):
    auto = predict_case(predictor, padded_ct, PredictSettings(lung_dilation_mm=None)).report
    cost = {}
    for split in (False, True):
        rep = predict_case(
            predictor, padded_ct, PredictSettings(per_lung=split, lung_dilation_mm=None)
        ).report
        cost[split] = sum(e["network_passes"] for e in rep["sliding_window"])
    best = min(cost, key=lambda k: (cost[k], k))
    assert auto["per_lung"] == (best and len(auto["crops"]) > 1)
    assert sum(e["network_passes"] for e in auto["sliding_window"]) == cost[best]
    assert "fewer network passes" in auto["layout"]


@pytest.fixture(scope="module")
def pointwise(strong_model):
    """The strong model's predictor (its plans, preprocessing, sliding window and export) with a voxel-wise
    network: tumour logit = 3 * CT(normalised). Its output does not depend on where the tiles lie, so any
    difference between two ways of predicting comes from the voxels the network is given (resampling) or from
    the cropping and pasting."""
    from nnunet_teacher_student.prediction.region import RegionPredictor

    rp = RegionPredictor(strong_model, (0,), device="cpu", tta=False)
    net = torch.nn.Conv3d(1, 2, kernel_size=1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
        net.weight[1, 0] = 3.0
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


def test_cropping_after_resampling_keeps_nnunets_grid(pointwise, padded_ct):
    """Cutting nnU-Net's resampled array to the lung box gives, near the lungs, full-volume prediction's
    probabilities up to float16 rounding, with and without skipping tiles; cutting the CT before resampling
    shifts the grid by a fraction of a voxel and does not (the check is sensitive); the estimate counts the
    tiles that ran; beyond the box everything is background."""
    from nnunet_teacher_student.lungs.mask import lung_mask

    margin = 3.0
    kw = dict(lung_dilation_mm=None, save_probabilities=True, margin_mm=margin)
    full = predict_case(
        pointwise, padded_ct, PredictSettings(lung_crop=False, skip_tiles=False, **kw)
    )
    spacing = Geometry.of(padded_ct).spacing[::-1]
    lungs = lung_mask(padded_ct).mask > 0
    near = near_mask(lungs, spacing, margin / 2)
    assert (
        full.mask[near].any() and not full.mask[near].all()
    )  # the CT shapes the mask near the lungs
    for skip in (False, True):
        before = pointwise.predictor.tiles_run
        grid = predict_case(
            pointwise,
            padded_ct,
            PredictSettings(crop_after_resampling=True, skip_tiles=skip, **kw),
        )
        rep = grid.report
        assert (
            rep["crop_after_resampling"]
            and rep["sliding_window"][0]["tiles_run"] == pointwise.predictor.tiles_run - before
        )
        assert rep["sliding_window"][0]["tiles_run"] < full.report["sliding_window"][0]["tiles"]
        diff = np.abs(grid.probability[near] - full.probability[near])
        assert diff.max() < 2e-3, (skip, diff.max())
        far = ~near_mask(lungs, spacing, margin + 2 * max(pointwise.patch_size_mm))
        assert far.any() and grid.probability[far].max() < 1e-6
    box = predict_case(
        pointwise,
        padded_ct,
        PredictSettings(
            crop_after_resampling=False, per_lung=False, skip_tiles=False, align_grid=False, **kw
        ),
    )
    shifted = np.abs(box.probability[near] - full.probability[near]).max()
    assert shifted > 1e-2
    # the default grows the box onto the whole CT's sample positions: nearer nnU-Net's grid
    aligned = predict_case(
        pointwise, padded_ct, PredictSettings(per_lung=False, skip_tiles=False, **kw)
    )
    assert aligned.report["align_grid"]
    assert np.abs(aligned.probability[near] - full.probability[near]).max() < 0.75 * shifted
