"""Per-case metrics: hand-computed cases, empty-mask rules, and cross-checks of the cc3d/MONAI-based
code against independent brute-force implementations (scipy.ndimage.label, all-pairs distances)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from nnunet_teacher_student.evaluation.metrics import binarize, case_metrics, dice, match_lesions

SHAPE = (24, 24, 24)


def cube(z0, z1, y0=4, y1=14, x0=4, x1=14, shape=SHAPE) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[z0:z1, y0:y1, x0:x1] = True
    return m


# ---------------------------------------------------------------- hand-computed cases


def test_two_overlapping_cubes_dsc_and_detection():
    gt = cube(4, 14)  # 10x10x10 = 1000 voxels
    pred = cube(8, 18)  # shifted by 4 slices: 600 voxels overlap
    m = case_metrics(pred, gt, (1, 1, 1))
    assert m["dsc"] == pytest.approx(2 * 600 / 2000)
    assert (m["tp"], m["fn"], m["fp"], m["tp_pred"]) == (1, 0, 0, 1)
    assert m["recall"] == m["precision"] == m["f1"] == 1.0
    assert m["dsc_tp"] == pytest.approx(0.6)
    assert m["gt_volume_ml"] == pytest.approx(1.0) and m["pred_volume_ml"] == pytest.approx(1.0)


@pytest.mark.parametrize("slices, detected", [(2, False), (3, True)])
def test_lesion_detected_at_30_not_at_20_percent(slices, detected):
    gt = cube(4, 14)  # 10 slices
    pred = cube(4, 4 + slices)  # covers 20 % or 30 % of the lesion, all of it inside GT
    m = case_metrics(pred, gt, (1, 1, 1))
    assert m["tp"] == int(detected) and m["fn"] == int(not detected)
    assert m["recall"] == float(detected)
    # the predicted component lies wholly inside the GT: it is matched (not an FP) either way
    assert (m["fp"], m["tp_pred"], m["precision"]) == (0, 1, 1.0)
    assert m["f1"] == (1.0 if detected else 0.0)
    assert m["gt_lesions"][0]["overlap_fraction"] == pytest.approx(slices / 10)
    if detected:
        assert m["dsc_tp"] == pytest.approx(2 * 300 / 1300)
    else:
        assert math.isnan(m["dsc_tp"])


def test_exactly_25_percent_counts_as_detected():
    gt = cube(0, 4, 0, 4, 0, 4)  # 64 voxels
    pred = cube(0, 1, 0, 4, 0, 4)  # 16 voxels = 25 %
    assert match_lesions(pred, gt).tp == 1


def test_false_positive_component_and_dsc_tp():
    gt = cube(2, 7, 2, 7, 2, 7) | cube(2, 7, 15, 20, 15, 20)  # two 125-voxel lesions
    pred = cube(2, 7, 2, 7, 3, 8)  # lesion 1: 100 of 125 voxels, 80 %
    pred |= cube(15, 18, 15, 18, 2, 5)  # 27 voxels far from any lesion: FP
    m = case_metrics(pred, gt, (1, 1, 1))
    assert (m["n_gt_lesions"], m["n_pred_components"]) == (2, 2)
    assert (m["tp"], m["fn"], m["fp"], m["tp_pred"]) == (1, 1, 1, 1)
    assert m["recall"] == 0.5 and m["precision"] == 0.5 and m["f1"] == 0.5
    assert m["dsc"] == pytest.approx(2 * 100 / (250 + 152))
    # DSC-TP ignores the missed lesion and the FP: lesion 1 vs its predicted component
    assert m["dsc_tp"] == pytest.approx(2 * 100 / 250)
    fp = [c for c in m["pred_components"] if not c["positive"]]
    assert fp[0]["voxels"] == 27 and fp[0]["overlap_fraction"] == 0.0


def test_leaking_component_is_fp_but_counts_in_dsc_tp():
    gt = cube(10, 12, 10, 12, 10, 12)  # 8 voxels
    pred = cube(6, 16, 6, 16, 6, 16)  # 1000 voxels covering the lesion: 0.8 % inside GT
    m = case_metrics(pred, gt, (1, 1, 1))
    assert (m["tp"], m["fp"], m["recall"], m["precision"], m["f1"]) == (1, 1, 1.0, 0.0, 0.0)
    assert m["dsc_tp"] == pytest.approx(2 * 8 / 1008) == pytest.approx(m["dsc"])


def test_26_connectivity_joins_corner_neighbours():
    gt = np.zeros(SHAPE, bool)
    gt[5, 5, 5] = gt[6, 6, 6] = True  # touch at a corner only: one lesion
    gt[10, 10, 10] = True  # separate lesion
    assert match_lesions(np.zeros_like(gt), gt).fn == 2


def test_empty_rules():
    empty = np.zeros(SHAPE, bool)
    lesion = cube(4, 8)
    both = case_metrics(empty, empty, (1, 1, 1))
    assert (both["dsc"], both["nsd"], both["hd95_mm"]) == (1.0, 1.0, 0.0)
    assert all(math.isnan(both[k]) for k in ("recall", "precision", "f1", "dsc_tp"))
    gt_empty = case_metrics(lesion, empty, (1, 1, 1))
    assert (
        gt_empty["dsc"],
        gt_empty["nsd"],
        gt_empty["precision"],
        gt_empty["f1"],
        gt_empty["fp"],
    ) == (0, 0, 0, 0, 1)
    assert all(math.isnan(gt_empty[k]) for k in ("recall", "hd95_mm", "dsc_tp"))
    pred_empty = case_metrics(empty, lesion, (1, 1, 1))
    assert (
        pred_empty["dsc"],
        pred_empty["nsd"],
        pred_empty["recall"],
        pred_empty["f1"],
        pred_empty["fn"],
    ) == (0, 0, 0, 0, 1)
    assert all(math.isnan(pred_empty[k]) for k in ("precision", "hd95_mm", "dsc_tp"))


def test_label_selection():
    lab = np.zeros(SHAPE, np.uint8)
    lab[2:6, 2:6, 2:6] = 1
    lab[10:14, 10:14, 10:14] = 2
    assert binarize(lab).sum() == 128 and binarize(lab, 2).sum() == 64
    gt = (lab == 2).astype(np.uint8)
    m = case_metrics(lab, gt, (1, 1, 1), label=2, gt_label=1)
    assert m["dsc"] == 1.0 and m["n_pred_components"] == 1
    assert case_metrics(lab, gt, (1, 1, 1))["fp"] == 1  # default: any label > 0 is tumour


def test_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        case_metrics(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        case_metrics(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), (1, 0, 1))


# ---------------------------------------------------------------- surface metrics


def test_hd95_and_nsd_single_voxels_anisotropic():
    gt = np.zeros((8, 8, 8), bool)
    pred = np.zeros_like(gt)
    gt[3, 3, 3] = True
    pred[4, 3, 3] = True  # one slice away: 3 mm at z-spacing 3
    m = case_metrics(pred, gt, (3.0, 0.7, 0.7))
    assert m["hd95_mm"] == pytest.approx(3.0)
    assert m["nsd"] == 0.0  # 3 mm > 2 mm tolerance
    assert case_metrics(pred, gt, (3.0, 0.7, 0.7), nsd_tolerance_mm=3.5)["nsd"] == 1.0
    pred2 = np.zeros_like(gt)
    pred2[3, 3, 5] = True  # two columns away in x: 1.4 mm
    m2 = case_metrics(pred2, gt, (3.0, 0.7, 0.7))
    assert m2["hd95_mm"] == pytest.approx(1.4) and m2["nsd"] == 1.0
    pred3 = np.zeros_like(gt)
    pred3[4, 4, 3] = True  # diagonal: sqrt(3^2 + 0.7^2)
    assert case_metrics(pred3, gt, (3.0, 0.7, 0.7))["hd95_mm"] == pytest.approx(
        math.hypot(3.0, 0.7), rel=1e-5
    )


def test_identical_masks_have_zero_hd_and_full_nsd():
    gt = cube(4, 9)
    m = case_metrics(gt.copy(), gt, (2.5, 0.8, 0.8))
    assert (m["dsc"], m["hd95_mm"], m["nsd"]) == (1.0, 0.0, 1.0)


# ---------------------------------------------------------------- independent references


def ref_edges(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask with a face neighbour outside it (image border counts as outside)."""
    padded = np.pad(mask, 1)
    inner = np.ones_like(mask)
    for axis in range(3):
        for shift in (-1, 1):
            inner &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return mask & ~inner


def ref_surface(pred, gt, spacing, tol=2.0):
    """All-pairs distances between edge voxels (mm): HD95 as max of the directed 95th percentiles,
    NSD as the fraction of edge voxels within ``tol`` of the other edge."""
    a = np.argwhere(ref_edges(pred)) * np.asarray(spacing)
    b = np.argwhere(ref_edges(gt)) * np.asarray(spacing)
    d = cdist(a, b)
    d_ab, d_ba = d.min(axis=1), d.min(axis=0)
    hd95 = max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))
    nsd = ((d_ab <= tol).sum() + (d_ba <= tol).sum()) / (len(d_ab) + len(d_ba))
    return hd95, nsd


def ref_detection(pred, gt, thr=0.25):
    """Lesion counts and DSC-TP with scipy.ndimage.label (26-connectivity) instead of cc3d."""
    s = np.ones((3, 3, 3))
    gl, ng = ndimage.label(gt, structure=s)
    pl, npred = ndimage.label(pred, structure=s)
    detected = [i for i in range(1, ng + 1) if pred[gl == i].mean() >= thr]
    tp_pred = sum((gt[pl == i].mean() >= thr) for i in range(1, npred + 1))
    gt_tp = np.isin(gl, detected)
    touching = [j for j in range(1, npred + 1) if (gt_tp[pl == j]).any()]
    pred_tp = np.isin(pl, touching)
    dsc_tp = 2 * (gt_tp & pred_tp).sum() / (gt_tp.sum() + pred_tp.sum()) if detected else math.nan
    return (ng, npred, len(detected), tp_pred), dsc_tp


def blobs(rng: np.random.Generator, shape=(14, 20, 20), n=4) -> np.ndarray:
    """A few random ellipsoids plus speckle: several components of varied shapes."""
    zz, yy, xx = np.indices(shape)
    m = np.zeros(shape, bool)
    for _ in range(n):
        c = rng.uniform(0, shape)
        r = rng.uniform(1.0, 4.5, size=3)
        m |= ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 <= 1
    m |= rng.random(shape) < 0.0005
    return m


@pytest.mark.parametrize("seed", range(6))
def test_cross_check_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    gt = blobs(rng)
    pred = gt.copy() if seed == 0 else blobs(rng)
    if (
        seed >= 3
    ):  # a shifted copy of the GT plus speckle: partial overlaps around the 25 % threshold
        pred = np.roll(gt, (seed - 2, 1, 2 * seed - 5), axis=(0, 1, 2)) | (
            rng.random(gt.shape) < 0.001
        )
    assert pred.any() and gt.any()  # fixed seeds: every draw has lesions on both sides
    spacing = (2.5, 0.9, 0.7)
    m = case_metrics(pred, gt, spacing)
    hd95, nsd = ref_surface(pred, gt, spacing)
    assert m["hd95_mm"] == pytest.approx(hd95, rel=1e-4, abs=1e-4)
    assert m["nsd"] == pytest.approx(nsd, rel=1e-5)
    counts, dsc_tp = ref_detection(pred, gt)
    assert (m["n_gt_lesions"], m["n_pred_components"], m["tp"], m["tp_pred"]) == counts
    assert m["dsc_tp"] == pytest.approx(dsc_tp, nan_ok=True)
    assert m["dsc"] == pytest.approx(2 * (pred & gt).sum() / (pred.sum() + gt.sum()))


def test_cropping_and_image_border_do_not_change_metrics():
    rng = np.random.default_rng(7)
    gt, pred = blobs(rng), blobs(rng)
    gt[0, 5:9, 5:9] = pred[-1, 3:8, 3:8] = True  # touch the image border
    spacing = (1.5, 0.8, 0.8)
    a = case_metrics(pred, gt, spacing)
    b = case_metrics(np.pad(pred, 3), np.pad(gt, 3), spacing)
    for key in ("dsc", "dsc_tp", "f1", "recall", "precision", "hd95_mm", "nsd", "tp", "fp", "fn"):
        assert a[key] == pytest.approx(b[key], nan_ok=True), key


def test_dice_helper():
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    assert dice(np.array([1, 1, 0], bool), np.array([0, 1, 1], bool)) == 0.5
