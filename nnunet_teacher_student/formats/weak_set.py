"""On-disk layout of a weak set (CTs with axial boxes) and of a held-out test set.

::

    WEAK_DIR/
      images/<case>.nii.gz       CT in HU
      boxes/<case>.json          BoxSet (boxes + CT geometry)
      boxmasks/<case>.nii.gz     uint8 box mask, CT geometry
      labels/<case>.nii.gz       optional: true tumour mask, only known for phantoms/scenarios
      cases.json                 optional: per-case metadata (site, patient, ...)

A test set uses ``images/`` and ``labels/`` only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from ..core.errors import InputError
from ..core.files import write_text_atomic
from ..core.geometry import Geometry, read_header, read_image, write_image_atomic
from .boxes import BoxSet, load_box_mask
from .images import IMAGE_SUFFIX


@dataclass(frozen=True)
class WeakSet:
    """Paths of a weak set; methods read and write one case at a time."""

    root: Path
    labels_dir: Path | None = (
        None  # the true masks, when not in ``labels/`` (pipeline config ``weak_labels``)
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def boxes(self) -> Path:
        return self.root / "boxes"

    @property
    def boxmasks(self) -> Path:
        return self.root / "boxmasks"

    @property
    def labels(self) -> Path:
        return Path(self.labels_dir) if self.labels_dir else self.root / "labels"

    def image_path(self, case: str) -> Path:
        return self.images / f"{case}{IMAGE_SUFFIX}"

    def boxes_path(self, case: str) -> Path:
        return self.boxes / f"{case}.json"

    def boxmask_path(self, case: str) -> Path:
        return self.boxmasks / f"{case}{IMAGE_SUFFIX}"

    def label_path(self, case: str) -> Path:
        return self.labels / f"{case}{IMAGE_SUFFIX}"

    def case_ids(self) -> list[str]:
        """Cases that have both an image and a box file, sorted."""
        if not self.images.is_dir():
            raise InputError(f"{self.images}: not a weak set (missing images/ folder)")
        ids = sorted(
            p.name[: -len(IMAGE_SUFFIX)]
            for p in self.images.glob(f"*{IMAGE_SUFFIX}")
            if not p.name.startswith(".")
        )
        missing = [c for c in ids if not self.boxes_path(c).is_file()]
        if missing:
            raise InputError(f"{self.boxes}: no box file for case(s) {missing[:5]}")
        return ids

    def has_labels(self, case: str) -> bool:
        return self.label_path(case).is_file()

    def read_case(self, case: str) -> tuple[sitk.Image, BoxSet]:
        """CT and its boxes, after checking that the boxes refer to this CT's grid."""
        image = read_image(self.image_path(case))
        boxset = BoxSet.load(self.boxes_path(case))
        boxset.check_against(image, str(self.boxes_path(case)))
        return image, boxset

    def check_case(self, case: str) -> None:
        """The cheap part of :meth:`read_case` (image header, box file, their geometry): finds the usual
        mistakes in a whole weak set before a long job writes anything."""
        boxset = BoxSet.load(self.boxes_path(case))
        boxset.geometry.require_match(
            read_header(self.image_path(case)), str(self.boxes_path(case))
        )

    def read_boxmask(self, case: str, geometry: Geometry | None = None):
        return load_box_mask(self.boxmask_path(case), geometry)

    def write_case(
        self, case: str, image: sitk.Image, boxset: BoxSet, label: sitk.Image | None = None
    ) -> None:
        """Write a case atomically file by file; the image is written last so that
        :meth:`case_ids` never lists a half-written case."""
        boxset.check_against(image, f"case {case}")
        if label is not None:
            Geometry.of(image).require_match(Geometry.of(label), f"label of case {case}")
            write_image_atomic(label, self.label_path(case))
        boxset.save(self.boxes_path(case))
        write_image_atomic(boxset.mask_image(), self.boxmask_path(case))
        write_image_atomic(image, self.image_path(case))

    def write_metadata(self, meta: dict[str, dict]) -> None:
        write_text_atomic(json.dumps(meta, indent=1, sort_keys=True), self.root / "cases.json")

    def metadata(self) -> dict[str, dict]:
        p = self.root / "cases.json"
        return json.loads(p.read_text()) if p.is_file() else {}


def is_weak_set(path: str | os.PathLike) -> bool:
    return (Path(path) / "images").is_dir() and (Path(path) / "boxes").is_dir()
