"""Sliding-window tiles far from the lungs are not predicted: nnU-Net's predictor with its tile list filtered.

nnU-Net's ``nnUNetPredictor`` takes its tiles from ``_internal_get_sliding_window_slicers``; the subclass here
keeps the tiles that come within a margin of a mask (the lungs) and drops the rest. Voxels that no kept tile
covers leave nnU-Net's Gaussian average as 0 / 0 and get a background logit. Every tile that covers a voxel
within the margin is kept, so there the logits equal nnU-Net's full tiling exactly (written here because
nnU-Net has no region-of-interest option for its sliding window).
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

    def __init__(self, mask: np.ndarray, grow_vox: Sequence[int], expected_shape: Sequence[int] | None = None):
        self.mask = np.asarray(mask, bool)
        self.grow = tuple(int(g) for g in grow_vox)
        #: the shape nnU-Net's preprocessing should give (resampled, nothing cropped); another shape means that
        #: nnU-Net cropped the array to its non-zero part, and then every tile runs
        self.expected_shape = None if expected_shape is None else tuple(int(s) for s in expected_shape)

    @classmethod
    def around(cls, mask: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float) -> "TileMask":
        return cls(mask, [math.ceil(margin_mm / float(s) - 1e-9) for s in spacing_zyx])

    def transposed(self, axes: Sequence[int]) -> "TileMask":
        """The same mask in nnU-Net's axis order (its plans' ``transpose_forward``)."""
        return TileMask(self.mask.transpose(axes), [self.grow[a] for a in axes],
                        None if self.expected_shape is None else [self.expected_shape[a] for a in axes])

    def touches(self, start: Sequence[int], stop: Sequence[int], shape: Sequence[int]) -> bool:
        """Does the tile ``[start, stop)`` of an array of ``shape`` (the mask's grid resampled to ``shape``) come
        within the margin of the mask? Mapped back to the mask's grid with one voxel of slack per side."""
        box = []
        for a, b, n_new, n_old, g in zip(start, stop, shape, self.mask.shape, self.grow):
            r = n_old / max(1, n_new)
            box.append(slice(max(0, math.floor(max(0, a) * r) - g - 1),
                             min(n_old, math.ceil(min(n_new, b) * r) + g + 1)))
        return bool(self.mask[tuple(box)].any())

    def keeps(self, start: Sequence[int], stop: Sequence[int], padded: Sequence[int], shape: Sequence[int]) -> bool:
        """:meth:`touches` for a tile ``[start, stop)`` of nnU-Net's array padded from ``shape`` to ``padded``."""
        lo = [(int(p) - int(s)) // 2 for p, s in zip(padded, shape)]   # where nnU-Net's pad_nd_image puts it
        return self.touches([a - o for a, o in zip(start, lo)], [b - o for b, o in zip(stop, lo)], shape)


def count_tiles(shape: Sequence[int], patch: Sequence[int], step_size: float,
                mask: TileMask | None = None) -> tuple[int, int]:
    """(tiles that run, all tiles) of nnU-Net's sliding window over an array of ``shape`` (already resampled):
    its own step computation on the array padded to the patch; with ``mask``, the tiles it keeps."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    patch = [int(p) for p in patch]
    padded = [max(int(s), p) for s, p in zip(shape, patch)]
    steps = compute_steps_for_sliding_window(tuple(padded), tuple(patch), step_size)
    total = int(np.prod([len(s) for s in steps]))
    if mask is None:
        return total, total
    kept = sum(mask.keeps(st, [a + p for a, p in zip(st, patch)], padded, shape)
               for st in itertools.product(*steps))
    return kept, total


def tile_skipping_predictor(**kwargs):
    """An ``nnUNetPredictor`` whose ``tile_mask`` (a :class:`TileMask` on the grid of the next array it is given,
    None: every tile) limits its sliding window; ``tiles_run`` / ``tiles_total`` count the tiles."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    class TileSkippingPredictor(nnUNetPredictor):
        tile_mask: TileMask | None = None
        tiles_run = tiles_total = 0
        untiled_calls = 0   # calls where the mask could not be used (nnU-Net cropped the array): every tile ran
        _shape: tuple[int, ...] | None = None   # the preprocessed array's shape before nnU-Net pads it

        def predict_sliding_window_return_logits(self, input_image):
            self._shape = tuple(int(s) for s in input_image.shape[1:])
            logits = super().predict_sliding_window_return_logits(input_image)
            if self.tile_mask is not None:
                fill_unpredicted(logits, self.label_manager.has_regions)
            return logits

        def _internal_get_sliding_window_slicers(self, image_size):
            slicers = super()._internal_get_sliding_window_slicers(image_size)
            self.tiles_total += len(slicers)
            mask = self.tile_mask
            if mask is None:
                pass
            elif self._shape is None or len(image_size) != 3 or mask.expected_shape not in (None, self._shape) \
                    or not all(isinstance(s, slice) for s in slicers[0][1:]):
                self.untiled_calls += 1
            else:
                slicers = [sl for sl in slicers if mask.keeps([s.start for s in sl[1:]], [s.stop for s in sl[1:]],
                                                              image_size, self._shape)]
            self.tiles_run += len(slicers)
            return slicers

    return TileSkippingPredictor(**kwargs)


def fill_unpredicted(logits, has_regions: bool) -> None:
    """In place: voxels no tile reached (NaN after nnU-Net's division by zero weight) become background."""
    import torch

    hole = torch.isnan(logits[0])
    if not bool(hole.any()):
        return
    if has_regions:     # sigmoid per region: every region off
        logits[:, hole] = -UNPREDICTED_LOGIT
    else:               # softmax over labels: label 0 wins
        logits[0][hole] = UNPREDICTED_LOGIT
        logits[1:, hole] = -UNPREDICTED_LOGIT
