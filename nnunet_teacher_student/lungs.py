"""Lung masks for cropping: lungmask R231 when its weights are on disk, else a classical HU method.

The result is the *lung region* that cropping uses, not a strict parenchyma segmentation: each lung
is closed by its 3-D convex hull and completed with the mirror image of the other lung, so tumours at
the pleura (which a threshold or a network may leave outside the lung) stay inside; see
:func:`lung_region`. Labels follow lungmask: 1 = right lung, 2 = left lung.

lungmask is imported lazily and under ``warnings.catch_warnings`` because importing
``lungmask.mask`` runs ``warnings.filterwarnings("ignore", category=UserWarning)`` process-wide.
Weights are never downloaded: lungmask needs a local state dict (``weights=`` or the
``NNTS_LUNGMASK_WEIGHTS`` environment variable).
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Iterator, Literal

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .core.components import label_components
from .core.errors import InputError
from .core.geometry import Geometry, array_to_image

ENV_WEIGHTS = "NNTS_LUNGMASK_WEIGHTS"
RIGHT, LEFT = 1, 2
LUNG_NAMES = {RIGHT: "right", LEFT: "left"}

AIR_HU = -400.0  # lung parenchyma (~-850) and air (~-1000) lie below, soft tissue (> -100) above

Method = Literal["auto", "lungmask", "classical"]


@dataclass
class LungMaskResult:
    """Lung region of a CT; all arrays are uint8 ``[z, y, x]`` on the CT's voxel grid.

    ``mask``: 1 inside the region cropping uses (see :func:`lung_region`).
    ``labels``: the same region split into 1 = right lung, 2 = left lung.
    ``raw_labels``: the lung segmentation before hull/mirror/growth (what the method itself found).
    ``method``: ``"lungmask-R231"`` or ``"classical"``; ``message`` says why and what was found.
    """

    mask: np.ndarray
    labels: np.ndarray
    raw_labels: np.ndarray
    method: str
    message: str

    @property
    def found(self) -> bool:
        return bool(self.mask.any())

    def to_image(self, ct: sitk.Image, which: Literal["mask", "labels", "raw_labels"] = "labels") -> sitk.Image:
        """One of the arrays as a uint8 image in the CT's geometry."""
        return array_to_image(np.ascontiguousarray(getattr(self, which), dtype=np.uint8), Geometry.of(ct))


# --------------------------------------------------------------------------- lungmask
def import_lungmask() -> ModuleType:
    """``lungmask.mask``, imported without letting it change the process's warning filters.

    Its dependencies are imported first, outside the guard, so the filters they install stay; only
    lungmask's own ``filterwarnings("ignore", category=UserWarning)`` is undone.
    """
    import fill_voids  # noqa: F401
    import more_itertools  # noqa: F401
    import skimage.measure  # noqa: F401
    import skimage.morphology  # noqa: F401
    import torch  # noqa: F401
    import tqdm  # noqa: F401

    with warnings.catch_warnings():  # restores warnings.filters on exit
        from lungmask import mask
    return mask


@contextlib.contextmanager
def _quiet_lungmask_logger() -> Iterator[None]:
    """lungmask logs INFO lines to stdout through its own handler; keep only its warnings."""
    logger = logging.getLogger("lungmask")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def resolve_weights(weights: str | os.PathLike | None) -> tuple[Path | None, str]:
    """The lungmask weights to use and why: ``weights`` if given (must exist), else the environment
    variable if it names an existing file, else ``None``."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InputError(f"{path}: lungmask weights file not found")
        return path, f"lungmask weights {path}"
    env = os.environ.get(ENV_WEIGHTS, "").strip()
    if not env:
        return None, f"no lungmask weights were given (--lungmask-weights) and {ENV_WEIGHTS} is not set"
    path = Path(env).expanduser()
    if not path.is_file():
        return None, f"{ENV_WEIGHTS}={env} is not a file"
    return path, f"lungmask weights {path} (from {ENV_WEIGHTS})"


def lungmask_labels(ct_lps: sitk.Image, weights: Path, force_cpu: bool = False,
                    progress: bool = False) -> np.ndarray:
    """Run lungmask with a local R231-type state dict on an LPS-oriented HU image; raw labels [z, y, x]."""
    lm = import_lungmask()
    import torch

    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise InputError(f"{weights}: cannot read lungmask weights ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or not state:
        raise InputError(f"{weights}: not a lungmask state dict")
    try:  # lungmask reads the class count from the last tensor (the final layer's bias)
        n_classes = len(list(state.values())[-1])
    except TypeError:
        n_classes = None
    if n_classes != 3:
        raise InputError(f"{weights}: expected R231-type weights with 3 classes (background, right, left), "
                         f"got {n_classes}")
    with _quiet_lungmask_logger():
        try:  # modelpath is given, so lungmask loads this file and never downloads
            inferer = lm.LMInferer(modelpath=str(weights), force_cpu=force_cpu, tqdm_disable=not progress)
        except RuntimeError as e:
            raise InputError(f"{weights}: weights do not fit lungmask's R231 network "
                             f"({str(e).strip().splitlines()[0]})") from e
        out = inferer.apply(sitk.Cast(ct_lps, sitk.sitkFloat32))
    return np.asarray(out, dtype=np.uint8)


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
            if 0.0002 * body_area <= areas[i] <= 0.025 * body_area and abs(cx - centre) <= 0.2 * width:
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


def classical_lung_labels(hu: np.ndarray, body_and_air: tuple[np.ndarray, np.ndarray] | None = None
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
    body_centre = float(np.nonzero(body.any(axis=(0, 1)))[0].mean())
    xs = np.nonzero(largest)[2]
    note = ""
    if min((xs < body_centre).mean(), (xs >= body_centre).mean()) > 0.2:  # spans both halves: lungs touch
        split = _split_joined(largest)
        if split is None:
            split = np.where(largest, np.where(np.arange(hu.shape[2]) < body_centre, 1, 2)[None, None, :], 0)
            note = "; joined lungs split at the body midline"
        else:
            note = "; joined lungs separated by erosion"
        parts = [split == 1, split == 2]
    else:
        parts = [largest]
        if n > 1 and sizes[order[1] - 1] >= 0.1 * sizes[order[0] - 1]:
            second = comps == order[1]
            if _z_overlap(largest, second) >= 0.5:  # bowel gas lies below the lungs, not beside them
                parts.append(second)
        if len(parts) == 1:
            note = "; only one lung found"
    return _order_right_left(parts, hu.shape, body_centre), f"{airway_msg}{note}"


def _order_right_left(parts: list[np.ndarray], shape: tuple[int, ...], body_centre: float) -> np.ndarray:
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
    edges = np.unique(np.sort(np.concatenate([hull.simplices[:, [0, 1]], hull.simplices[:, [1, 2]],
                                              hull.simplices[:, [0, 2]]]), axis=1), axis=0)
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


def lung_region(raw_labels: np.ndarray, body: np.ndarray | None = None, mirror: bool = True) -> np.ndarray:
    """The region cropping uses, from lung labels (1 right, 2 left) of an LPS-oriented volume:

    1. each lung closed by its 3-D convex hull: a tumour at the pleura pushes into the lung and leaves
       a bay in a threshold (or network) mask; the hull closes the bay;
    2. (``mirror``, both lungs present) each side also gets the other lung's region mirrored about the
       midline between the lungs' outer walls: a large tumour that *is* a lung's outer wall or apex is
       outside any hull of that lung's air, but the other lung shows where the chest wall is;
    3. grown by one voxel in-plane, since an air threshold stops half a voxel short of the pleura.

    Additions stay inside ``body`` (if given) and never take the other lung's voxels; where the two
    hulls overlap (mediastinum) a voxel goes to the lung on its side.
    """
    hulls: dict[int, tuple[tuple[slice, ...], np.ndarray]] = {}
    for label in (RIGHT, LEFT):
        lung = raw_labels == label
        if lung.any():
            zs, ys, xs = np.nonzero(lung)
            box = (slice(zs.min(), zs.max() + 1), slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
            hulls[label] = (box, convex_hull_3d(lung[box]))
    out = np.zeros(raw_labels.shape, np.uint8)
    for label, (box, hull) in hulls.items():
        view = out[box]
        if label == LEFT and RIGHT in hulls:  # overlap: split halfway between the lungs' centres
            mid = (np.nonzero(raw_labels == RIGHT)[2].mean() + np.nonzero(raw_labels == LEFT)[2].mean()) / 2
            x = np.arange(box[2].start, box[2].stop)[None, None, :]
            view[hull & ((view == 0) | (x >= mid))] = label
        else:
            view[hull] = label
    out[raw_labels > 0] = raw_labels[raw_labels > 0]  # a lung's own voxels keep its label
    free = (out == 0) if body is None else (out == 0) & body
    if mirror and len(hulls) == 2:
        xs = np.nonzero(out.any(axis=(0, 1)))[0]
        mid = (xs[0] + xs[-1]) / 2
        nx = out.shape[2]
        src = np.round(2 * mid - np.arange(nx)).astype(int)
        valid = (src >= 0) & (src < nx)
        mirrored = np.zeros_like(out)
        mirrored[:, :, valid] = out[:, :, src[valid]]
        x = np.arange(nx)[None, None, :]
        out[free & (mirrored == LEFT) & (x < mid)] = RIGHT
        out[free & (mirrored == RIGHT) & (x >= mid)] = LEFT
        free &= out == 0
    for label in hulls:
        out[ndimage.binary_dilation(out == label, structure=_INPLANE) & free] = label
        free &= out == 0
    return out


# --------------------------------------------------------------------------- entry point
def check_hu(array: np.ndarray, what: str = "CT") -> None:
    """Raise :class:`InputError` unless ``array`` looks like a CT in Hounsfield units."""
    low = float(array.min())
    if low > -500:
        raise InputError(f"{what}: no voxel below -500 HU (minimum {low:g}); lung masks need a CT in "
                         "Hounsfield units (air -1000, lung about -850)")


def _to_lps(ct: sitk.Image) -> tuple[sitk.Image, str]:
    orient = sitk.DICOMOrientImageFilter_GetOrientationFromDirectionCosines(ct.GetDirection())
    return (ct if orient == "LPS" else sitk.DICOMOrient(ct, "LPS")), orient


def _from_lps(array: np.ndarray, ct_lps: sitk.Image, orient: str) -> np.ndarray:
    if orient == "LPS":
        return array
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(ct_lps)
    return sitk.GetArrayFromImage(sitk.DICOMOrient(image, orient))


def lung_mask(ct: sitk.Image, weights: str | os.PathLike | None = None, method: Method = "auto",
              force_cpu: bool = False, progress: bool = False, what: str = "CT") -> LungMaskResult:
    """The lung region of ``ct`` (an image in HU) on its own voxel grid.

    ``method="auto"``: lungmask R231 if ``weights`` is given or ``NNTS_LUNGMASK_WEIGHTS`` names an
    existing file, else the classical method (the message says why). ``"lungmask"`` requires
    weights; ``"classical"`` ignores them. A given ``weights`` path that does not exist is an error.
    ``what`` names the CT in error messages.
    """
    if method not in ("auto", "lungmask", "classical"):
        raise InputError(f"unknown lung mask method {method!r} (auto, lungmask or classical)")
    if ct.GetDimension() != 3 or ct.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{what}: expected a 3-D single-channel CT")
    ct_lps, orient = _to_lps(ct)
    hu = sitk.GetArrayFromImage(ct_lps)
    check_hu(hu, what)
    spacing_zyx = tuple(float(s) for s in ct_lps.GetSpacing()[::-1])

    path, why = (None, "it was requested") if method == "classical" else resolve_weights(weights)
    if method == "lungmask" and path is None:
        raise InputError(f"lungmask requested but {why}; lungmask weights are never downloaded")

    raw, name, message = None, "", ""
    body_and_air = body_and_inside_air(hu)
    body = body_and_air[0]
    if path is not None:
        raw = lungmask_labels(ct_lps, path, force_cpu=force_cpu, progress=progress)
        body_centre = float(np.nonzero(body.any(axis=(0, 1)))[0].mean())
        raw = _order_right_left([raw == RIGHT, raw == LEFT], hu.shape, body_centre)
        name, message = "lungmask-R231", f"lungmask R231 with {why}"
        if not raw.any() and method == "auto":
            why = f"lungmask found no lung (with {why})"
            raw = None
    if raw is None:
        raw, detail = classical_lung_labels(hu, body_and_air)
        name, message = "classical", f"classical HU-threshold lung mask, because {why}; {detail}"

    region = lung_region(raw, body)
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    volumes = ", ".join(f"{LUNG_NAMES[k]} lung region {np.count_nonzero(region == k) * voxel_ml:.1f} mL"
                        for k in (RIGHT, LEFT) if (region == k).any())
    message += f"; {volumes or 'no lung found'}"
    labels = _from_lps(region, ct_lps, orient)
    raw = _from_lps(raw, ct_lps, orient)
    return LungMaskResult(mask=(labels > 0).astype(np.uint8), labels=labels.astype(np.uint8),
                          raw_labels=raw.astype(np.uint8), method=name, message=message)
