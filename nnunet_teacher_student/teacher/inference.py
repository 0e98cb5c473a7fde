"""Box-region inference with a trained teacher.

Only the neighbourhood of the boxes is predicted (each group of boxes = one region, grown by half
the network patch so the sliding window has its context); the result is pasted into a full-size
mask on the CT's own grid and constrained to the boxed slices and the box area, dilated in-plane
by ``box_margin_mm`` against annotator jitter. Slices without a box stay empty.

The point teacher (CT only) gets a region of one patch centred on each box group's centre and no
box constraint: it never sees the box extent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..core.defaults import BOX_MARGIN_MM
from ..core.components import label_components
from ..core.geometry import Geometry, array_to_image, spacing_zyx
from ..lungs.cropping import CropBox
from ..formats.box_channel import stack_channels
from ..formats.boxes import BoxSet
from ..prediction.region import RegionPredictor, grow_box, merge_overlapping

TeacherMode = Literal["box", "point"]


@dataclass
class TeacherPrediction:
    mask: np.ndarray  # uint8 [z, y, x], constrained
    probability: np.ndarray  # float32 [z, y, x], tumour probability (0 outside regions)
    box_mask: np.ndarray  # uint8 [z, y, x]
    regions: list[CropBox]

    def mask_image(self, geometry: Geometry) -> sitk.Image:
        return array_to_image(self.mask, geometry)


def teacher_mode(model_folder: str | Path) -> TeacherMode:
    """``point`` for a point-teacher model folder (by its trainer name), else ``box``."""
    trainer = Path(model_folder).resolve().name.split("__")[0]
    return "point" if "PointTeacher" in trainer else "box"


def box_groups(box_mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Groups of boxes: 26-connected components of the box mask (a lesion's boxes on adjacent slices)."""
    return label_components(box_mask)


def teacher_regions(
    box_mask: np.ndarray, spacing_zyx, patch_mm, mode: TeacherMode
) -> list[CropBox]:
    """Regions to predict: per box group, its bounding box grown by half a patch (box mode), or one
    patch centred on the group's centre (point mode); overlapping regions are merged."""
    labels, n = box_groups(box_mask)
    spacing = np.asarray(spacing_zyx, float)
    half_patch_vox = [int(math.ceil(p / 2 / s)) for p, s in zip(patch_mm, spacing)]
    regions = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        start = [s.start for s in sl]
        stop = [s.stop for s in sl]
        if mode == "point":
            centre = [(a + b - 1) / 2 for a, b in zip(start, stop)]
            start = [int(round(c)) for c in centre]
            stop = [c + 1 for c in start]
        regions.append(grow_box(start, stop, box_mask.shape, half_patch_vox, f"group{i}"))
    return merge_overlapping(regions)


def dilate_in_plane(mask: np.ndarray, spacing_zyx, margin_mm: float) -> np.ndarray:
    """Grow a box mask within each axial slice by ``margin_mm`` (no growth across slices)."""
    if margin_mm <= 0:
        return mask > 0
    ry, rx = (int(math.ceil(margin_mm / s - 1e-9)) for s in spacing_zyx[1:])
    structure = np.ones((1, 2 * ry + 1, 2 * rx + 1), bool)
    return ndimage.binary_dilation(mask > 0, structure=structure)


def teacher_predict_case(
    predictor: RegionPredictor,
    ct: sitk.Image,
    boxset: BoxSet,
    mode: TeacherMode | None = None,
    box_margin_mm: float = BOX_MARGIN_MM,
    full_volume: bool = False,
) -> TeacherPrediction:
    """Teacher prediction for one CT and its boxes, on the CT's grid.

    ``full_volume=True`` runs nnU-Net on the whole CT instead of the regions (for comparison); the
    same constraint is applied afterwards.
    """
    mode = mode or teacher_mode(predictor.folder)
    boxset.check_against(ct, "boxes")
    geometry = Geometry.of(ct)
    spacing = spacing_zyx(geometry)
    bmask = boxset.mask()
    data = stack_channels(
        sitk.GetArrayFromImage(ct), bmask if predictor.num_input_channels == 2 else None
    )
    if not bmask.any():
        empty = np.zeros(bmask.shape, np.uint8)
        return TeacherPrediction(empty, empty.astype(np.float32), bmask, [])
    if full_volume:
        regions = [CropBox((0, 0, 0), bmask.shape, bmask.shape, "full")]
    else:
        regions = teacher_regions(bmask, spacing, predictor.patch_size_mm, mode)
    result = predictor.predict_regions(data, spacing, regions)
    allowed = allowed_region(bmask, spacing, predictor.patch_size_mm, mode, box_margin_mm)
    mask = (
        result.segmentation == predictor.tumour()[0]
    ) & allowed  # the tumour, never a DO model's box
    return TeacherPrediction(mask.astype(np.uint8), result.probability, bmask, result.regions)


def allowed_region(
    bmask: np.ndarray, spacing_zyx, patch_mm, mode: TeacherMode, box_margin_mm: float
) -> np.ndarray:
    """Where a teacher's mask may be: the boxes dilated in-plane by ``box_margin_mm`` (box mode), or the
    point teacher's regions (it never sees the box extent)."""
    if mode == "box":
        return dilate_in_plane(bmask, spacing_zyx, box_margin_mm)
    inside = np.zeros(bmask.shape, bool)
    for r in teacher_regions(bmask, spacing_zyx, patch_mm, "point"):
        inside[r.slices] = True
    return inside
