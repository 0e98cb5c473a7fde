"""Crop CTs to the lungs (their bounding box, or each lung separately as the paper did) and map
crops back exactly.

A :class:`CropBox` is a voxel box ``[start, stop)`` in ``[z, y, x]`` of an image of ``shape``; stored
as JSON (``to_dict``/``from_dict``) beside a cropped case, it lets a prediction on the crop be pasted
back onto the original grid (``paste_array``/``paste_image``) voxel for voxel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from ..core.components import label_components
from ..core.errors import InputError
from ..core.geometry import Geometry

LUNG_BOX_NAMES = {1: "right", 2: "left"}


def _triple(values: Sequence, what: str) -> tuple[int, int, int]:
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError) as e:
        raise InputError(f"crop box {what} must be 3 integers, got {values!r}") from e
    if len(out) != 3:
        raise InputError(f"crop box {what} must be 3 integers (z, y, x), got {values!r}")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class CropBox:
    """Voxel box ``start <= index < stop`` (z, y, x) inside an image of array shape ``shape``."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    shape: tuple[int, int, int]
    name: str = "lungs"

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _triple(self.start, "start"))
        object.__setattr__(self, "stop", _triple(self.stop, "stop"))
        object.__setattr__(self, "shape", _triple(self.shape, "shape"))
        for a, b, n in zip(self.start, self.stop, self.shape):
            if not 0 <= a < b <= n:
                raise InputError(
                    f"crop box {self.start}..{self.stop} is empty or outside shape {self.shape}"
                )

    @property
    def size(self) -> tuple[int, int, int]:
        """Array shape of the crop (z, y, x)."""
        return tuple(b - a for a, b in zip(self.start, self.stop))  # type: ignore[return-value]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))  # type: ignore[return-value]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "start": list(self.start),
            "stop": list(self.stop),
            "shape": list(self.shape),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CropBox":
        try:
            return cls(d["start"], d["stop"], d["shape"], str(d.get("name") or "lungs"))
        except (KeyError, TypeError) as e:
            raise InputError(f"crop box is incomplete or malformed ({e!r}): {d!r}") from e

    def _check_full(self, shape: tuple[int, ...], what: str) -> None:
        if tuple(shape[-3:]) != self.shape:
            raise InputError(
                f"{what}: array shape {tuple(shape)} does not end in the crop box's image shape "
                f"{self.shape}"
            )

    def crop_array(self, array: np.ndarray) -> np.ndarray:
        """A copy of the box's voxels of ``array`` (``[..., z, y, x]``; leading axes such as channels kept)."""
        self._check_full(array.shape, "crop_array")
        return array[(Ellipsis, *self.slices)].copy()

    def paste_array(self, cropped: np.ndarray, fill: float = 0) -> np.ndarray:
        """Exact inverse of :meth:`crop_array`: the crop placed in a full-shape array of ``fill``."""
        if tuple(cropped.shape[-3:]) != self.size:
            raise InputError(
                f"paste_array: array shape {cropped.shape} does not end in the crop size {self.size}"
            )
        out = np.full(cropped.shape[:-3] + self.shape, fill, dtype=cropped.dtype)
        out[(Ellipsis, *self.slices)] = cropped
        return out

    def geometry(self, full: Geometry) -> Geometry:
        """Geometry of the crop of an image on ``full``: same spacing/direction, origin moved to ``start``."""
        if full.array_shape != self.shape:
            raise InputError(
                f"crop box is for an image of shape {self.shape}, not {full.array_shape}"
            )
        index_xyz = np.array(self.start[::-1], float)
        direction = np.array(full.direction).reshape(3, 3)
        origin = np.array(full.origin) + direction @ (index_xyz * np.array(full.spacing))
        return Geometry(
            self.size[::-1], full.spacing, tuple(float(v) for v in origin), full.direction
        )


def box_around(
    mask: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float = 10.0, name: str = "lungs"
) -> CropBox:
    """Bounding box of ``mask`` grown by ``margin_mm`` (rounded up to whole voxels per axis), clipped."""
    if margin_mm < 0:
        raise InputError(f"crop margin must be >= 0 mm, got {margin_mm}")
    coords = np.nonzero(mask)
    if not coords[0].size:
        raise InputError(f"cannot crop to {name}: the mask is empty")
    margin = [math.ceil(margin_mm / float(s) - 1e-9) for s in spacing_zyx]
    start = [max(0, int(c.min()) - m) for c, m in zip(coords, margin)]
    stop = [min(n, int(c.max()) + 1 + m) for c, n, m in zip(coords, mask.shape, margin)]
    return CropBox(tuple(start), tuple(stop), tuple(mask.shape), name)  # type: ignore[arg-type]


def lung_crop_boxes(
    lung_labels_or_mask: np.ndarray,
    spacing_zyx: Sequence[float],
    margin_mm: float = 10.0,
    per_lung: bool = False,
) -> list[CropBox]:
    """Crop boxes around the lungs: one around both, or (``per_lung``) one per lung, right first.

    Labels 1/2 (right/left, as :func:`lungs.lung_mask` gives) name the per-lung boxes; a binary mask is
    split into its (at most two) largest connected components, ordered along x.
    """
    arr = np.asarray(lung_labels_or_mask)
    if arr.ndim != 3:
        raise InputError(f"lung mask must be 3-D [z, y, x], got shape {arr.shape}")
    if len(spacing_zyx) != 3:
        raise InputError(f"spacing must have 3 values (z, y, x), got {spacing_zyx!r}")
    if not per_lung:
        return [box_around(arr > 0, spacing_zyx, margin_mm, "lungs")]
    values = [int(v) for v in np.unique(arr) if v != 0]
    if len(values) > 1:
        return [
            box_around(arr == v, spacing_zyx, margin_mm, LUNG_BOX_NAMES.get(v, f"label{v}"))
            for v in values
        ]
    comps, n = label_components(arr)
    if n == 0:
        raise InputError("cannot crop to the lungs: the lung mask is empty")
    sizes = np.bincount(comps.ravel())[1:]
    keep = [i + 1 for i in np.argsort(sizes)[::-1][:2]]
    keep.sort(key=lambda i: np.nonzero(comps == i)[2].mean())
    return [
        box_around(comps == i, spacing_zyx, margin_mm, f"lung{k}")
        for k, i in enumerate(keep, start=1)
    ]


def crop_image(image: sitk.Image, box: CropBox) -> sitk.Image:
    """The box's region of ``image``, at its physical position (origin moved, spacing/direction kept)."""
    size = tuple(int(s) for s in image.GetSize())
    if size[::-1] != box.shape:
        raise InputError(
            f"crop box is for an image of shape {box.shape} (z, y, x), image has {size[::-1]}"
        )
    return sitk.RegionOfInterest(
        image, [int(s) for s in box.size[::-1]], [int(i) for i in box.start[::-1]]
    )


def paste_image(
    cropped: sitk.Image, box: CropBox, reference: sitk.Image | Geometry, fill: float = 0
) -> sitk.Image:
    """Put ``cropped`` (e.g. a prediction on a crop) back onto the original grid ``reference``; voxels
    outside the box get ``fill``. Exact inverse of :func:`crop_image`."""
    full = reference if isinstance(reference, Geometry) else Geometry.of(reference)
    expected = box.geometry(full)
    expected.require_match(Geometry.of(cropped), f"crop box {box.name}")
    array = sitk.GetArrayFromImage(cropped)
    vector = cropped.GetNumberOfComponentsPerPixel() > 1
    if vector:  # sitk gives [z, y, x, c]; paste on the spatial axes
        pasted = np.moveaxis(box.paste_array(np.moveaxis(array, -1, 0), fill), 0, -1)
    else:
        pasted = box.paste_array(array, fill)
    out = sitk.GetImageFromArray(pasted, isVector=vector)
    return full.apply_to(out)
