"""Sliding-window tiles far from the lungs are not predicted: nnU-Net's predictor with its tile list filtered.

nnU-Net's ``nnUNetPredictor`` takes its tiles from ``_internal_get_sliding_window_slicers``; the subclass here
keeps the tiles that come within a margin of a mask (the lungs) and drops the rest. Voxels that no kept tile
covers leave nnU-Net's Gaussian average as 0 / 0 and get a background logit. Every tile that covers a voxel
within the margin is kept, so there the logits equal nnU-Net's full tiling exactly (written here because
nnU-Net has no region-of-interest option for its sliding window).

With ``crop`` the subclass also cuts nnU-Net's preprocessed (resampled, normalised) array to the mask's box grown
by the margin before its sliding window runs, and puts the box's logits back into a background array of the
whole grid: the box then has nnU-Net's own resampling of the whole CT (no sub-voxel shift, as cropping the CT
before resampling has), and its tiles are laid over the box instead of the whole volume.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

#: the logit given to voxels that no tile predicted (background wins by this much after the nonlinearity)
UNPREDICTED_LOGIT = 20.0


class TileMask:
    """Where the sliding window must run: a boolean mask on the grid of the array handed to the predictor
    (z, y, x) and a margin in voxels per axis; a tile runs when the mask has a voxel within the margin."""

    def __init__(
        self,
        mask: np.ndarray,
        grow_vox: Sequence[int],
        expected_shape: Sequence[int] | None = None,
        skip: bool = True,
    ):
        self.mask = np.asarray(mask, bool)
        self.grow = tuple(int(g) for g in grow_vox)
        #: False: every tile runs (the mask then only gives the box that a cropping predictor cuts out)
        self.skip = bool(skip)
        #: the shape nnU-Net's preprocessing should give (resampled, nothing cropped); another shape means that
        #: nnU-Net cropped the array to its non-zero part, and then every tile runs
        self.expected_shape = (
            None if expected_shape is None else tuple(int(s) for s in expected_shape)
        )

    @classmethod
    def around(cls, mask: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float) -> "TileMask":
        return cls(mask, [math.ceil(margin_mm / float(s) - 1e-9) for s in spacing_zyx])

    def transposed(self, axes: Sequence[int]) -> "TileMask":
        """The same mask in nnU-Net's axis order (its plans' ``transpose_forward``)."""
        return TileMask(
            self.mask.transpose(axes),
            [self.grow[a] for a in axes],
            None if self.expected_shape is None else [self.expected_shape[a] for a in axes],
            self.skip,
        )

    def box_on(self, shape: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(start, stop) on the mask's grid resampled to ``shape`` of the mask's bounding box grown by the margin
        (one voxel of slack per side, as :meth:`touches`); the whole array for an empty mask."""
        start, stop = [], []
        for axis, (n_new, n_old, g) in enumerate(zip(shape, self.mask.shape, self.grow)):
            hit = np.flatnonzero(
                self.mask.any(axis=tuple(a for a in range(self.mask.ndim) if a != axis))
            )
            if hit.size == 0:
                return tuple(0 for _ in shape), tuple(int(n) for n in shape)
            r = n_old / max(1, n_new)
            start.append(max(0, math.floor(max(0, int(hit[0]) - g - 1) / r)))
            stop.append(min(int(n_new), math.ceil(min(n_old, int(hit[-1]) + 1 + g + 1) / r)))
        return tuple(start), tuple(stop)

    def touches(self, start: Sequence[int], stop: Sequence[int], shape: Sequence[int]) -> bool:
        """Does the tile ``[start, stop)`` of an array of ``shape`` (the mask's grid resampled to ``shape``) come
        within the margin of the mask? Mapped back to the mask's grid with one voxel of slack per side."""
        box = []
        for a, b, n_new, n_old, g in zip(start, stop, shape, self.mask.shape, self.grow):
            r = n_old / max(1, n_new)
            box.append(
                slice(
                    max(0, math.floor(max(0, a) * r) - g - 1),
                    min(n_old, math.ceil(min(n_new, b) * r) + g + 1),
                )
            )
        return bool(self.mask[tuple(box)].any())

    def keeps(
        self,
        start: Sequence[int],
        stop: Sequence[int],
        padded: Sequence[int],
        shape: Sequence[int],
        offset: Sequence[int] | None = None,
        whole: Sequence[int] | None = None,
    ) -> bool:
        """:meth:`touches` for a tile ``[start, stop)`` of nnU-Net's array padded from ``shape`` to ``padded``;
        that array is the box at ``offset`` of the resampled grid of shape ``whole`` (default: all of it)."""
        if not self.skip:
            return True
        lo = [
            (int(p) - int(s)) // 2 - int(o)
            for p, s, o in zip(padded, shape, offset or [0] * len(shape))
        ]  # pad_nd_image centres the array; the box's offset
        return self.touches(
            [a - o for a, o in zip(start, lo)], [b - o for b, o in zip(stop, lo)], whole or shape
        )


def count_tiles(
    shape: Sequence[int],
    patch: Sequence[int],
    step_size: float,
    mask: TileMask | None = None,
    crop: bool = False,
) -> tuple[int, int]:
    """(tiles that run, all tiles) of nnU-Net's sliding window over an array of ``shape`` (already resampled):
    its own step computation on the array padded to the patch; with ``mask``, the tiles it keeps; with ``crop``,
    over the mask's grown box only (as :func:`tile_skipping_predictor` does with ``crop``)."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    whole = [int(s) for s in shape]
    offset = [0] * len(whole)
    if mask is not None and crop:
        offset, stop = mask.box_on(whole)
        shape = [b - a for a, b in zip(offset, stop)]
    patch = [int(p) for p in patch]
    padded = [max(int(s), p) for s, p in zip(shape, patch)]
    steps = compute_steps_for_sliding_window(tuple(padded), tuple(patch), step_size)
    total = int(np.prod([len(s) for s in steps]))
    if mask is None:
        return total, total
    kept = sum(
        mask.keeps(st, [a + p for a, p in zip(st, patch)], padded, shape, offset, whole)
        for st in itertools.product(*steps)
    )
    return kept, total


def tile_skipping_predictor(**kwargs):
    """An ``nnUNetPredictor`` whose ``tile_mask`` (a :class:`TileMask` on the grid of the next array it is given,
    None: every tile) limits its sliding window, over the mask's grown box only when ``crop`` is set;
    ``tiles_run`` / ``tiles_total`` count the tiles."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    class TileSkippingPredictor(nnUNetPredictor):
        tile_mask: TileMask | None = None
        crop = False
        tiles_run = tiles_total = 0
        untiled_calls = (
            0  # calls where the mask could not be used (nnU-Net cropped the array): every tile ran
        )
        #: where the array being tiled sits: (its shape before nnU-Net pads it, offset in the whole grid, whole grid)
        _frame: tuple | None = None

        def predict_sliding_window_return_logits(self, input_image):
            whole = tuple(int(s) for s in input_image.shape[1:])
            self._frame = (whole, (0,) * len(whole), whole)
            mask = self.tile_mask
            if mask is None or not self.crop or not self._mask_fits(whole):
                logits = super().predict_sliding_window_return_logits(input_image)
                if mask is not None:
                    fill_unpredicted(logits, self.label_manager.has_regions)
                return logits
            start, stop = mask.box_on(whole)
            box = tuple(slice(a, b) for a, b in zip(start, stop))
            self._frame = (tuple(b - a for a, b in zip(start, stop)), start, whole)
            inside = super().predict_sliding_window_return_logits(input_image[(slice(None), *box)])
            fill_unpredicted(inside, self.label_manager.has_regions)
            logits = background_logits(
                (inside.shape[0], *whole), inside.dtype, self.label_manager.has_regions
            )
            logits[(slice(None), *box)] = inside
            return logits

        def _mask_fits(self, shape) -> bool:
            return len(shape) == 3 and self.tile_mask.expected_shape in (None, tuple(shape))

        def _internal_get_sliding_window_slicers(self, image_size):
            slicers = super()._internal_get_sliding_window_slicers(image_size)
            self.tiles_total += len(slicers)
            mask = self.tile_mask
            if mask is None:
                pass
            elif (
                self._frame is None
                or not self._mask_fits(self._frame[2])
                or not all(isinstance(s, slice) for s in slicers[0][1:])
            ):
                self.untiled_calls += 1
            else:
                shape, offset, whole = self._frame
                slicers = [
                    sl
                    for sl in slicers
                    if mask.keeps(
                        [s.start for s in sl[1:]],
                        [s.stop for s in sl[1:]],
                        image_size,
                        shape,
                        offset,
                        whole,
                    )
                ]
            self.tiles_run += len(slicers)
            return slicers

    return TileSkippingPredictor(**kwargs)


def background_logits(shape: Sequence[int], dtype, has_regions: bool):
    """Logits of ``shape`` (channels first) that say background everywhere."""
    import torch

    logits = torch.full(tuple(shape), -UNPREDICTED_LOGIT, dtype=dtype)
    if not has_regions:
        logits[0] = UNPREDICTED_LOGIT
    return logits


def fill_unpredicted(logits, has_regions: bool) -> None:
    """In place: voxels no tile reached (NaN after nnU-Net's division by zero weight) become background."""
    import torch

    hole = torch.isnan(logits[0])
    if not bool(hole.any()):
        return
    if has_regions:  # sigmoid per region: every region off
        logits[:, hole] = -UNPREDICTED_LOGIT
    else:  # softmax over labels: label 0 wins
        logits[0][hole] = UNPREDICTED_LOGIT
        logits[1:, hole] = -UNPREDICTED_LOGIT
