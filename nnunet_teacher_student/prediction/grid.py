"""Boxes whose own resampling lands on nnU-Net's whole-CT sample positions.

nnU-Net resamples an array of n voxels to m = round(n x spacing / target) voxels and reads output voxel j at input
coordinate (j + 0.5) n / m - 0.5 (skimage's and its own z-resampling's grid mode). A box cut from the CT before
resampling therefore samples at other sub-voxel positions than the whole CT does, unless both of its ends lie on
the whole CT's output voxel borders k x N / M. :func:`align_box` grows a box by a few voxels per side to the ends
that come closest (written here: nnU-Net has no option for it; it is what makes a box's mask agree with the
full-volume mask without resampling the whole CT).
"""
from __future__ import annotations

from typing import Sequence

from ..lungs.cropping import CropBox

#: how far (input voxels) an end may move outwards to reach a better-aligned position
ALIGN_REACH = 8


def resampled_length(n: int, factor: float) -> int:
    """nnU-Net's resampled length of ``n`` voxels for ``factor`` = spacing / target spacing (``compute_new_shape``)."""
    return int(round(factor * n))


def align_axis(start: int, stop: int, length: int, factor: float, reach: int = ALIGN_REACH) -> tuple[int, int, float]:
    """``(start, stop, error)``: the interval grown by at most ``reach`` per end whose ends lie closest to the whole
    axis' output voxel borders and whose own resampled length spans exactly the output voxels between them;
    ``error`` is the largest offset (input voxels) between its sample positions and the whole axis'."""
    total = resampled_length(length, factor)
    s = length / total    # input voxels per output voxel of the whole axis

    def offset(x: int) -> tuple[int, float]:
        k = int(round(x / s))
        return k, abs(x - k * s)

    best = (start, stop, offset(start)[1], offset(stop)[1], 10 ** 9)
    best_cost = (max(best[2], best[3]) if resampled_length(stop - start, factor) ==
                 offset(stop)[0] - offset(start)[0] else float("inf"), 0)
    for a in range(start, max(0, start - reach) - 1, -1):
        ka, ea = offset(a)
        for b in range(stop, min(length, stop + reach) + 1):
            kb, eb = offset(b)
            if resampled_length(b - a, factor) != kb - ka:
                continue     # its own resampling would not span the same output voxels
            cost = (max(ea, eb), (start - a) + (b - stop))
            if cost < best_cost:
                best, best_cost = (a, b, ea, eb, 0), cost
    return best[0], best[1], float(max(best[2], best[3]))


def align_box(box: CropBox, factors: Sequence[float], reach: int = ALIGN_REACH) -> tuple[CropBox, list[float]]:
    """The box grown per axis (z, y, x) by :func:`align_axis`; also each axis' remaining sample offset."""
    start, stop, errors = [], [], []
    for a, b, n, f in zip(box.start, box.stop, box.shape, factors):
        a2, b2, e = align_axis(a, b, n, f, reach)
        start.append(a2)
        stop.append(b2)
        errors.append(e)
    return CropBox(tuple(start), tuple(stop), box.shape, box.name), errors

