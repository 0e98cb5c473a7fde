"""Axial 2-D bounding boxes: the weak-label format.

A box lives on one axial slice ``z`` of the CT's voxel grid and spans pixel columns
``xmin..xmax`` and rows ``ymin..ymax``, all inclusive (as radiologists' PASCAL-VOC boxes).
Arrays are in SimpleITK's numpy order ``[z, y, x]``.

On disk a case has two files: ``<case>.json`` (the boxes and the CT geometry they refer to,
see :class:`BoxSet`) and a box-mask image (uint8, CT geometry, 1 inside any box).
``BoxSet -> mask -> BoxSet`` is the identity when no two boxes of a slice overlap or touch;
``mask -> BoxSet -> mask`` is always the identity (non-rectangular regions are split into
row-run rectangles).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..core.components import label_components
from ..core.errors import InputError
from ..core.files import read_json_file, write_text_atomic
from ..core.geometry import Geometry, array_to_image, read_image
from .annotator import Annotator

FORMAT_NAME = "nnts-axial-boxes"
FORMAT_VERSION = 1
SCHEMA = (
    Path(__file__).parent.parent / "schemas" / "axial_boxes.schema.json"
)  # JSON Schema of the box file
BOX_FORMAT_HELP = f"the JSON Schema {SCHEMA} and examples/boxes_example.json of the repository"


class BoxError(InputError):
    """A box that is empty, inverted or outside its image, or a malformed box file."""


@dataclass(frozen=True, order=True)
class Box:
    """One axial rectangle; bounds inclusive, in voxel indices of the CT grid."""

    slice: int
    xmin: int
    ymin: int
    xmax: int
    ymax: int
    label: str | None = field(default=None, compare=False)
    lesion_id: int | None = field(default=None, compare=False)

    @property
    def area(self) -> int:
        return (self.xmax - self.xmin + 1) * (self.ymax - self.ymin + 1)

    def validate(self, shape_zyx: tuple[int, int, int], where: str = "") -> None:
        """Raise :class:`BoxError` if inverted or not inside an image of ``shape_zyx``."""
        nz, ny, nx = shape_zyx
        prefix = f"{where}: " if where else ""
        if self.xmin > self.xmax or self.ymin > self.ymax:
            raise BoxError(
                f"{prefix}inverted or empty box {self.as_tuple()} (needs xmin<=xmax, ymin<=ymax)"
            )
        if not (0 <= self.slice < nz):
            raise BoxError(
                f"{prefix}box {self.as_tuple()} on slice {self.slice} outside the image (0..{nz - 1})"
            )
        if self.xmin < 0 or self.ymin < 0 or self.xmax >= nx or self.ymax >= ny:
            raise BoxError(
                f"{prefix}box {self.as_tuple()} outside the image (x 0..{nx - 1}, y 0..{ny - 1})"
            )

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.slice, self.xmin, self.ymin, self.xmax, self.ymax)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "") -> "Box":
        try:
            return cls(
                int(d["slice"]),
                int(d["xmin"]),
                int(d["ymin"]),
                int(d["xmax"]),
                int(d["ymax"]),
                None if d.get("label") is None else str(d["label"]),
                None if d.get("lesion_id") is None else int(d["lesion_id"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise BoxError(f"{where}: malformed box entry {d!r} ({e!r})") from e


@dataclass
class BoxSet:
    """All boxes of one case and the CT geometry they refer to."""

    geometry: Geometry
    boxes: list[Box]

    def validate(self, where: str = "") -> None:
        for b in self.boxes:
            b.validate(self.geometry.array_shape, where)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "geometry": self.geometry.to_dict(),
                "boxes": [b.to_dict() for b in sorted(self.boxes)],
            },
            indent=1,
        )

    def save(self, path: str | os.PathLike) -> None:
        self.validate(str(path))
        write_text_atomic(self.to_json(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BoxSet":
        path = Path(path)
        d = read_json_file(path, "box file", BoxError)
        if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
            raise BoxError(
                f"{path}: not an {FORMAT_NAME} file (missing 'format': '{FORMAT_NAME}'); see {BOX_FORMAT_HELP}"
            )
        if d.get("version") != FORMAT_VERSION:
            raise BoxError(f"{path}: unsupported version {d.get('version')!r}")
        if "geometry" not in d:
            flat = [k for k in ("size", "spacing", "origin", "direction") if k in d]
            where = (
                f"the keys {flat} belong inside 'geometry'"
                if flat
                else f"top-level keys found: {sorted(d)}"
            )
            raise BoxError(
                f'{path}: missing key \'geometry\', the CT\'s grid as {{"size", "spacing", "origin", '
                f'"direction"}} ({where}); see {BOX_FORMAT_HELP}'
            )
        try:
            geometry = Geometry.from_dict(d["geometry"])
        except (KeyError, InputError) as e:
            raise BoxError(f"{path}: {e}; see {BOX_FORMAT_HELP}") from e
        boxes = [Box.from_dict(b, str(path)) for b in d.get("boxes", [])]
        bs = cls(geometry, boxes)
        bs.validate(str(path))
        return bs

    def mask(self) -> np.ndarray:
        """Box mask as a uint8 ``[z, y, x]`` array."""
        return box_mask(self.boxes, self.geometry.array_shape)

    def mask_image(self) -> sitk.Image:
        return array_to_image(self.mask(), self.geometry)

    def check_against(self, image: sitk.Image, what: str) -> None:
        """Raise if the boxes refer to another grid than ``image``'s."""
        self.geometry.require_match(Geometry.of(image), what)


def box_mask(boxes: Iterable[Box], shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """Rasterise boxes (validated against ``shape_zyx``) into a uint8 mask."""
    out = np.zeros(shape_zyx, dtype=np.uint8)
    for b in boxes:
        b.validate(shape_zyx)
        out[b.slice, b.ymin : b.ymax + 1, b.xmin : b.xmax + 1] = 1
    return out


def _lesion_boxes_per_slice(labels: np.ndarray, n: int) -> list[Box]:
    boxes = []
    for lesion_id, sl in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        if sl is None:
            continue
        sub = labels[sl] == lesion_id
        z0, y0, x0 = (s.start for s in sl)
        for dz in range(sub.shape[0]):
            plane = sub[dz]
            ys = np.flatnonzero(plane.any(axis=1))
            if ys.size == 0:
                continue
            xs = np.flatnonzero(plane.any(axis=0))
            boxes.append(
                Box(
                    z0 + dz,
                    x0 + int(xs[0]),
                    y0 + int(ys[0]),
                    x0 + int(xs[-1]),
                    y0 + int(ys[-1]),
                    lesion_id=lesion_id,
                )
            )
    return boxes


def _component_boxes_2d(mask: np.ndarray) -> list[Box]:
    boxes = []
    for z in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        lab2d, n = ndimage.label(mask[z], structure=np.ones((3, 3)))
        for i, sl in enumerate(ndimage.find_objects(lab2d), start=1):
            boxes.append(
                Box(int(z), sl[1].start, sl[0].start, sl[1].stop - 1, sl[0].stop - 1, lesion_id=i)
            )
    return boxes


def _lesion_boxes_3d(labels: np.ndarray, n: int) -> list[Box]:
    boxes = []
    for lesion_id, sl in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        if sl is None:
            continue
        for z in range(sl[0].start, sl[0].stop):
            boxes.append(
                Box(
                    z, sl[2].start, sl[1].start, sl[2].stop - 1, sl[1].stop - 1, lesion_id=lesion_id
                )
            )
    return boxes


BoxMode = Literal["lesion", "component2d", "lesion3d"]


def boxes_from_mask(
    mask: np.ndarray,
    mode: BoxMode = "lesion",
    seed: int | np.random.Generator | None = None,
    label: str | None = None,
    annotator: Annotator | None = None,
    spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
) -> list[Box]:
    """Boxes that a radiologist would draw around the tumours of a ``[z, y, x]`` label mask.

    mode ``lesion``: one box per 3-D lesion (26-connected component) per axial slice;
    ``component2d``: one box per 2-D (8-connected) component per slice;
    ``lesion3d``: one 3-D box per lesion, i.e. its full in-plane extent on every slice it spans.
    ``annotator`` draws the annotators' noise (see :mod:`.annotator`; ``spacing_zyx`` in mm sizes it;
    None: exact boxes). Boxes never invert or leave the image.
    """
    mask = np.asarray(mask) > 0
    if mask.ndim != 3:
        raise InputError(f"expected a 3-D mask, got shape {mask.shape}")
    if mode == "component2d":
        boxes, labels = _component_boxes_2d(mask), None
    else:
        labels, n = label_components(mask)
        boxes = (
            _lesion_boxes_per_slice(labels, n) if mode == "lesion" else _lesion_boxes_3d(labels, n)
        )
    if label is not None:
        boxes = [replace(b, label=label) for b in boxes]
    if annotator is not None and not annotator.is_exact:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        if mode == "lesion3d":
            boxes = _annotate_boxes_3d(boxes, annotator, mask.shape, spacing_zyx, rng)
        else:
            boxes = annotate_boxes(
                boxes, annotator, mask.shape, spacing_zyx, rng, labels if mode == "lesion" else None
            )
    return sorted(boxes)


def _annotate_boxes_3d(
    boxes: list[Box],
    annotator: Annotator,
    shape_zyx: tuple[int, int, int],
    spacing_zyx: Sequence[float],
    rng: np.random.Generator,
) -> list[Box]:
    """One 3-D box per lesion is one drawing: its in-plane edges move once, the same on every slice (end slices
    may be left out as in the 2-D model)."""
    per_lesion: dict[int, list[Box]] = {}
    for b in boxes:
        per_lesion.setdefault(b.lesion_id, []).append(b)
    skip = annotator.skipped_slices(rng, {k: [b.slice for b in v] for k, v in per_lesion.items()})
    in_plane = replace(annotator, skip_ends=0.0)
    out = []
    for lesion, group in per_lesion.items():
        moved = annotate_boxes([group[0]], in_plane, shape_zyx, spacing_zyx, rng)[0]
        out += [replace(moved, slice=b.slice) for b in group if (lesion, b.slice) not in skip]
    return out


def boxes_3d(boxes: Sequence[Box], shape_zyx: tuple[int, int, int]) -> list[Box]:
    """Axial 2-D boxes as 3-D ones: each 26-connected group of boxes (a lesion's boxes on adjacent slices) becomes
    its full in-plane extent on every slice it spans (what an annotator drawing one 3-D box per lesion gives)."""
    if not boxes:
        return []
    groups, _ = label_components(box_mask(list(boxes), shape_zyx))
    out = []
    for lesion_id, sl in enumerate(ndimage.find_objects(groups), start=1):
        if sl is None:
            continue
        labels = sorted(
            {b.label for b in boxes if b.label and groups[b.slice, b.ymin, b.xmin] == lesion_id}
        )
        for z in range(sl[0].start, sl[0].stop):
            out.append(
                Box(
                    z,
                    sl[2].start,
                    sl[1].start,
                    sl[2].stop - 1,
                    sl[1].stop - 1,
                    label=labels[0] if labels else None,
                    lesion_id=lesion_id,
                )
            )
    return sorted(out)


def annotate_boxes(
    boxes: list[Box],
    annotator: Annotator,
    shape_zyx: tuple[int, int, int],
    spacing_zyx: Sequence[float],
    rng: np.random.Generator,
    lesion_labels: np.ndarray | None = None,
) -> list[Box]:
    """Apply ``annotator``'s noise to tight boxes; clipped to the image, never inverted.

    With ``lesion_labels`` (the labelled mask the boxes came from) a fractional model never moves
    a box off its lesion: each box keeps the lesion voxel nearest its centre."""
    if not boxes:
        return []
    if annotator.skip_ends:
        per_lesion: dict[int, list[int]] = {}
        for b in boxes:
            per_lesion.setdefault(b.lesion_id if b.lesion_id is not None else -1, []).append(
                b.slice
            )
        skip = annotator.skipped_slices(rng, per_lesion)
        boxes = [
            b
            for b in boxes
            if (b.lesion_id if b.lesion_id is not None else -1, b.slice) not in skip
        ]
    extent = np.array([[b.xmax - b.xmin + 1, b.ymax - b.ymin + 1] for b in boxes])
    moves = annotator.edge_moves(rng, extent, (spacing_zyx[2], spacing_zyx[1]))
    _, ny, nx = shape_zyx
    out = []
    for b, d in zip(boxes, moves):
        xmin, ymin, xmax, ymax = b.xmin + d[0], b.ymin + d[1], b.xmax + d[2], b.ymax + d[3]
        if lesion_labels is not None and not annotator.voxels and b.lesion_id is not None:
            ay, ax = _anchor(
                lesion_labels[b.slice, b.ymin : b.ymax + 1, b.xmin : b.xmax + 1] == b.lesion_id
            )
            ax, ay = ax + b.xmin, ay + b.ymin
            xmin, xmax, ymin, ymax = min(xmin, ax), max(xmax, ax), min(ymin, ay), max(ymax, ay)
        xmin = int(np.clip(xmin, 0, nx - 1))
        ymin = int(np.clip(ymin, 0, ny - 1))
        xmax = int(np.clip(xmax, xmin, nx - 1))
        ymax = int(np.clip(ymax, ymin, ny - 1))
        out.append(replace(b, xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax))
    return out


def _anchor(plane: np.ndarray) -> tuple[int, int]:
    """(y, x) of the ``True`` pixel nearest the plane's centre (the plane's centre if none)."""
    ys, xs = np.nonzero(plane)
    cy, cx = (plane.shape[0] - 1) / 2, (plane.shape[1] - 1) / 2
    if ys.size == 0:
        return int(round(cy)), int(round(cx))
    k = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return int(ys[k]), int(xs[k])


def boxes_from_box_mask(mask: np.ndarray) -> list[Box]:
    """Recover boxes from a box mask; each rectangular 2-D component gives one box.

    Components that are not rectangles (overlapping boxes) are split into rectangles made of
    runs of identical rows, so that ``box_mask(boxes_from_box_mask(m)) == m`` always holds.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise InputError(f"expected a 3-D box mask, got shape {mask.shape}")
    values = np.unique(mask)
    if not np.isin(values, (0, 1)).all():
        raise BoxError(f"a box mask holds only 0 and 1, found values {values[:10].tolist()}")
    boxes = []
    for z in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        lab2d, _ = ndimage.label(mask[z])
        for sl in ndimage.find_objects(lab2d):
            comp = mask[z][sl].astype(bool)
            if comp.all():
                boxes.append(Box(int(z), sl[1].start, sl[0].start, sl[1].stop - 1, sl[0].stop - 1))
            else:
                boxes.extend(_row_run_rectangles(comp, int(z), sl[0].start, sl[1].start))
    return sorted(boxes)


def _row_run_rectangles(comp: np.ndarray, z: int, y0: int, x0: int) -> list[Box]:
    """Exact rectangle cover of a 2-D region: runs per row, merged over consecutive equal rows.

    Hand-written because no library offers an exact rectangle decomposition of a binary image.
    """
    open_runs: dict[tuple[int, int], int] = {}
    boxes = []
    for y in range(comp.shape[0] + 1):
        runs = set()
        if y < comp.shape[0]:
            row = np.concatenate([[False], comp[y], [False]]).astype(np.int8)
            edges = np.flatnonzero(np.diff(row))
            runs = {(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])}
        for run in list(open_runs):
            if run not in runs:
                ystart = open_runs.pop(run)
                boxes.append(Box(z, x0 + run[0], y0 + ystart, x0 + run[1], y0 + y - 1))
        for run in runs:
            open_runs.setdefault(run, y)
    return boxes


def load_box_mask(
    path: str | os.PathLike, geometry: Geometry | None = None
) -> tuple[np.ndarray, Geometry]:
    """Read a box-mask image, check it is binary and (optionally) on ``geometry``."""
    img = read_image(path)
    g = Geometry.of(img)
    if geometry is not None:
        geometry.require_match(g, str(path))
    arr = sitk.GetArrayFromImage(img)
    values = np.unique(arr)
    if not np.isin(values, (0, 1)).all():
        raise BoxError(
            f"{path}: a box mask holds only 0 and 1, found values {values[:10].tolist()}"
        )
    return arr.astype(np.uint8), g
