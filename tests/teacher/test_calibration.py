"""The teacher's unsure band: binning against the truth and the band around 0.5 that it implies."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.teacher.calibration import (
    band_from_counts,
    check_band,
    reliability_counts,
)


def _counts(wrong_share: dict[int, float], n_bins: int = 10, n: int = 100) -> np.ndarray:
    """Bins of ``n`` voxels; bin i (below 0.5: tumour is wrong, above: background is wrong) has the share given."""
    counts = np.zeros((n_bins, 2), int)
    for i in range(n_bins):
        w = int(round(n * wrong_share.get(i, 0.0)))
        counts[i] = (w, n - w) if i >= n_bins // 2 else (n - w, w)
    return counts


def test_band_spans_the_unsure_bins_next_to_one_half():
    # bins 3, 4 (0.3-0.5) and 5 (0.5-0.6) are wrong 40 % of the time; bin 1 too, but a sure bin 2 lies between
    assert band_from_counts(_counts({1: 0.4, 3: 0.4, 4: 0.45, 5: 0.3}), 0.2) == (0.3, 0.6)


def test_a_teacher_right_everywhere_has_an_empty_band_and_empty_bins_are_unsure():
    assert band_from_counts(_counts({}), 0.2) == (0.5, 0.5)
    counts = _counts({})
    counts[4] = counts[5] = counts[6] = 0  # nothing shows the teacher is right at 0.4-0.7
    assert band_from_counts(counts, 0.2) == (0.4, 0.7)


def test_the_error_threshold_decides_what_is_unsure():
    counts = _counts({4: 0.15, 5: 0.25})
    assert band_from_counts(counts, 0.2) == (0.5, 0.6)
    assert band_from_counts(counts, 0.1) == (0.4, 0.6)
    assert band_from_counts(counts, 0.3) == (0.5, 0.5)


def test_reliability_counts_bin_the_region_only():
    p = np.array([[[0.02, 0.31, 0.99, 1.0, 0.5]]])
    truth = np.array([[[0, 1, 1, 0, 0]]])
    region = np.array([[[1, 1, 1, 1, 0]]])
    counts = reliability_counts(p, truth, region, n_bins=10)
    assert counts.sum() == 4
    assert (
        counts[0].tolist() == [1, 0]
        and counts[3].tolist() == [0, 1]
        and counts[9].tolist() == [1, 1]
    )


def test_band_limits_are_checked():
    assert check_band(0.2, 0.8) == (0.2, 0.8)
    with pytest.raises(InputError, match="0 <= LO <= 0.5 <= HI <= 1"):
        check_band(0.6, 0.8)
