"""Put a label image onto its CT's voxels: same grid, or the same grid stored in another axis order.

A mask written with a flipped or permuted direction matrix describes the same voxels when every
CT voxel centre falls exactly on a mask voxel centre; it is then resampled (nearest neighbour,
which is exact in that case) onto the CT grid. Any other geometry is an error: a mask is never
interpolated onto a different grid silently.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.geometry import Geometry


def _index_to_physical(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.asarray(image.GetDirection(), float).reshape(3, 3) @ np.diag(image.GetSpacing())
    return matrix, np.asarray(image.GetOrigin(), float)


def is_reoriented_grid(mask: sitk.Image, ct: sitk.Image, tol: float = 1e-3) -> bool:
    """True when ``mask``'s voxel centres are ``ct``'s, up to an axis permutation/flip of the indices."""
    mm, mo = _index_to_physical(mask)
    cm, co = _index_to_physical(ct)
    step = np.linalg.solve(mm, cm)  # mask-index change per CT-index step, per axis
    offset = np.linalg.solve(mm, co - mo)  # mask index of CT voxel (0, 0, 0)
    rounded = np.rint(step)
    if not np.allclose(step, rounded, atol=tol) or not np.allclose(
        offset, np.rint(offset), atol=tol
    ):
        return False
    if not (np.abs(rounded).sum(axis=0) == 1).all() or not (np.abs(rounded).sum(axis=1) == 1).all():
        return False  # not a signed permutation: another spacing or an oblique grid
    size = np.asarray(ct.GetSize())
    corners = np.array(
        [[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)]
    )
    mapped = np.rint(corners @ rounded.T + offset)
    return bool(
        (mapped >= 0).all()
        and (mapped < np.asarray(mask.GetSize())).all()
        and sorted(mask.GetSize()) == sorted(ct.GetSize())
    )


def mask_on_ct(mask: sitk.Image, ct: sitk.Image, what: str) -> np.ndarray:
    """``mask`` as a ``[z, y, x]`` array on ``ct``'s grid; raise :class:`InputError` if it is another grid."""
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{what}: expected a 3-D single-channel mask")
    if Geometry.of(mask).matches(Geometry.of(ct)):
        return sitk.GetArrayFromImage(mask)
    if not is_reoriented_grid(mask, ct):
        raise InputError(
            f"{what}: geometry differs from the CT's (mask {Geometry.of(mask).to_dict()}, "
            f"CT {Geometry.of(ct).to_dict()}); resample it onto the CT first"
        )
    out = sitk.Resample(mask, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
    arr = sitk.GetArrayFromImage(out)
    if np.count_nonzero(arr) != np.count_nonzero(sitk.GetArrayViewFromImage(mask)):
        raise InputError(f"{what}: reorienting the mask onto the CT lost voxels")
    return arr


def binary_mask(arr: np.ndarray, what: str, any_nonzero: bool | None = None) -> np.ndarray:
    """A 0/1 uint8 mask; other values are an error unless ``any_nonzero`` (then every non-zero is tumour).

    ``any_nonzero=None`` means the caller offers no such option (the error message does not suggest it).
    """
    values = np.unique(arr)
    if not any_nonzero and not np.isin(values, (0, 1)).all():
        hint = (
            " (use --any-nonzero to take every non-zero voxel as tumour)"
            if any_nonzero is False
            else ""
        )
        raise InputError(
            f"{what}: mask values {values[:10].tolist()}, expected 0 (background) and 1 (tumour){hint}"
        )
    return (arr != 0).astype(np.uint8)
