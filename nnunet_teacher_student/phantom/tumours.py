"""Lung tumours of the synthetic CT phantom: size sampler, lobulated shapes, placement, rendering.

A tumour is a union of a few randomly oriented ellipsoids whose surface is roughened by a few
random plane waves; it is clipped to the lung so it never leaves it (juxtapleural ones abut the
pleura with a broad flat base). Part-solid tumours have a solid core and a ground-glass halo;
the whole lesion is labelled. Sizes follow the paper's Table 1 per site (real mm).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .anatomy import Grid, Segment

# Table 1 of Fredriksen et al.: tumour diameter [mm], mean and SD (real size)
SITE_DIAMETER_MM: dict[str, tuple[float, float]] = {
    "msd": (37.63, 20.08),
    "nsclc": (63.63, 29.62),
    "lpcd": (48.66, 19.85),
}
DIAMETER_RANGE_MM = (10.0, 120.0)
PLACEMENTS = ("central", "juxtapleural", "vessel")
#: a tumour the lung clips to fewer voxels is dropped: a speck of 2-6 voxels is below what DSC or a box
#: annotator can resolve (teachers "missed" such specks only through resampling to the plans' spacing)
MIN_TUMOUR_VOXELS = 20


def sample_tumour_diameters(rng: np.random.Generator, site: str, n: int) -> np.ndarray:
    """``n`` real-size diameters (mm) from a log-normal with the site's Table 1 mean and SD, clipped."""
    mean, sd = SITE_DIAMETER_MM[site]
    s2 = np.log1p((sd / mean) ** 2)
    d = rng.lognormal(np.log(mean) - s2 / 2, np.sqrt(s2), size=n)
    return np.clip(d, *DIAMETER_RANGE_MM)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


@dataclass
class TumourShape:
    """Lobes (offset xyz, semi-axes, rotation) and surface waves, all relative to the centre (mm)."""

    radius: float
    lobes: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    waves: list[tuple[np.ndarray, float, float]]  # wave vector (rad/mm), phase, amplitude
    part_solid: bool = False
    core_level: float = 0.5
    solid_hu: float = 30.0
    ggo_hu: float = -450.0
    necrosis_hu: float = 0.0

    @property
    def extent(self) -> float:
        return 1.4 * self.radius


def sample_shape(
    rng: np.random.Generator,
    radius: float,
    part_solid: bool,
    solid_hu: tuple[float, float] = (10.0, 50.0),
    wave_amplitude: tuple[float, float] = (0.02, 0.05),
) -> TumourShape:
    lobes = [(np.zeros(3), radius * rng.uniform(0.75, 1.0, 3), _rotation(rng))]
    for _ in range(int(rng.integers(1, 5))):
        v = rng.normal(size=3)
        lobes.append(
            (
                v / np.linalg.norm(v) * radius * rng.uniform(0.25, 0.5),
                radius * rng.uniform(0.35, 0.6, 3),
                _rotation(rng),
            )
        )
    waves = []
    for _ in range(4):
        v = rng.normal(size=3)
        k = v / np.linalg.norm(v) * 2 * np.pi / (radius * rng.uniform(0.5, 1.2))
        waves.append((k, rng.uniform(0, 2 * np.pi), rng.uniform(*wave_amplitude)))
    return TumourShape(
        radius,
        lobes,
        waves,
        part_solid,
        core_level=rng.uniform(0.4, 0.7),
        solid_hu=rng.uniform(*solid_hu),
        ggo_hu=rng.uniform(-600, -300),
        necrosis_hu=rng.uniform(5, 25) if radius > 25 and rng.random() < 0.4 else 0.0,
    )


def shape_level(shape: TumourShape, dx, dy, dz) -> np.ndarray:
    """Implicit level: <= 1 inside the tumour; small values near its core."""
    level = None
    for off, semi, rot in shape.lobes:
        px, py, pz = dx - off[0], dy - off[1], dz - off[2]
        q = sum(
            ((px * rot[0, i] + py * rot[1, i] + pz * rot[2, i]) / semi[i]) ** 2 for i in range(3)
        )
        level = q if level is None else np.minimum(level, q)
    level = np.sqrt(level)
    for k, phase, amp in shape.waves:
        level = level + amp * np.sin(dx * k[0] + dy * k[1] + dz * k[2] + phase)
    return level


@dataclass
class PlacedTumour:
    centre: np.ndarray  # real mm xyz
    shape: TumourShape
    placement: str
    nominal_diameter: float  # real mm, the site's draw (before tumour_scale and fitting)
    sl: tuple[slice, slice, slice] | None = None
    mask: np.ndarray | None = field(default=None, repr=False)  # within sl
    core: np.ndarray | None = field(default=None, repr=False)  # within sl, solid part
    necrotic: np.ndarray | None = field(default=None, repr=False)  # within sl, low-density centre


def rasterise(t: PlacedTumour, grid: Grid, lung: np.ndarray, taken: np.ndarray) -> None:
    """Fill ``t.sl``, ``t.mask`` (tumour ∩ lung, not overlapping earlier tumours) and ``t.core``."""
    e = t.shape.extent
    sl = grid.bbox(t.centre - e, t.centre + e)
    if sl is None:
        t.sl, t.mask, t.core = None, None, None
        return
    x, y, z = grid.axes(sl)
    level = shape_level(t.shape, x - t.centre[0], y - t.centre[1], z - t.centre[2])
    mask = (level <= 1) & lung[sl] & ~taken[sl]
    if not mask.any():  # smaller than a voxel: keep the centre voxel
        k, j, i = grid.index_of(t.centre)
        mask[k - sl[0].start, j - sl[1].start, i - sl[2].start] = (
            lung[k, j, i] and not taken[k, j, i]
        )
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if (
        n > 1
    ):  # clipped by the lung into pieces: one lesion is one connected component, keep the largest
        mask = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    core = mask & (level <= t.shape.core_level) if t.shape.part_solid else mask
    t.sl, t.mask, t.core = sl, mask, core
    t.necrotic = core & (level <= 0.45) if t.shape.necrosis_hu else None


def _candidates(
    dist: np.ndarray,
    lo: float,
    hi: float,
    zmargin: int,
    grid: Grid,
    others: list[PlacedTumour],
    r: float,
) -> np.ndarray:
    """Voxel indices (n, 3) whose distance to the pleura is in [lo, hi], away from other tumours."""
    sub = dist[zmargin : dist.shape[0] - zmargin] if zmargin else dist
    idx = np.argwhere((sub >= lo) & (sub <= hi))
    if idx.size == 0:
        return idx
    idx[:, 0] += zmargin
    pts = np.stack([grid.x[idx[:, 2]], grid.y[idx[:, 1]], grid.z[idx[:, 0]]], axis=1)
    ok = np.ones(len(idx), bool)
    for o in others:
        ok &= np.linalg.norm(pts - o.centre, axis=1) > 1.45 * (r + o.shape.radius) + 3
    return idx[ok]


@dataclass
class TumourPlan:
    """The tumours to place, one entry each: fitted diameter (real mm, what is placed), nominal diameter
    (the site's draw, for the record), part-solid or not, placement; and the shape ranges of the case."""

    diameters: np.ndarray
    nominal: np.ndarray
    part_solid: np.ndarray
    placements: list[str]
    solid_hu: tuple[float, float] = (10.0, 50.0)  # the site's range of solid tumour density
    wave_amplitude: tuple[float, float] = (0.02, 0.05)  # surface roughness (the family's)


def place_tumours(
    rng: np.random.Generator,
    grid: Grid,
    lung: np.ndarray,
    vessels: list[Segment],
    plan: TumourPlan,
) -> list[PlacedTumour]:
    """Find a centre for each tumour of ``plan`` (its ``diameters``, real mm) and rasterise it; shrink it
    when nothing fits.

    central: a voxel of lung left around it if possible, else pleural distance >= 1.25 (0.9) radius;
    juxtapleural: pleural distance 0.35-0.75 radius, so the lung clips it; vessel: centre about one
    radius from a pulmonary vessel, which runs into it."""
    dist = ndimage.distance_transform_edt(lung, sampling=grid.step)
    taken = np.zeros(grid.shape, bool)
    placed: list[PlacedTumour] = []
    step = grid.step
    for d, nom, ps, where in zip(plan.diameters, plan.nominal, plan.part_solid, plan.placements):
        r = d / 2
        centre = None
        for _ in range(16):
            zmargin = int(np.ceil(0.8 * r / step[0]))
            if 2 * zmargin < grid.shape[0]:
                actual = where
                if where == "vessel" and vessels:
                    centre = _near_vessel(rng, grid, dist, vessels, r, zmargin, placed)
                if centre is None:
                    actual = "juxtapleural" if where == "juxtapleural" else "central"
                    clear = 1.1 * r + 0.8 * step.max()  # one voxel of lung left around it
                    tiers = (
                        [(0.35 * r, 0.75 * r)]
                        if actual == "juxtapleural"
                        else [(clear, np.inf), (1.25 * r, np.inf), (0.9 * r, np.inf)]
                    )
                    for lo, hi in tiers:
                        cand = _candidates(dist, lo, hi, zmargin, grid, placed, r)
                        if len(cand):
                            centre = grid.point_of(tuple(cand[rng.integers(len(cand))]))
                            centre = centre + rng.uniform(-0.5, 0.5, 3) * step[::-1]
                            break
            if (
                centre is not None and r < step[0]
            ):  # thinner than a slice: centre it on one so it shows
                k = int(np.argmin(np.abs(grid.z - centre[2])))
                centre[2] = grid.z[k] + rng.uniform(-0.15, 0.15) * step[0]
            if centre is not None:
                break
            r *= 0.85
        if centre is None:
            continue
        t = PlacedTumour(
            centre,
            sample_shape(rng, r, bool(ps), plan.solid_hu, plan.wave_amplitude),
            actual,
            float(nom),
        )
        rasterise(t, grid, lung, taken)
        if t.mask is not None and int(t.mask.sum()) >= MIN_TUMOUR_VOXELS:
            taken[t.sl] |= t.mask
            placed.append(t)
    return placed


def _near_vessel(
    rng,
    grid: Grid,
    dist: np.ndarray,
    vessels: list[Segment],
    r: float,
    zmargin: int,
    others: list[PlacedTumour],
) -> np.ndarray | None:
    zlo, zhi = grid.z[zmargin], grid.z[grid.shape[0] - 1 - zmargin]
    for _ in range(25):
        p0, p1, r0, _r1 = vessels[rng.integers(len(vessels))]
        p = p0 + rng.uniform(0.2, 0.8) * (p1 - p0)
        d = p1 - p0
        v = np.cross(d, rng.normal(size=3))
        c = p + v / np.linalg.norm(v) * (r * rng.uniform(0.6, 0.95) + r0)
        if not zlo <= c[2] <= zhi:
            continue
        k, j, i = grid.index_of(c)
        if dist[k, j, i] < 0.6 * r:
            continue
        if all(np.linalg.norm(c - o.centre) > 1.45 * (r + o.shape.radius) + 3 for o in others):
            return c
    return None
