"""Image geometry (size, spacing, origin, direction) and atomic SimpleITK image I/O."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .files import tmp_sibling


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of an image, in SimpleITK order: size and spacing are (x, y, z)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> "Geometry":
        return cls(
            tuple(int(s) for s in image.GetSize()),
            tuple(float(s) for s in image.GetSpacing()),
            tuple(float(s) for s in image.GetOrigin()),
            tuple(float(d) for d in image.GetDirection()),
        )

    @classmethod
    def from_dict(cls, d: dict) -> "Geometry":
        try:
            g = cls(
                tuple(int(v) for v in d["size"]),
                tuple(float(v) for v in d["spacing"]),
                tuple(float(v) for v in d["origin"]),
                tuple(float(v) for v in d["direction"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"geometry is incomplete or malformed ({e!r}): {d!r}") from e
        if len(g.size) != 3 or len(g.spacing) != 3 or len(g.origin) != 3 or len(g.direction) != 9:
            raise InputError(
                f"geometry must be 3-D (size/spacing/origin of 3, direction of 9): {d!r}"
            )
        return g

    def to_dict(self) -> dict:
        return {
            "size": list(self.size),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
        }

    @property
    def array_shape(self) -> tuple[int, int, int]:
        """Shape of the numpy array SimpleITK gives for this grid: (z, y, x)."""
        return self.size[::-1]

    def matches(self, other: "Geometry", tol: float = 1e-3) -> bool:
        return (
            self.size == other.size
            and np.allclose(self.spacing, other.spacing, rtol=tol, atol=tol)
            and np.allclose(self.origin, other.origin, rtol=tol, atol=tol * 10)
            and np.allclose(self.direction, other.direction, atol=tol)
        )

    def require_match(self, other: "Geometry", what: str) -> None:
        """Raise InputError naming ``what`` when the two grids differ."""
        if not self.matches(other):
            raise InputError(
                f"{what}: geometry mismatch: expected {self.to_dict()}, got {other.to_dict()}"
            )

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


def array_to_image(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    """A (z, y, x) array as an image on ``geometry``."""
    if tuple(array.shape) != geometry.array_shape:
        raise InputError(
            f"array shape {array.shape} does not match geometry {geometry.array_shape}"
        )
    return geometry.apply_to(sitk.GetImageFromArray(array))


GZIP_MAGIC = b"\x1f\x8b"


def verify_gzip(path: Path) -> None:
    """Decompress a gzip file to its end: a short or corrupt stream, or a CRC/length trailer that does not
    match, is an error naming the file. SimpleITK reads a truncated ``.nii.gz`` without complaint (and
    returns an image that is mostly zeros), so every user image is checked here first."""
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise InputError(
            f"{path}: corrupt or truncated gzip file ({e or type(e).__name__}); "
            "the image cannot be trusted, copy or export it again"
        ) from e


def read_image(path: str | os.PathLike) -> sitk.Image:
    """Read an image file, turning SimpleITK's errors into one that names the file; a gzip-compressed file
    (``.nii.gz`` and the like) is first verified to its end (:func:`verify_gzip`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
    if compressed:
        verify_gzip(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unreadable"
        raise InputError(f"{path}: cannot read image ({first})") from e
    if image.GetDimension() != 3:
        raise InputError(f"{path}: expected a 3-D image, got {image.GetDimension()}-D")
    return image


def read_header(path: str | os.PathLike) -> Geometry:
    """The geometry of an image file from its header alone (no voxel data read), or an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise InputError(
            f"{path}: cannot read image header ({str(e).strip().splitlines()[-1:]})"
        ) from e
    if reader.GetDimension() != 3:
        raise InputError(f"{path}: expected a 3-D image, got {reader.GetDimension()}-D")
    return Geometry(
        tuple(int(s) for s in reader.GetSize()),
        tuple(float(s) for s in reader.GetSpacing()),
        tuple(float(s) for s in reader.GetOrigin()),
        tuple(float(d) for d in reader.GetDirection()),
    )


def read_label(path: Path, ct: sitk.Image) -> np.ndarray:
    """A binary tumour mask on the CT's grid, or an error naming the file."""
    label = read_image(path)
    Geometry.of(ct).require_match(Geometry.of(label), str(path))
    arr = sitk.GetArrayFromImage(label)
    values = np.unique(arr)
    if not np.isin(values, (0, 1)).all():
        raise InputError(f"{path}: tumour labels must be 0/1, found values {values[:10].tolist()}")
    return arr.astype(np.uint8)


def write_image_atomic(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> None:
    """Write to a temporary file beside ``path`` and rename: readers never see a truncated file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(path)
    try:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def spacing_zyx(of: "Geometry | sitk.Image") -> tuple[float, ...]:
    """The spacing of a geometry or an image in numpy (z, y, x) order."""
    spacing = of.spacing if isinstance(of, Geometry) else of.GetSpacing()
    return tuple(float(s) for s in spacing[::-1])
