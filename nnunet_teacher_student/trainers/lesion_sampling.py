"""Lesion-balanced, off-centre foreground patches for the box teacher.

nnU-Net's loader centres a foreground patch on a random voxel of ``properties['class_locations']``:
large lesions win (uniform over voxels) and the tumour always sits in the patch centre, so the
centre, not the box, tells a teacher where the tumour is. Our datasets rewrite the class locations
of each loaded sample to one voxel of a lesion chosen uniformly, moved by a random offset of up to
half the final patch: the loader (nnU-Net's own) then places that lesion anywhere in the patch,
sometimes with its box at the patch border. Only ``load_case`` changes; the loader is untouched.
"""

from __future__ import annotations

import zlib

import numpy as np
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2, nnUNetDatasetNumpy

from ..core.components import label_components

MAX_POINTS_PER_LESION = 4096


def lesion_points(seg: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Per lesion (26-connected component of ``seg > 0``), up to 4096 of its voxel indices ``(n, 3)``."""
    labels, n = label_components(np.asarray(seg)[0] > 0 if seg.ndim == 4 else np.asarray(seg) > 0)
    out = []
    for i in range(1, n + 1):
        idx = np.argwhere(labels == i)
        if len(idx) > MAX_POINTS_PER_LESION:
            idx = idx[rng.choice(len(idx), MAX_POINTS_PER_LESION, replace=False)]
        out.append(idx)
    return out


def balanced_location(
    lesions: list[np.ndarray], max_offset: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One ``(1, 4)`` class-location row: a voxel of a uniformly chosen lesion plus a random offset. A 2-D patch
    (``max_offset`` of length 2) moves the voxel in-plane only: nnU-Net's 2-D loader takes its slice."""
    pts = lesions[int(rng.integers(len(lesions)))]
    voxel = pts[int(rng.integers(len(pts)))]
    max_offset = np.concatenate([np.zeros(len(voxel) - len(max_offset), int), max_offset])
    offset = np.array([rng.integers(-m, m + 1) for m in max_offset])
    return np.concatenate([[0], voxel + offset])[None].astype(np.int64)


class LesionBalancedMixin:
    """``load_case`` with lesion-uniform, off-centre foreground locations (set ``patch_size`` first)."""

    patch_size: tuple[int, ...] | None = None

    def _lesions(self, identifier: str, seg: np.ndarray) -> list[np.ndarray]:
        cache = self.__dict__.setdefault("_lesion_cache", {})
        if identifier not in cache:
            cache[identifier] = lesion_points(
                seg, np.random.default_rng(zlib.crc32(identifier.encode()))
            )
        return cache[identifier]

    def load_case(self, identifier):
        data, seg, seg_prev, properties = super().load_case(identifier)
        lesions = self._lesions(identifier, np.asarray(seg))
        if lesions and self.patch_size is not None:
            max_offset = np.maximum(np.asarray(self.patch_size) // 2 - 1, 0)
            # the global numpy generator: nnU-Net's loader draws from it too, so NNTS_SEED fixes both
            rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
            loc = balanced_location(lesions, max_offset, rng)
            properties = dict(properties)
            properties["class_locations"] = {k: loc for k in properties["class_locations"]}
        return data, seg, seg_prev, properties


class LesionBalancedBlosc2(LesionBalancedMixin, nnUNetDatasetBlosc2):
    pass


class LesionBalancedNumpy(LesionBalancedMixin, nnUNetDatasetNumpy):
    pass


def lesion_balanced(dataset_class: type) -> type:
    """Our lesion-balanced variant of an nnU-Net dataset class (module-level classes: they pickle)."""
    for base, ours in (
        (nnUNetDatasetBlosc2, LesionBalancedBlosc2),
        (nnUNetDatasetNumpy, LesionBalancedNumpy),
    ):
        if issubclass(dataset_class, base):
            return ours
    raise TypeError(f"no lesion-balanced variant of {dataset_class.__name__}")
