"""Find DICOM series in a folder tree and read a CT series with SimpleITK, checked.

Headers are read with pydicom; the slice order is the one of SimpleITK's ImageSeriesReader
(``GetGDCMSeriesFileNames``, sorted by position), and :class:`CTSeries` keeps the SOPInstanceUID
of each z index so that annotations referring to slices land on the right voxels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from ..core.errors import InputError

HEADER_TAGS = [
    "SOPInstanceUID",
    "SOPClassUID",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "ImageType",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "Rows",
    "Columns",
    "PixelSpacing",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "NumberOfFrames",
    "PatientID",
]
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


class SliceError(InputError):
    """A series whose slices do not make one regular volume (gaps, duplicates, mixed geometry)."""


@dataclass
class SeriesFiles:
    """The files of one series (any modality) found under a folder, with their minimal headers."""

    uid: str
    headers: list[pydicom.Dataset] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def first(self) -> pydicom.Dataset:
        return self.headers[0]

    @property
    def modality(self) -> str:
        return str(self.first.get("Modality", ""))

    @property
    def description(self) -> str:
        return str(self.first.get("SeriesDescription", ""))

    @property
    def number(self) -> str:
        return str(self.first.get("SeriesNumber", "") or "")

    @property
    def folder(self) -> Path:
        folders = {f.parent for f in self.files}
        if len(folders) != 1:
            raise InputError(
                f"series {self.uid} is spread over several folders: {sorted(map(str, folders))[:3]}"
            )
        return folders.pop()

    @property
    def sop_uids(self) -> list[str]:
        return [str(h.SOPInstanceUID) for h in self.headers]


def _is_candidate(path: Path) -> bool:
    name = path.name
    return (
        not name.startswith(".")
        and name.upper() != "DICOMDIR"
        and (name.lower().endswith(".dcm") or "." not in name)
    )


def scan_dicom_tree(root: str | os.PathLike) -> tuple[dict[str, SeriesFiles], list[str]]:
    """Group the DICOM files under ``root`` by SeriesInstanceUID.

    Returns the series and a list of problems (unreadable files, named). Files named ``.*``
    (e.g. macOS ``._*`` resource forks) and files with a suffix other than ``.dcm`` are ignored.
    """
    root = Path(root)
    series: dict[str, SeriesFiles] = {}
    problems: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not _is_candidate(path):
                continue
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=HEADER_TAGS)
                uid = str(ds.SeriesInstanceUID)
                str(ds.SOPInstanceUID)
            except InvalidDicomError as e:
                if (
                    path.suffix
                ):  # a '.dcm' file that is not DICOM; suffix-less non-DICOM files are ignored
                    problems.append(f"{path}: not a readable DICOM file ({e})")
                continue
            except (OSError, AttributeError, EOFError, ValueError, KeyError) as e:
                problems.append(f"{path}: not a readable DICOM file ({type(e).__name__}: {e})")
                continue
            entry = series.setdefault(uid, SeriesFiles(uid))
            entry.headers.append(ds)
            entry.files.append(path)
    return series, problems


def slice_positions(headers: list[pydicom.Dataset], what: str) -> np.ndarray:
    """Slice positions along the normal of the slices, after checking they share one grid."""
    first = headers[0]
    try:
        iop = np.asarray(first.ImageOrientationPatient, float)
        spacing = np.asarray(first.PixelSpacing, float)
        shape = (int(first.Rows), int(first.Columns))
        ipps = np.array([np.asarray(h.ImagePositionPatient, float) for h in headers])
        iops = np.array([np.asarray(h.ImageOrientationPatient, float) for h in headers])
        spacings = np.array([np.asarray(h.PixelSpacing, float) for h in headers])
        shapes = {(int(h.Rows), int(h.Columns)) for h in headers}
    except (AttributeError, TypeError, ValueError) as e:
        raise SliceError(f"{what}: slices lack position/orientation/spacing ({e})") from e
    if shapes != {shape}:
        raise SliceError(f"{what}: slices of different sizes {sorted(shapes)}")
    if not np.allclose(iops, iop, atol=1e-4) or not np.allclose(spacings, spacing, rtol=1e-4):
        raise SliceError(f"{what}: slices with different orientations or pixel spacings")
    normal = np.cross(iop[:3], iop[3:])
    return ipps @ normal


def check_slice_spacing(positions: np.ndarray, what: str) -> float:
    """Slice spacing of a regular stack; raise :class:`SliceError` on duplicates or gaps.

    Duplicated positions mean several scans stacked in one series; a step that differs from
    the others by more than 5 % (and 0.01 mm) means missing slices or stacked scans.
    """
    pos = np.sort(np.asarray(positions, float))
    if pos.size < 2:
        raise SliceError(f"{what}: a single slice, not a volume")
    steps = np.diff(pos)
    if (steps < 1e-3).any():
        raise SliceError(
            f"{what}: {int((steps < 1e-3).sum())} duplicated slice position(s): several scans "
            "stacked in one series, or duplicated files"
        )
    step = float(np.median(steps))
    bad = np.abs(steps - step) > max(0.01, 0.05 * step)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SliceError(
            f"{what}: non-uniform slice spacing (median {step:.3g} mm, but {steps[i]:.3g} mm "
            f"between positions {pos[i]:.1f} and {pos[i + 1]:.1f}; {int(bad.sum())} irregular "
            "step(s)): missing slices or stacked scans"
        )
    return step


@dataclass
class CTSeries:
    """A CT volume and, for each z index, the file and SOPInstanceUID of that slice."""

    image: sitk.Image
    files: list[Path]
    sop_uids: list[str]
    headers: list[pydicom.Dataset]

    @property
    def z_index(self) -> dict[str, int]:
        return {uid: z for z, uid in enumerate(self.sop_uids)}


def sitk_order(series: SeriesFiles) -> list[int]:
    """Indices into ``series.files`` in the order SimpleITK's series reader stacks them."""
    folder = series.folder
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series.uid)
    where = {os.path.normcase(os.path.abspath(f)): i for i, f in enumerate(series.files)}
    try:
        order = [where[os.path.normcase(os.path.abspath(n))] for n in names]
    except KeyError as e:
        raise InputError(
            f"{folder}: the series reader lists a file pydicom could not read: {e}"
        ) from e
    if len(order) != len(series.files):
        missing = sorted(set(range(len(series.files))) - set(order))
        raise InputError(
            f"{folder}: the series reader skipped {len(series.files) - len(order)} file(s) of series "
            f"{series.uid}, e.g. {series.files[missing[0]] if missing else '?'}"
        )
    return order


def read_ct_series(series: SeriesFiles) -> CTSeries:
    """Read a series as one regular 3-D volume, in SimpleITK's slice order, and check it."""
    what = f"series {series.folder}"
    order = sitk_order(series)
    files = [series.files[i] for i in order]
    headers = [series.headers[i] for i in order]
    check_slice_spacing(slice_positions(headers, what), what)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    try:
        image = reader.Execute()
    except RuntimeError as e:
        lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
        raise InputError(
            f"{what}: cannot read the series ({lines[-1] if lines else 'unreadable'})"
        ) from e
    if image.GetDimension() != 3 or image.GetSize()[2] != len(files):
        raise InputError(f"{what}: reader gave size {image.GetSize()} for {len(files)} slices")
    # Box and contour coordinates are pixel column/row of a slice: check x = column, y = row.
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    iop = np.asarray(headers[0].ImageOrientationPatient, float)
    if not (
        np.allclose(direction[:, 0], iop[:3], atol=1e-3)
        and np.allclose(direction[:, 1], iop[3:], atol=1e-3)
    ):
        raise InputError(
            f"{what}: the reader reoriented the slices (direction {direction.tolist()}, "
            f"orientation {iop.tolist()}); cannot map pixel columns/rows to voxels"
        )
    first_pos = np.asarray(headers[0].ImagePositionPatient, float)
    if not np.allclose(image.GetOrigin(), first_pos, atol=1e-2):
        raise InputError(
            f"{what}: image origin {image.GetOrigin()} is not the first slice's position {first_pos}"
        )
    return CTSeries(image, files, [str(h.SOPInstanceUID) for h in headers], headers)


def z_extent_mm(series: SeriesFiles) -> float:
    """Length covered by the series along the slice normal: number of slices x slice spacing."""
    what = f"series {series.folder}"
    step = check_slice_spacing(slice_positions(series.headers, what), what)
    return step * len(series.headers)


def find_patients(src: Path, layout: str) -> list[Path]:
    """Patient folders directly under ``src`` (hidden ones ignored); ``layout`` is the expected tree, for the
    error message (e.g. ``SRC/LUNG1-xxx/<study>/<series>/*.dcm``)."""
    if not src.is_dir():
        raise InputError(f"{src}: no such folder")
    patients = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not patients:
        raise InputError(f"{src}: no patient folders (expected {layout})")
    return patients
