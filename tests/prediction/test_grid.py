"""Grid-aligned boxes (:mod:`nnunet_teacher_student.prediction.grid`) against nnU-Net's own resampling."""

from __future__ import annotations

import numpy as np
from nnunetv2.preprocessing.resampling.default_resampling import (
    compute_new_shape,
    resample_data_or_seg_to_shape,
)
from scipy import ndimage

from nnunet_teacher_student.lungs.cropping import CropBox
from nnunet_teacher_student.prediction.grid import align_axis, align_box, resampled_length

SPACING = (5.0, 0.65, 0.65)  # z, y, x: a thick-slice chest CT
TARGET = (1.35, 0.85, 0.85)  # the demo model's spacing
SHAPE = (24, 96, 96)


def _resample(arr: np.ndarray) -> np.ndarray:
    """nnU-Net's resampling of a CT crop to TARGET (its defaults for data: cubic in-plane, z separately, nearest)."""
    new = compute_new_shape(arr.shape, SPACING, TARGET)
    return resample_data_or_seg_to_shape(
        arr[None].astype(np.float32), new, SPACING, TARGET, False, 3, 0, None
    )[0]


def test_resampled_length_is_nnunets():
    for n in (1, 7, 30, 95, 96, 512):
        for spacing, target in zip(SPACING, TARGET):
            assert (
                resampled_length(n, spacing / target)
                == compute_new_shape([n], [spacing], [target])[0]
            )


def test_aligned_ends_sit_on_the_whole_axis_output_borders():
    n, f = 96, 0.65 / 0.85
    total = resampled_length(n, f)
    a, b, err = align_axis(30, 61, n, f)
    assert a <= 30 and b >= 61 and 30 - a <= 8 and b - 61 <= 8
    s = n / total
    ka, kb = round(a / s), round(b / s)
    assert abs(a - ka * s) <= err + 1e-9 and abs(b - kb * s) <= err + 1e-9 and err < 0.1
    assert (
        resampled_length(b - a, f) == kb - ka
    )  # the box's own resampling spans those output voxels
    assert align_axis(0, n, n, f) == (0, n, 0.0)  # the whole axis is its own grid


def test_an_aligned_box_resamples_like_the_whole_ct():
    """Inside the box (away from its edges, where the spline's boundary handling differs), nnU-Net's resampling of
    the aligned box equals its resampling of the whole CT; the box as cut does not."""
    rng = np.random.default_rng(0)
    ct = ndimage.gaussian_filter(rng.normal(0, 300, SHAPE), (0.5, 2, 2)).astype(np.float32)
    whole = _resample(ct)
    factors = [s / t for s, t in zip(SPACING, TARGET)]
    box = CropBox((3, 21, 25), (20, 70, 77), SHAPE)
    aligned, errors = align_box(box, factors)
    assert max(errors) < 0.1

    def error(b: CropBox) -> float:
        part = _resample(ct[b.slices])
        s = [n / m for n, m in zip(SHAPE, whole.shape)]
        start = [int(round(a / si)) for a, si in zip(b.start, s)]
        region = whole[tuple(slice(a, a + m) for a, m in zip(start, part.shape))]
        inner = tuple(slice(4, -4) for _ in range(3))  # away from the crop's edges
        return float(np.abs(part[inner] - region[inner]).max() / np.abs(whole).max())

    assert error(aligned) < 0.05 and error(box) > 10 * error(aligned)
