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

from ..core.env import LUNGMASK_WEIGHTS
from ..core.errors import InputError
from ..core.geometry import Geometry, array_to_image, spacing_zyx
from .threshold_mask import (
    LEFT,
    RIGHT,
    body_and_inside_air,
    body_midline_x,
    classical_lung_labels,
    lung_region,
    order_right_left,
)

ENV_WEIGHTS = LUNGMASK_WEIGHTS
LUNG_NAMES = {RIGHT: "right", LEFT: "left"}


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

    def to_image(
        self, ct: sitk.Image, which: Literal["mask", "labels", "raw_labels"] = "labels"
    ) -> sitk.Image:
        """One of the arrays as a uint8 image in the CT's geometry."""
        return array_to_image(
            np.ascontiguousarray(getattr(self, which), dtype=np.uint8), Geometry.of(ct)
        )


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
        return (
            None,
            f"no lungmask weights were given (--lungmask-weights) and {ENV_WEIGHTS} is not set",
        )
    path = Path(env).expanduser()
    if not path.is_file():
        return None, f"{ENV_WEIGHTS}={env} is not a file"
    return path, f"lungmask weights {path} (from {ENV_WEIGHTS})"


def lungmask_labels(
    ct_lps: sitk.Image, weights: Path, force_cpu: bool = False, progress: bool = False
) -> np.ndarray:
    """Run lungmask with a local R231-type state dict on an LPS-oriented HU image; raw labels [z, y, x]."""
    lm = import_lungmask()
    import torch

    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise InputError(
            f"{weights}: cannot read lungmask weights ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(state, dict) or not state:
        raise InputError(f"{weights}: not a lungmask state dict")
    try:  # lungmask reads the class count from the last tensor (the final layer's bias)
        n_classes = len(list(state.values())[-1])
    except TypeError:
        n_classes = None
    if n_classes != 3:
        raise InputError(
            f"{weights}: expected R231-type weights with 3 classes (background, right, left), "
            f"got {n_classes}"
        )
    with _quiet_lungmask_logger():
        try:  # modelpath is given, so lungmask loads this file and never downloads
            inferer = lm.LMInferer(
                modelpath=str(weights), force_cpu=force_cpu, tqdm_disable=not progress
            )
        except RuntimeError as e:
            raise InputError(
                f"{weights}: weights do not fit lungmask's R231 network "
                f"({str(e).strip().splitlines()[0]})"
            ) from e
        out = inferer.apply(sitk.Cast(ct_lps, sitk.sitkFloat32))
    return np.asarray(out, dtype=np.uint8)


# --------------------------------------------------------------------------- entry point
def check_hu(array: np.ndarray, what: str = "CT") -> None:
    """Raise :class:`InputError` unless ``array`` looks like a CT in Hounsfield units."""
    low = float(array.min())
    if low > -500:
        raise InputError(
            f"{what}: no voxel below -500 HU (minimum {low:g}); lung masks need a CT in "
            "Hounsfield units (air -1000, lung about -850)"
        )


def _to_lps(ct: sitk.Image) -> tuple[sitk.Image, str]:
    orient = sitk.DICOMOrientImageFilter_GetOrientationFromDirectionCosines(ct.GetDirection())
    return (ct if orient == "LPS" else sitk.DICOMOrient(ct, "LPS")), orient


def _from_lps(array: np.ndarray, ct_lps: sitk.Image, orient: str) -> np.ndarray:
    if orient == "LPS":
        return array
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(ct_lps)
    return sitk.GetArrayFromImage(sitk.DICOMOrient(image, orient))


def lung_mask(
    ct: sitk.Image,
    weights: str | os.PathLike | None = None,
    method: Method = "auto",
    force_cpu: bool = False,
    progress: bool = False,
    what: str = "CT",
) -> LungMaskResult:
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
    spacing = spacing_zyx(ct_lps)

    path, why = (None, "it was requested") if method == "classical" else resolve_weights(weights)
    if method == "lungmask" and path is None:
        raise InputError(f"lungmask requested but {why}; lungmask weights are never downloaded")

    raw, name, message = None, "", ""
    body_and_air = body_and_inside_air(hu)
    body = body_and_air[0]
    if path is not None:
        raw = lungmask_labels(ct_lps, path, force_cpu=force_cpu, progress=progress)
        body_centre = body_midline_x(body)
        raw = order_right_left([raw == RIGHT, raw == LEFT], hu.shape, body_centre)
        name, message = "lungmask-R231", f"lungmask R231 with {why}"
        if not raw.any() and method == "auto":
            why = f"lungmask found no lung (with {why})"
            raw = None
    if raw is None:
        raw, detail = classical_lung_labels(hu, body_and_air)
        name, message = "classical", f"classical HU-threshold lung mask, because {why}; {detail}"

    region = lung_region(raw, body)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    volumes = ", ".join(
        f"{LUNG_NAMES[k]} lung region {np.count_nonzero(region == k) * voxel_ml:.1f} mL"
        for k in (RIGHT, LEFT)
        if (region == k).any()
    )
    message += f"; {volumes or 'no lung found'}"
    for k in (RIGHT, LEFT):
        if (region == k).any() and not (raw == k).any():
            message += f"; no {LUNG_NAMES[k]} lung found: its region is the other lung mirrored about the body midline"
    labels = _from_lps(region, ct_lps, orient)
    raw = _from_lps(raw, ct_lps, orient)
    return LungMaskResult(
        mask=(labels > 0).astype(np.uint8),
        labels=labels.astype(np.uint8),
        raw_labels=raw.astype(np.uint8),
        method=name,
        message=message,
    )
