"""Boxes whose own resampling lands on nnU-Net's whole-CT sample positions.

nnU-Net resamples an array of n voxels to m = round(n x spacing / target) voxels and reads output voxel j at input
coordinate (j + 0.5) n / m - 0.5 (skimage's and its own z-resampling's grid mode). A box cut from the CT before
resampling therefore samples at other sub-voxel positions than the whole CT does, unless both of its ends lie on
the whole CT's output voxel borders k x N / M. :func:`align_box` grows a box by a few voxels per side to the ends
that come closest (written here: nnU-Net has no option for it). Measured (BENCHMARKS.md, prediction speed runs 3-5):
most of the difference from the full-volume mask comes from where the sliding window's tiles lie; with models that
work on the CT's field of view the aligned box agreed as well or better at the same tile count, so ``nnts predict``
aligns by default (``PredictSettings(align_grid=False)`` turns it off).
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..lungs.cropping import CropBox

#: how far (input voxels) an end may move outwards to reach a better-aligned position
ALIGN_REACH = 8
#: sample offsets (input voxels) below this count as aligned (a spline of a smooth CT barely changes over 0.1 voxel)
ALIGN_TOL = 0.1


def resampled_length(n: int, factor: float) -> int:
    """nnU-Net's resampled length of ``n`` voxels for ``factor`` = spacing / target spacing (``compute_new_shape``)."""
    return int(round(factor * n))


def align_axis(
    start: int,
    stop: int,
    length: int,
    factor: float,
    reach: int = ALIGN_REACH,
    steps: Callable[[int], int] | None = None,
    tol: float = ALIGN_TOL,
) -> tuple[int, int, float]:
    """``(start, stop, error)``: the interval grown by at most ``reach`` per end whose ends lie closest to the whole
    axis' output voxel borders and whose own resampled length spans exactly the output voxels between them;
    ``error`` is the largest offset (input voxels) between its sample positions and the whole axis'.
    ``steps``: sliding-window positions along the axis for a resampled length; growing never adds one (a row of
    tiles costs more than the alignment gains), and among the ends with the fewest the best aligned is taken
    (offsets under ``tol`` count as equal, then the least growth)."""
    total = resampled_length(length, factor)
    s = length / total  # input voxels per output voxel of the whole axis
    count = steps or (lambda m: 0)

    def offset(x: int) -> tuple[int, float]:
        k = int(round(x / s))
        return k, abs(x - k * s)

    best, best_cost = None, None
    for a in range(start, max(0, start - reach) - 1, -1):
        ka, ea = offset(a)
        for b in range(stop, min(length, stop + reach) + 1):
            kb, eb = offset(b)
            if resampled_length(b - a, factor) != kb - ka:
                continue  # its own resampling would not span the same output voxels
            e = max(ea, eb)
            cost = (count(kb - ka), e > tol, e, (start - a) + (b - stop))
            if best_cost is None or cost < best_cost:
                best, best_cost = (a, b, e), cost
    if best is None:  # no end within reach spans whole output voxels: the interval as it is
        return start, stop, float(max(offset(start)[1], offset(stop)[1]))
    return best[0], best[1], float(best[2])


def align_box(
    box: CropBox,
    factors: Sequence[float],
    reach: int = ALIGN_REACH,
    steps: Sequence[Callable[[int], int]] | None = None,
) -> tuple[CropBox, list[float]]:
    """The box grown per axis (z, y, x) by :func:`align_axis`; also each axis' remaining sample offset."""
    start, stop, errors = [], [], []
    for axis, (a, b, n, f) in enumerate(zip(box.start, box.stop, box.shape, factors)):
        a2, b2, e = align_axis(a, b, n, f, reach, steps[axis] if steps else None)
        start.append(a2)
        stop.append(b2)
        errors.append(e)
    return CropBox(tuple(start), tuple(stop), box.shape, box.name), errors
