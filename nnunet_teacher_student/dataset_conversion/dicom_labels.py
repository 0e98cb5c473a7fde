"""Tumour masks from DICOM RTSTRUCT (rt-utils) and DICOM-SEG (highdicom), on a CT series' voxels.

Both readers return a ``[z, y, x]`` uint8 mask in the order of :class:`CTSeries` (SimpleITK's
order), matching slices by SOPInstanceUID, never by list position. An RTSTRUCT whose contours name
slice UIDs the series lacks (re-anonymised copies keep stale per-contour references) but which names
the CT's series or frame of reference is placed by its contours' patient coordinates instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from ..core.errors import InputError
from .dicom_series import CTSeries

DEFAULT_ROI_PATTERN = "GTV-1"
ALL_GTV_PATTERN = r"GTV.*"
PRIMARY_NEOPLASM = "neoplasm, primary"


def roi_matcher(pattern: str):
    """Case-insensitive full match of an ROI / segment name against ``pattern``."""
    try:
        rx = re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise InputError(f"invalid ROI pattern {pattern!r}: {e}") from e
    return lambda name: rx.fullmatch(str(name).strip()) is not None


# ----------------------------------------------------------------------------------------- RTSTRUCT


@dataclass
class RTStructInfo:
    path: Path
    ds: pydicom.Dataset
    roi_names: list[str]
    series_uids: set[str]
    frames_of_reference: set[str]


def read_rtstruct(path: Path) -> RTStructInfo:
    """Read an RTSTRUCT file; its ROI names and the series its contours refer to."""
    try:
        ds = pydicom.dcmread(path)
    except Exception as e:  # noqa: BLE001 - pydicom raises many types on corrupt files
        raise InputError(f"{path}: unreadable RTSTRUCT ({type(e).__name__}: {e})") from e
    if ds.get("Modality") != "RTSTRUCT" or "StructureSetROISequence" not in ds:
        raise InputError(f"{path}: not an RTSTRUCT with a StructureSetROISequence")
    names = [str(r.get("ROIName", "")) for r in ds.StructureSetROISequence]
    series, frames = set(), set()
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        if fr.get("FrameOfReferenceUID"):
            frames.add(str(fr.FrameOfReferenceUID))
        for st in fr.get("RTReferencedStudySequence", []):
            for se in st.get("RTReferencedSeriesSequence", []):
                series.add(str(se.SeriesInstanceUID))
    return RTStructInfo(Path(path), ds, names, series, frames)


def names_the_series(info: RTStructInfo, ct: CTSeries) -> bool:
    """Whether the RTSTRUCT names ``ct``'s series or its frame of reference."""
    h = ct.headers[0]
    return (
        str(h.get("SeriesInstanceUID", "")) in info.series_uids
        or str(h.get("FrameOfReferenceUID", "")) in info.frames_of_reference
    )


def _rt_utils_fits(ct: CTSeries, ds: pydicom.Dataset, numbers: list[str]) -> bool:
    """rt-utils assumes square slices and square pixels, and a ContourImageSequence per contour."""
    h = ct.headers[0]
    if (
        int(h.Rows) != int(h.Columns)
        or abs(float(h.PixelSpacing[0]) - float(h.PixelSpacing[1])) > 1e-6
    ):
        return False
    for rc in ds.get("ROIContourSequence", []):
        if str(rc.get("ReferencedROINumber")) in numbers:
            if any("ContourImageSequence" not in c for c in rc.get("ContourSequence", [])):
                return False
    return True


def _contours_of(ds: pydicom.Dataset, numbers: list[str]) -> list[np.ndarray]:
    out = []
    for rc in ds.get("ROIContourSequence", []):
        if str(rc.get("ReferencedROINumber")) in numbers:
            for c in rc.get("ContourSequence", []):
                pts = np.asarray(c.ContourData, float).reshape(-1, 3)
                out.append(pts)
    return out


def _referenced_images(ds: pydicom.Dataset, numbers: list[str]) -> set[str]:
    """SOPInstanceUIDs the contours of the given ROIs refer to."""
    return {
        str(img.ReferencedSOPInstanceUID)
        for rc in ds.get("ROIContourSequence", [])
        if str(rc.get("ReferencedROINumber")) in numbers
        for c in rc.get("ContourSequence", [])
        for img in c.get("ContourImageSequence", [])
    }


def rasterise_contours(contours: list[np.ndarray], image: sitk.Image, what: str) -> np.ndarray:
    """Fill planar contours (patient mm) into a ``[z, y, x]`` mask on ``image``'s grid.

    Hand-written fallback for what rt-utils cannot do (non-square slices or pixels, contours
    without image references); the fill rule is rt-utils' own (OpenCV ``fillPoly`` on rounded
    vertices, all contours of a slice together).
    """
    import cv2  # comes with rt-utils

    size = image.GetSize()
    matrix = np.asarray(image.GetDirection(), float).reshape(3, 3) @ np.diag(image.GetSpacing())
    inverse = np.linalg.inv(matrix)
    origin = np.asarray(image.GetOrigin(), float)
    per_slice: dict[int, list[np.ndarray]] = {}
    for pts in contours:
        idx = (pts - origin) @ inverse.T  # continuous (x, y, z) indices
        z = np.rint(idx[:, 2])
        if np.ptp(idx[:, 2]) > 0.5 or abs(idx[0, 2] - z[0]) > 0.25:
            raise InputError(
                f"{what}: a contour does not lie on a slice of the CT (z index {idx[0, 2]:.2f})"
            )
        if not 0 <= z[0] < size[2]:
            raise InputError(
                f"{what}: a contour lies outside the CT (slice {int(z[0])} of {size[2]})"
            )
        per_slice.setdefault(int(z[0]), []).append(np.rint(idx[:, :2]).astype(np.int32))
    mask = np.zeros(size[::-1], np.uint8)
    for z, polys in per_slice.items():
        plane = np.zeros((size[1], size[0]), np.uint8)
        cv2.fillPoly(plane, polys, 1)
        mask[z] = plane
    return mask


def rtstruct_mask(
    info: RTStructInfo, ct: CTSeries, pattern: str = DEFAULT_ROI_PATTERN, use_rt_utils: bool = True
) -> tuple[np.ndarray, list[str]]:
    """Union of the ROIs whose name matches ``pattern``, as a mask on ``ct``; and their names."""
    match = roi_matcher(pattern)
    rois = [
        (str(r.ROINumber), str(r.ROIName))
        for r in info.ds.StructureSetROISequence
        if match(r.get("ROIName", ""))
    ]
    if not rois:
        raise InputError(f"{info.path}: no ROI matching {pattern!r} (ROIs: {info.roi_names})")
    names = sorted({n for _, n in rois})
    numbers = [num for num, _ in rois]
    if not _contours_of(info.ds, numbers):
        raise InputError(f"{info.path}: ROI(s) {names} have no contours")
    foreign = _referenced_images(info.ds, numbers) - set(ct.sop_uids)
    if foreign and not names_the_series(info, ct):
        raise InputError(
            f"{info.path}: does not fit the CT series {ct.files[0].parent}: its contours refer to "
            f"{len(foreign)} image(s) that are not slices of it (e.g. {sorted(foreign)[0]}), and it "
            f"names neither the series nor its frame of reference"
        )
    if use_rt_utils and not foreign and _rt_utils_fits(ct, info.ds, numbers):
        from rt_utils import image_helper

        mask = np.zeros(ct.image.GetSize()[::-1], np.uint8)
        for rc in info.ds.ROIContourSequence:  # per ROI number: duplicated ROI names are all taken
            if str(rc.get("ReferencedROINumber")) in numbers and rc.get("ContourSequence"):
                # slices given in SimpleITK order, so m[:, :, z] is slice z; (rows, columns) for square slices
                m = image_helper.create_series_mask_from_contour_sequence(
                    ct.headers, rc.ContourSequence
                )
                mask |= np.moveaxis(m, 2, 0).astype(np.uint8)
    else:
        mask = rasterise_contours(_contours_of(info.ds, numbers), ct.image, str(info.path))
    return mask, names


# ----------------------------------------------------------------------------------------- SEG


@dataclass
class SegInfo:
    path: Path
    segments: list[tuple[int, str, str]]  # number, label, property-type meaning
    series_uids: set[str]


def read_seg_info(path: Path) -> SegInfo:
    """Segment list and referenced series of a DICOM-SEG (header only)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: unreadable DICOM-SEG ({type(e).__name__}: {e})") from e
    if ds.get("Modality") != "SEG" or "SegmentSequence" not in ds:
        raise InputError(f"{path}: not a DICOM-SEG with a SegmentSequence")
    segments = []
    for s in ds.SegmentSequence:
        types = s.get("SegmentedPropertyTypeCodeSequence", [])
        meaning = str(types[0].get("CodeMeaning", "")) if types else ""
        segments.append((int(s.SegmentNumber), str(s.get("SegmentLabel", "")), meaning))
    series = {str(r.SeriesInstanceUID) for r in ds.get("ReferencedSeriesSequence", [])}
    return SegInfo(Path(path), segments, series)


def select_segments(
    info: SegInfo, pattern: str = DEFAULT_ROI_PATTERN
) -> list[tuple[int, str, str]]:
    """Segments whose label matches ``pattern``; if none, those of type "Neoplasm, Primary"."""
    match = roi_matcher(pattern)
    chosen = [s for s in info.segments if match(s[1])]
    if not chosen:
        chosen = [s for s in info.segments if s[2].strip().lower() == PRIMARY_NEOPLASM]
    return chosen


def seg_mask(
    info: SegInfo, ct: CTSeries, pattern: str = DEFAULT_ROI_PATTERN
) -> tuple[np.ndarray, list[str]]:
    """Union of the selected segments (see :func:`select_segments`) as a mask on ``ct``."""
    import highdicom as hd

    chosen = select_segments(info, pattern)
    if not chosen:
        raise InputError(
            f"{info.path}: no segment labelled {pattern!r} nor of type 'Neoplasm, Primary' "
            f"(segments: {[(s[1], s[2]) for s in info.segments]})"
        )
    try:
        seg = hd.seg.segread(info.path)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{info.path}: highdicom cannot read it ({type(e).__name__}: {e})") from e
    referenced = {str(u[2]) for u in seg.get_source_image_uids()}
    foreign = referenced - set(ct.sop_uids)
    if foreign:
        raise InputError(
            f"{info.path}: refers to {len(foreign)} image(s) that are not slices of the CT series "
            f"{ct.files[0].parent} (e.g. {sorted(foreign)[0]})"
        )
    if not referenced:
        raise InputError(
            f"{info.path}: its frames refer to no source image; cannot place it on the CT"
        )
    numbers = [s[0] for s in chosen]
    try:
        pixels = seg.get_pixels_by_source_instance(
            ct.sop_uids, segment_numbers=numbers, assert_missing_frames_are_empty=True
        )
    except (ValueError, RuntimeError, KeyError, AttributeError) as e:
        raise InputError(f"{info.path}: cannot map its frames onto the CT slices ({e})") from e
    threshold = 0.5 if str(seg.segmentation_type.value) == "FRACTIONAL" else 0
    mask = (pixels > threshold).any(axis=-1).astype(np.uint8)
    if mask.shape != ct.image.GetSize()[::-1]:
        raise InputError(
            f"{info.path}: frames of {mask.shape[1:]} pixels on a CT of {ct.image.GetSize()[:2]}"
        )
    return mask, [s[1] or s[2] for s in chosen]
