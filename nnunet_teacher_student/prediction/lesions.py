"""The lesions of a tumour mask: which lie near the lungs (the rest is dropped), and their description."""

from __future__ import annotations

import math
from typing import Any, Sequence

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..core.components import label_components


# --------------------------------------------------------------------------- lesions
def near_mask(mask: np.ndarray, spacing_zyx: Sequence[float], distance_mm: float) -> np.ndarray:
    """Voxels within ``distance_mm`` (Euclidean, physical) of ``mask``: the mask dilated in mm.

    The distance transform runs only on the mask's bounding box grown by the distance, which holds
    every voxel that can be that close."""
    out = np.zeros(mask.shape, bool)
    coords = np.nonzero(mask)
    if not coords[0].size:
        return out
    grow = [int(math.ceil(distance_mm / float(s))) + 1 for s in spacing_zyx]
    box = tuple(
        slice(max(0, int(c.min()) - g), min(n, int(c.max()) + 1 + g))
        for c, g, n in zip(coords, grow, mask.shape)
    )
    dist = ndimage.distance_transform_edt(
        ~mask[box].astype(bool), sampling=[float(s) for s in spacing_zyx]
    )
    out[box] = dist <= distance_mm
    return out


def drop_outside_lungs(
    mask: np.ndarray, lungs: np.ndarray, spacing_zyx: Sequence[float], dilation_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the lesions (26-connected components of ``mask``) with at least one voxel within
    ``dilation_mm`` of ``lungs`` (i.e. touching :func:`near_mask`); a kept lesion is kept whole.

    Decided per lesion on its bounding box grown by the distance (which holds every lung voxel that
    close): a lesion overlapping the lungs is kept at once, else a distance transform of that box
    decides. Exact, and far lighter than a distance transform of the whole lung region.

    Returns (kept mask uint8, component labels of ``mask``, ids of the dropped components)."""
    comps, n = label_components(mask)
    if n == 0:
        return np.zeros(mask.shape, np.uint8), comps, np.zeros(0, int)
    lungs = lungs > 0
    sampling = [float(s) for s in spacing_zyx]
    grow = [int(math.ceil(dilation_mm / s)) for s in sampling]
    keep = np.zeros(n + 1, bool)
    for i, sl in enumerate(ndimage.find_objects(comps), start=1):
        if sl is None:
            continue
        box = tuple(
            slice(max(0, s.start - g), min(size, s.stop + g))
            for s, g, size in zip(sl, grow, mask.shape)
        )
        lung_box = lungs[box]
        if not lung_box.any():
            continue
        lesion = comps[box] == i
        if (lesion & lung_box).any():
            keep[i] = True
            continue
        dist = ndimage.distance_transform_edt(~lung_box, sampling=sampling)
        keep[i] = bool((dist[lesion] <= dilation_mm).any())
    return keep[comps].astype(np.uint8), comps, np.flatnonzero(~keep[1:]) + 1


def describe_lesions(
    mask: np.ndarray,
    ct: sitk.Image,
    probability: np.ndarray | None = None,
    lung_labels: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One entry per 26-connected lesion of ``mask``, largest first: voxels, volume (mL), centroid
    (voxel z, y, x and physical x, y, z in mm, the CT's coordinate system), bounding box, the lung it
    lies in (majority of its voxels in ``lung_labels``: 1 right, 2 left) and probability statistics."""
    comps, n = label_components(mask)
    if n == 0:
        return []
    stats = cc3d.statistics(comps)
    counts = np.asarray(stats["voxel_counts"], np.int64)[1:]
    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
    ids = np.arange(1, n + 1)
    inside = comps > 0
    lesion_ids = comps[inside].astype(
        np.int64
    )  # statistics over lesion voxels only (few, even on big CTs)
    lung_votes = None
    if lung_labels is not None:
        votes = lesion_ids * 3 + np.clip(lung_labels[inside], 0, 2)
        lung_votes = np.bincount(votes, minlength=(n + 1) * 3).reshape(n + 1, 3)
    if probability is not None:
        values = probability[inside]
        p_max = ndimage.maximum(values, lesion_ids, ids)
        p_mean = ndimage.mean(values, lesion_ids, ids)
    lesions = []
    for rank, i in enumerate(sorted(ids, key=lambda k: -counts[k - 1]), start=1):
        centroid = [float(v) for v in stats["centroids"][i]]  # z, y, x voxel index
        point = ct.TransformContinuousIndexToPhysicalPoint(centroid[::-1])
        bb = stats["bounding_boxes"][i]
        entry: dict[str, Any] = {
            "id": rank,
            "voxels": int(counts[i - 1]),
            "volume_ml": round(counts[i - 1] * voxel_ml, 4),
            "centroid_voxel_zyx": [round(v, 2) for v in centroid],
            "centroid_mm_xyz": [round(float(v), 2) for v in point],
            "bbox_voxel_zyx": {
                "start": [int(s.start) for s in bb],
                "stop": [int(s.stop) for s in bb],
            },
        }
        if lung_votes is not None:
            votes = lung_votes[i]
            entry["lung"] = (
                ("right", "left")[int(np.argmax(votes[1:]))] if votes[1:].any() else None
            )
        if probability is not None:
            entry["probability_max"] = round(float(p_max[i - 1]), 4)
            entry["probability_mean"] = round(float(p_mean[i - 1]), 4)
        lesions.append(entry)
    return lesions
