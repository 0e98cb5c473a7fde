"""``components.label_components``: cc3d's labelling, checked against scipy's, on the thin arrays where
cc3d 4.1 alone raises."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nnunet_teacher_student.core.components import label_components

STRUCTURES = {
    6: ndimage.generate_binary_structure(3, 1),
    18: ndimage.generate_binary_structure(3, 2),
    26: ndimage.generate_binary_structure(3, 3),
}


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two labellings describe the same components (labels may be numbered differently)."""
    pairs = {(int(x), int(y)) for x, y in zip(a.ravel(), b.ravel())}
    return len(pairs) == len({x for x, _ in pairs}) == len({y for _, y in pairs})


def test_thin_boolean_array_that_cc3d_alone_rejects():
    mask = np.array([[[1, 0, 1]]], bool)
    labels, n = label_components(mask)
    assert n == 2 and labels.tolist() == [[[1, 0, 2]]]


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_agrees_with_scipy_on_random_masks(connectivity):
    rng = np.random.default_rng(connectivity)
    for _ in range(300):
        shape = tuple(int(s) for s in rng.integers(1, 7, 3))
        mask = rng.random(shape) < rng.uniform(0.1, 0.9)
        labels, n = label_components(mask, connectivity)
        ref, n_ref = ndimage.label(mask, structure=STRUCTURES[connectivity])
        assert n == n_ref and _same_partition(labels, ref), (shape, connectivity)
        assert (labels > 0).tolist() == mask.tolist()
