"""The classical lung mask (HU threshold, airway removal, right/left split) and the lung *region* cropping
uses (each lung closed by its convex hull and completed by the mirror of the other), for any lung segmentation."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core.components import label_components

RIGHT, LEFT = 1, 2
AIR_HU = -400.0  # lung parenchyma (~-850) and air (~-1000) lie below, soft tissue (> -100) above


# --------------------------------------------------------------------------- classical
# Hand-written (no maintained package offers a classical CT lung mask); the steps follow the usual
# threshold / outside-air / airway / two-largest-components recipe. Size rules are relative (to the
# body's cross-section or the largest air component), so they hold for real and shrunk phantom chests.
_INPLANE = np.zeros((3, 3, 3), bool)
_INPLANE[1] = ndimage.generate_binary_structure(2, 1)


def body_and_inside_air(hu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per axial slice, the body (everything not reached by air from the slice border) and the air
    inside it. In-plane only, so an airway that leaves the top of the volume still counts as inside."""
    air = ndimage.gaussian_filter(hu.astype(np.float32), sigma=(0, 0.7, 0.7)) < AIR_HU
    body = ndimage.binary_fill_holes(~air, structure=_INPLANE)
    return body, air & body


def body_midline_x(body: np.ndarray) -> float:
    """The x index (last axis) halfway across the body: the mean of the columns the body occupies."""
    return float(np.nonzero(body.any(axis=(0, 1)))[0].mean())


def _airway_seed(inside_air: np.ndarray, body: np.ndarray) -> tuple[int, np.ndarray] | None:
    """The trachea in the top slices (LPS: highest z is superior): the largest air component near the
    body's left-right centre whose area is 0.02-2.5 % of the body's cross-section."""
    slices = [z for z in range(inside_air.shape[0] - 1, -1, -1) if inside_air[z].any()]
    for z in slices[: max(3, len(slices) // 8)]:
        comps, n = ndimage.label(inside_air[z])
        xs = np.nonzero(body[z].any(axis=0))[0]
        centre, width, body_area = (xs[0] + xs[-1]) / 2, xs[-1] - xs[0] + 1, body[z].sum()
        areas = np.bincount(comps.ravel(), minlength=n + 1)
        centres = ndimage.center_of_mass(inside_air[z], comps, range(1, n + 1))
        best = None
        for i, (_, cx) in enumerate(centres, start=1):
            if (
                0.0002 * body_area <= areas[i] <= 0.025 * body_area
                and abs(cx - centre) <= 0.2 * width
            ):
                if best is None or areas[i] > areas[best]:
                    best = i
        if best is not None:
            return z, comps == best
    return None


def find_airways(inside_air: np.ndarray, body: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Trachea and main bronchi: follow the trachea's air down slice by slice through the components
    that overlap it, and stop on a branch where the area jumps (it has merged into a lung)."""
    seed = _airway_seed(inside_air, body)
    if seed is None:
        return None, "no trachea found in the top slices, airways not removed"
    z0, current = seed
    limit = max(2.5 * current.sum(), 4)
    airway = np.zeros(inside_air.shape, bool)
    airway[z0] = current
    last = z0
    for z in range(z0 - 1, -1, -1):
        comps, _ = ndimage.label(inside_air[z])
        touching = np.unique(comps[current & (comps > 0)])
        areas = np.bincount(comps.ravel())
        keep = [i for i in touching if areas[i] <= limit]
        if not keep:
            break
        current = np.isin(comps, keep)
        airway[z] = current
        last = z
    return airway, f"airways removed (traced from slice {z0} down to slice {last})"


def _split_joined(component: np.ndarray) -> np.ndarray | None:
    """Split lungs joined at a thin junction: erode in-plane until two large parts appear, then give
    every voxel to the nearest part. ``None`` if erosion never separates them."""
    box = ndimage.find_objects(component.astype(np.uint8))[0]
    out = np.zeros(component.shape, np.uint8)
    split = _split_in_box(component[box])
    if split is None:
        return None
    out[box] = split
    return out


def _split_in_box(component: np.ndarray) -> np.ndarray | None:
    eroded = component.copy()
    for _ in range(12):
        eroded = ndimage.binary_erosion(eroded, structure=_INPLANE)
        parts, n = label_components(eroded, 6)
        if n < 2:
            if not eroded.any():
                return None
            continue
        sizes = np.bincount(parts.ravel())[1:]
        keep = np.argsort(sizes)[::-1][:2] + 1
        if sizes[keep[1] - 1] < 0.2 * sizes[keep[0] - 1]:
            continue
        seeds = np.where(parts == keep[0], 1, np.where(parts == keep[1], 2, 0)).astype(np.uint8)
        _, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
        return np.where(component, seeds[tuple(idx)], 0)
    return None


def _z_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of ``b``'s slice range that ``a``'s slice range covers."""
    za, zb = np.nonzero(a.any(axis=(1, 2)))[0], np.nonzero(b.any(axis=(1, 2)))[0]
    inter = min(za[-1], zb[-1]) - max(za[0], zb[0]) + 1
    return max(0, inter) / (zb[-1] - zb[0] + 1)


def classical_lung_labels(
    hu: np.ndarray, body_and_air: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, str]:
    """Lungs of an LPS-oriented HU volume by thresholding: air inside the body minus the airways; the
    largest component and, if it lies beside it, the second (joined lungs are split). Labels: 1 = right
    (low x), 2 = left. ``body_and_air``: :func:`body_and_inside_air` of ``hu`` if already computed."""
    body, inside_air = body_and_air if body_and_air is not None else body_and_inside_air(hu)
    airway, airway_msg = find_airways(inside_air, body)
    lungs = inside_air
    if airway is not None:  # also drop the airway wall's partial-volume rim
        lungs = inside_air & ~ndimage.binary_dilation(airway, structure=_INPLANE)
    comps, n = label_components(lungs, 6)
    out = np.zeros(hu.shape, np.uint8)
    if n == 0:
        return out, f"{airway_msg}; no air inside the body"
    sizes = np.bincount(comps.ravel())[1:]
    order = np.argsort(sizes)[::-1] + 1
    largest = comps == order[0]
    body_centre = body_midline_x(body)
    xs = np.nonzero(largest)[2]
    note = ""
    if (
        min((xs < body_centre).mean(), (xs >= body_centre).mean()) > 0.2
    ):  # spans both halves: lungs touch
        split = _split_joined(largest)
        if split is None:
            split = np.where(
                largest, np.where(np.arange(hu.shape[2]) < body_centre, 1, 2)[None, None, :], 0
            )
            note = "; joined lungs split at the body midline"
        else:
            note = "; joined lungs separated by erosion"
        parts = [split == 1, split == 2]
    else:
        parts = [largest]
        if n > 1 and sizes[order[1] - 1] >= 0.1 * sizes[order[0] - 1]:
            second = comps == order[1]
            if (
                _z_overlap(largest, second) >= 0.5
            ):  # bowel gas lies below the lungs, not beside them
                parts.append(second)
        if len(parts) == 1:
            note = "; only one lung found"
    return order_right_left(parts, hu.shape, body_centre), f"{airway_msg}{note}"


def order_right_left(
    parts: list[np.ndarray], shape: tuple[int, ...], body_centre: float
) -> np.ndarray:
    """Label lung masks 1 (right: lower x in LPS) and 2 (left); a single lung by its side of the body."""
    parts = [p for p in parts if p.any()]
    out = np.zeros(shape, np.uint8)
    if len(parts) == 1:
        out[parts[0]] = RIGHT if np.nonzero(parts[0])[2].mean() < body_centre else LEFT
        return out
    parts.sort(key=lambda p: np.nonzero(p)[2].mean())
    for label, p in zip((RIGHT, LEFT), parts):
        out[p] = label
    return out


# --------------------------------------------------------------------------- region
def convex_hull_3d(mask: np.ndarray) -> np.ndarray:
    """Voxels whose centres lie in the 3-D convex hull of ``mask``'s voxel centres (a superset of it).

    Rasterised slice by slice: the hull's cross-section at slice z is the convex polygon through the
    points where the hull's edges cross that plane (cheaper than testing every voxel against every facet).
    """
    from scipy.spatial import ConvexHull, QhullError
    from skimage.draw import polygon
    from skimage.morphology import convex_hull_image

    out = mask.astype(bool).copy()
    surface = out & ~ndimage.binary_erosion(out)
    points = np.argwhere(surface).astype(float)
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):  # flat or tiny: per-slice hulls are all there is
        for z in np.nonzero(out.any(axis=(1, 2)))[0]:
            out[z] |= convex_hull_image(out[z])
        return out
    edges = np.unique(
        np.sort(
            np.concatenate(
                [hull.simplices[:, [0, 1]], hull.simplices[:, [1, 2]], hull.simplices[:, [0, 2]]]
            ),
            axis=1,
        ),
        axis=0,
    )
    p, q = points[edges[:, 0]], points[edges[:, 1]]
    for z in range(int(points[:, 0].min()), int(points[:, 0].max()) + 1):
        crosses = (p[:, 0] - z) * (q[:, 0] - z) <= 0
        a, b = p[crosses], q[crosses]
        dz = b[:, 0] - a[:, 0]
        flat = dz == 0
        t = np.where(flat, 0.0, (z - a[:, 0]) / np.where(flat, 1.0, dz))
        section = np.concatenate([a + t[:, None] * (b - a), b[flat]])[:, 1:]
        if len(section) < 3:
            continue
        try:
            ring = section[ConvexHull(section).vertices]
        except (QhullError, ValueError):  # a segment: its voxels are already in the mask
            continue
        rr, cc = polygon(ring[:, 0], ring[:, 1], shape=out.shape[1:])
        out[z, rr, cc] = True
    return out


def lung_region(
    raw_labels: np.ndarray, body: np.ndarray | None = None, mirror: bool = True
) -> np.ndarray:
    """The region cropping uses, from lung labels (1 right, 2 left) of an LPS-oriented volume:

    1. each lung closed by its 3-D convex hull: a tumour at the pleura pushes into the lung and leaves
       a bay in a threshold (or network) mask; the hull closes the bay;
    2. (``mirror``) each side also gets the other lung's region mirrored about the midline between the
       lungs' outer walls: a large tumour that *is* a lung's outer wall or apex is outside any hull of that
       lung's air, but the other lung shows where the chest wall is. With one lung only (a tumour or
       collapse has left the other with no air at all) the found lung is mirrored about the body's midline
       (``body`` needed) to stand for the missing one;
    3. grown by one voxel in-plane, since an air threshold stops half a voxel short of the pleura.

    Additions stay inside ``body`` (if given) and never take the other lung's voxels; where the two
    hulls overlap (mediastinum) a voxel goes to the lung on its side.
    """
    hulls: dict[int, tuple[tuple[slice, ...], np.ndarray]] = {}
    for label in (RIGHT, LEFT):
        lung = raw_labels == label
        if lung.any():
            zs, ys, xs = np.nonzero(lung)
            box = (
                slice(zs.min(), zs.max() + 1),
                slice(ys.min(), ys.max() + 1),
                slice(xs.min(), xs.max() + 1),
            )
            hulls[label] = (box, convex_hull_3d(lung[box]))
    out = np.zeros(raw_labels.shape, np.uint8)
    for label, (box, hull) in hulls.items():
        view = out[box]
        if label == LEFT and RIGHT in hulls:  # overlap: split halfway between the lungs' centres
            mid = (
                np.nonzero(raw_labels == RIGHT)[2].mean() + np.nonzero(raw_labels == LEFT)[2].mean()
            ) / 2
            x = np.arange(box[2].start, box[2].stop)[None, None, :]
            view[hull & ((view == 0) | (x >= mid))] = label
        else:
            view[hull] = label
    out[raw_labels > 0] = raw_labels[raw_labels > 0]  # a lung's own voxels keep its label
    free = (out == 0) if body is None else (out == 0) & body
    if mirror and len(hulls) == 2:
        xs = np.nonzero(out.any(axis=(0, 1)))[0]
        mid = (xs[0] + xs[-1]) / 2
        mirrored = _mirror_x(out, mid)
        for label, other in ((RIGHT, LEFT), (LEFT, RIGHT)):
            out[free & (mirrored == other) & _side_of(out.shape, mid, label)] = label
        free &= out == 0
    elif mirror and len(hulls) == 1 and body is not None and body.any():
        (found,) = hulls
        missing = LEFT if found == RIGHT else RIGHT
        mid = body_midline_x(body)
        out[free & (_mirror_x(out, mid) == found) & _side_of(out.shape, mid, missing)] = missing
        hulls[missing] = hulls[found]  # grown like a found lung below
        free &= out == 0
    for label in hulls:
        out[ndimage.binary_dilation(out == label, structure=_INPLANE) & free] = label
        free &= out == 0
    return out


def _mirror_x(labels: np.ndarray, mid: float) -> np.ndarray:
    """``labels`` reflected about the plane x = ``mid`` (voxels reflected from outside the volume: 0)."""
    nx = labels.shape[2]
    src = np.round(2 * mid - np.arange(nx)).astype(int)
    valid = (src >= 0) & (src < nx)
    out = np.zeros_like(labels)
    out[:, :, valid] = labels[:, :, src[valid]]
    return out


def _side_of(shape: tuple[int, ...], mid: float, label: int) -> np.ndarray:
    """Broadcastable x mask of ``label``'s side of x = ``mid`` (right: low x in LPS)."""
    x = np.arange(shape[2])[None, None, :]
    return x < mid if label == RIGHT else x >= mid
