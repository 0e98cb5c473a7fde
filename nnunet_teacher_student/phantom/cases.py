"""Synthetic chest-CT phantoms with lung tumours, one case at a time.

:func:`generate_case` draws one CT (int16 HU), its tumour label, its true lung mask and metadata,
deterministically from a seed. The anatomy is a real-size chest shrunk by ``scale`` while voxel
spacings stay scanner-like, so volumes stay small enough for CPU runs. Cases come from three
"sites" mimicking the paper's datasets (MSD-Lung, NSCLC-Radiomics, Lung-PET-CT-Dx): tumour sizes
follow its Table 1; slice thickness, noise, blur, the share of part-solid and of juxtapleural tumours and the
solid tumours' density differ per site."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..core.errors import InputError
from ..core.geometry import Geometry, array_to_image
from .anatomy import (
    AIRWAY,
    BONE,
    FAT,
    LUNG,
    SOFT,
    TUMOUR_GGO,
    TUMOUR_SOLID,
    VESSEL,
    Anatomy,
    Grid,
    aorta_segments,
    airway_segments,
    body_layers,
    bone_hu,
    lung_inside,
    sample_anatomy,
    tube_occupancy,
    vessel_segments,
)
from .families import (
    add_consolidation,
    add_emphysema,
    add_tumour_texture,
    get_family,
    mixture_diameters,
)
from .tumours import (
    DIAMETER_RANGE_MM,
    PLACEMENTS,
    PlacedTumour,
    TumourPlan,
    place_tumours,
    sample_tumour_diameters,
)


SITE_NAMES = ("msd", "nsclc", "lpcd")


@dataclass(frozen=True)
class SiteProfile:
    """What differs between the three source datasets (spacing ranges are fractions of the configured ones):
    acquisition (spacing, noise, blur) and the tumours (count, part-solid and juxtapleural shares, contrast)."""

    name: str
    n_tumour_probs: tuple[float, float, float, float]  # P(0), P(1), P(2), P(3) tumours
    xy_frac: tuple[float, float]  # in-plane spacing, part of the range
    z_modes: tuple[tuple[float, float, float], ...]  # (weight, lo, hi) parts of the slice range
    noise_hu: tuple[float, float]
    blur_px: tuple[float, float]
    part_solid_prob: float
    placement_probs: tuple[float, float, float] = (
        0.45,
        0.3,
        0.25,
    )  # central, juxtapleural, next to a vessel
    solid_hu: tuple[float, float] = (10.0, 50.0)  # solid tumour tissue (contrast)


SITES: dict[str, SiteProfile] = {
    # MSD-Lung: thin-slice diagnostic CT, mostly one tumour, smallest tumours, mostly solid and central
    "msd": SiteProfile(
        "msd",
        (0.08, 0.8, 0.1, 0.02),
        (0.0, 1.0),
        ((1.0, 0.0, 0.4),),
        (10, 25),
        (0.4, 0.65),
        0.1,
        (0.6, 0.15, 0.25),
        (25.0, 60.0),
    ),
    # NSCLC-Radiomics: ~1 mm pixels, mostly 3 mm slices, larger tumours (+ nodes), often on the chest wall
    "nsclc": SiteProfile(
        "nsclc",
        (0.05, 0.7, 0.2, 0.05),
        (0.5, 1.0),
        ((0.85, 0.45, 0.55), (0.15, 0.0, 0.4)),
        (15, 35),
        (0.5, 0.75),
        0.25,
        (0.3, 0.5, 0.2),
        (0.0, 40.0),
    ),
    # Lung-PET-CT-Dx: mixed scanners, slices 1-5 mm, noisier low-dose PET-CT, more part-solid, lower contrast
    "lpcd": SiteProfile(
        "lpcd",
        (0.1, 0.62, 0.22, 0.06),
        (0.0, 1.0),
        ((0.5, 0.0, 0.4), (0.3, 0.4, 0.6), (0.2, 0.9, 1.0)),
        (20, 50),
        (0.4, 0.75),
        0.45,
        (0.35, 0.35, 0.3),
        (-30.0, 30.0),
    ),
}


@dataclass(frozen=True)
class PhantomConfig:
    """Anatomy scale, spacing ranges (mm) and the size limits (voxels) that coverage is fitted to."""

    scale: float = 0.18
    spacing_xy: tuple[float, float] = (0.6, 1.0)
    spacing_z: tuple[float, float] = (1.0, 5.0)
    inplane_px: tuple[int, int] = (64, 112)
    slices: tuple[int, int] = (16, 48)
    tumour_scale: float = 1.0  # extra tumour enlargement on top of ``scale``
    family: str = "standard"  # the population (``families.FAMILIES``): standard, or copd

    def validate(self) -> "PhantomConfig":
        if not 0 < self.scale <= 1:
            raise InputError(f"anatomy scale must be in (0, 1], got {self.scale}")
        for name in ("spacing_xy", "spacing_z"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise InputError(f"{name} must be a range 0 < min <= max, got {(lo, hi)}")
        for name in ("inplane_px", "slices"):
            lo, hi = getattr(self, name)
            if not 4 <= lo <= hi:
                raise InputError(f"{name} must be a range 4 <= min <= max, got {(lo, hi)}")
        if not 0 < self.tumour_scale <= 4:
            raise InputError(f"tumour_scale must be in (0, 4], got {self.tumour_scale}")
        get_family(self.family)
        return self


PRESETS: dict[str, PhantomConfig] = {
    "default": PhantomConfig(),
    # tumour_scale 3: median tumour ~140 voxels (1.5 gave 26), so DSC measures shape, not one boundary voxel
    "tiny": PhantomConfig(
        scale=0.09, spacing_z=(1.0, 2.0), inplane_px=(32, 48), slices=(16, 24), tumour_scale=3.0
    ),
}


def make_config(
    preset: str = "default", scale: float | None = None, **overrides: Any
) -> PhantomConfig:
    """A preset, optionally with another anatomy scale (size limits follow it) and field overrides."""
    if preset not in PRESETS:
        raise InputError(f"unknown phantom preset {preset!r} (choose from {sorted(PRESETS)})")
    cfg = PRESETS[preset]
    if scale is not None and scale != cfg.scale:
        f = scale / cfg.scale
        lim = {
            k: tuple(max(4, int(round(v * f))) for v in getattr(cfg, k))
            for k in ("inplane_px", "slices")
        }
        cfg = replace(cfg, scale=scale, **lim)
    unknown = set(overrides) - set(PhantomConfig.__dataclass_fields__)
    if unknown:
        raise InputError(f"unknown phantom option(s) {sorted(unknown)}")
    return replace(
        cfg, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    ).validate()


@dataclass
class PhantomCase:
    """One synthetic case: CT (int16 HU), tumour label (uint8 0/1), true lung mask (uint8, tumours included),
    metadata, and the tissue map (uint8 codes of :mod:`.anatomy`, numpy z, y, x)."""

    ct: sitk.Image
    label: sitk.Image
    lungs: sitk.Image
    info: dict
    tissues: np.ndarray = field(repr=False)


def _frac(rng: np.random.Generator, rng_range: tuple[float, float], lo: float, hi: float) -> float:
    return rng_range[0] + rng.uniform(lo, hi) * (rng_range[1] - rng_range[0])


def _sample_grid(
    rng: np.random.Generator, an: Anatomy, cfg: PhantomConfig, site: SiteProfile
) -> tuple[Grid, tuple[float, float, float]]:
    """Spacing drawn per site, field of view around the body, z coverage fitted to the slice limits."""
    s = cfg.scale
    sxy = _frac(rng, cfg.spacing_xy, *site.xy_frac)
    w = np.array([m[0] for m in site.z_modes])
    mode = site.z_modes[int(rng.choice(len(w), p=w / w.sum()))]
    sz = round(
        float(
            np.clip(
                round(_frac(rng, cfg.spacing_z, mode[1], mode[2]) / 0.05) * 0.05, *cfg.spacing_z
            )
        ),
        4,
    )
    px_lo, px_hi = cfg.inplane_px
    need = 2.04 * an.a * s / px_hi  # bigger patients get bigger pixels, as with a wider display FOV
    sxy = round(float(min(max(sxy, need), cfg.spacing_xy[1])), 4)
    fov = 2 * an.a * rng.uniform(1.05, 1.3)
    n = int(np.clip(round(fov * s / sxy), px_lo, px_hi))
    step = sxy / s
    half = (n - 1) / 2 * step
    off_x = rng.uniform(-1, 1) * max(0.0, half - an.a) * 0.4
    off_y = rng.uniform(-0.2, 1) * max(0.0, half - an.b) * 0.5
    x = np.arange(n) * step - half + off_x
    y = np.arange(n) * step - half + off_y
    zstep = sz / s
    z_lo, z_hi = -rng.uniform(15, 60), an.H + rng.uniform(10, 30)
    nz_nat = int(round((z_hi - z_lo) / zstep))
    nz = int(np.clip(nz_nat, *cfg.slices))
    if nz < nz_nat:  # thin slices: the scan covers less (may clip apex/base)
        z_lo += (nz_nat - nz) * zstep * rng.uniform(0.3, 0.7)
    elif nz > nz_nat:  # thick slices: the scan reaches further into neck and abdomen
        z_lo -= (nz - nz_nat) * zstep * rng.uniform(0.5, 0.9)
    z = z_lo + (np.arange(nz) + 0.5) * zstep
    return Grid(x, y, z), (sxy, sxy, sz)


def _blend(hu: np.ndarray, value: float, occ: np.ndarray) -> None:
    hu += (value - hu) * occ


def _render_anatomy(an: Anatomy, grid: Grid, rng: np.random.Generator):
    """HU volume, tissue map, lung mask, vessel occupancy and vessel segments (real mm)."""
    shape = grid.shape
    x, y, z = grid.axes()
    h = an.hu
    hu = np.full(shape, -1000.0, np.float32)
    tissue = np.zeros(shape, np.uint8)
    body, inner, cavity = body_layers(an, grid)
    for mask2d, value, code in (
        (body, h["fat"], FAT),
        (inner, h["muscle"], SOFT),
        (cavity, h["soft"], SOFT),
    ):
        hu[:, mask2d] = value
        tissue[:, mask2d] = code
    med_fat = (
        ((x / (0.2 * an.a_i)) ** 2 + ((y + 0.55 * an.b_i) / (0.3 * an.b_i)) ** 2 <= 1)
        & (z > 0.45 * an.H)
        & (z < an.H)
        & cavity
    )
    hu[med_fat] = h["med_fat"]
    tissue[med_fat] = FAT
    lung = lung_inside(an, x, y, z)
    aorta = tube_occupancy(grid, aorta_segments(an))
    _blend(hu, h["blood"], aorta)
    walls, lumens = airway_segments(an, float(grid.z[-1]))
    wall = tube_occupancy(grid, walls)
    lumen = tube_occupancy(grid, lumens)
    bone = bone_hu(an, grid, inner)
    bone_mask = ~np.isnan(bone)
    lung &= (aorta < 0.5) & (wall < 0.5) & ~bone_mask
    lung_hu = h["lung"] + h["lung_gradient"] * np.clip((y + an.b_i) / (2 * an.b_i), 0, 1)
    hu = np.where(lung, lung_hu, hu).astype(np.float32)
    tissue[lung] = LUNG
    segs = vessel_segments(an, rng, min_radius=0.12 * grid.voxel_size)
    vessel = tube_occupancy(grid, segs)
    vessel *= lung
    _blend(hu, h["vessel"], vessel)
    tissue[vessel > 0.5] = VESSEL
    _blend(hu, h["soft"], wall)
    _blend(hu, -1000.0, lumen)
    tissue[lumen > 0.5] = AIRWAY
    hu[bone_mask] = bone[bone_mask]
    tissue[bone_mask] = BONE
    return hu, tissue, lung, vessel, segs


def _ring(
    mask: np.ndarray, sl: tuple[slice, ...], shape: tuple[int, ...]
) -> tuple[tuple[slice, ...], np.ndarray]:
    """The lesion's box grown by one voxel, and the lesion dilated (6-neighbourhood) inside it."""
    big = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(sl, shape))
    local = np.zeros(tuple(b.stop - b.start for b in big), bool)
    local[tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sl, big))] = mask
    return big, ndimage.binary_dilation(local, ndimage.generate_binary_structure(3, 1))


def _diameter_mm(idx: np.ndarray, spacing_zyx: np.ndarray) -> float:
    """Mean of the longest and shortest axis of the ellipsoid with the lesion's second moments."""
    pts = idx * spacing_zyx
    cov = np.cov(pts.T) if len(pts) > 1 else np.zeros((3, 3))
    cov = cov + np.diag(spacing_zyx**2 / 12)  # a voxel is a box, not a point
    axes = 2 * np.sqrt(5 * np.clip(np.linalg.eigvalsh(cov), 0, None))
    return float((axes.max() + axes.min()) / 2)


def generate_case(
    seed: int,
    site: str = "msd",
    scale: float | None = None,
    *,
    preset: str = "default",
    n_tumours: int | None = None,
    min_tumours: int = 0,
    config: PhantomConfig | None = None,
    **overrides: Any,
) -> PhantomCase:
    """One phantom case, identical for identical arguments.

    ``scale`` shrinks the real-size chest (default: the preset's); ``overrides`` set other
    :class:`PhantomConfig` fields (``spacing_xy``, ``spacing_z``, ``inplane_px``, ``slices``,
    ``tumour_scale``). ``n_tumours`` fixes the count (0-3 drawn per site otherwise);
    ``min_tumours`` raises a drawn count.
    """
    if site not in SITES:
        raise InputError(f"unknown phantom site {site!r} (choose from {list(SITES)})")
    if n_tumours is not None and not 0 <= n_tumours <= 10:
        raise InputError(f"n_tumours must be in 0..10, got {n_tumours}")
    cfg = (config or make_config(preset, scale, **overrides)).validate()
    prof = SITES[site]
    rng = np.random.default_rng(seed)
    an = sample_anatomy(rng)
    grid, spacing = _sample_grid(rng, an, cfg, prof)
    hu, tissue, lung, vessel, segs = _render_anatomy(an, grid, rng)
    plan = _plan_tumours(rng, site, n_tumours, min_tumours, cfg, spacing)
    placed = place_tumours(rng, grid, lung, segs, plan)
    label = np.zeros(grid.shape, np.uint8)
    spacing_zyx = np.array(spacing[::-1])
    _paint_tumours(placed, hu, tissue, label)
    tumours = [_tumour_info(t, grid, lung, vessel, spacing_zyx, cfg) for t in placed]

    fam = get_family(cfg.family)
    consolidation = np.zeros(grid.shape, bool)
    if fam.name != "standard":  # its own generator: the standard phantoms' draws stay as they were
        frng = np.random.default_rng([seed, 1])
        add_tumour_texture(frng, hu, label, fam.texture_hu)
        consolidation = add_consolidation(frng, hu, lung, label, placed, spacing_zyx, fam)
        tissue[consolidation] = SOFT
        add_emphysema(frng, hu, lung, (label > 0) | (vessel > 0.3) | consolidation, fam)

    ct, sig, noise_sd = _acquire(rng, hu, prof)
    geometry = _case_geometry(grid, spacing, cfg.scale)
    info = {
        "seed": int(seed),
        "site": site,
        "scale": cfg.scale,
        "tumour_scale": cfg.tumour_scale,
        "spacing": list(geometry.spacing),
        "size": list(geometry.size),
        "noise_hu": round(float(noise_sd), 2),
        "blur_px": round(float(sig), 3),
        "n_tumours": len(tumours),
        "tumours": tumours,
        "family": fam.name,
        "consolidation_ml": round(float(consolidation.sum() * np.prod(spacing_zyx) / 1000), 5),
    }
    return PhantomCase(
        array_to_image(ct, geometry),
        array_to_image(label, geometry),
        array_to_image(lung.astype(np.uint8), geometry),
        info,
        tissue,
    )


def _plan_tumours(
    rng: np.random.Generator,
    site: str,
    n_tumours: int | None,
    min_tumours: int,
    cfg: PhantomConfig,
    spacing: tuple[float, float, float],
) -> TumourPlan:
    """Draw the tumours of a case: count, sizes (the first is the primary), part-solid flags, placements."""
    prof, fam = SITES[site], get_family(cfg.family)
    n = int(rng.choice(4, p=prof.n_tumour_probs)) if n_tumours is None else n_tumours
    n = max(n, min_tumours)
    nominal = (
        mixture_diameters(rng, fam.diameter_mixture, n, DIAMETER_RANGE_MM)
        if fam.diameter_mixture
        else sample_tumour_diameters(rng, site, n)
    )
    if n > 1:  # the first is the primary; further lesions are smaller
        nominal[1:] *= rng.uniform(0.45, 0.9, n - 1)
    part_solid = rng.random(n) < prof.part_solid_prob * np.where(nominal < 45, 1.0, 0.25)
    placements = [
        PLACEMENTS[i] for i in rng.choice(3, size=n, p=fam.placement_probs or prof.placement_probs)
    ]
    # at least 3 pixels across and one slice thick, so that every tumour is visible
    min_d = max(3 * spacing[0], spacing[2]) / cfg.scale
    fit = np.maximum(nominal * cfg.tumour_scale, min_d)
    return TumourPlan(fit, nominal, part_solid, placements, prof.solid_hu, fam.wave_amplitude)


def _paint_tumours(
    placed: list[PlacedTumour], hu: np.ndarray, tissue: np.ndarray, label: np.ndarray
) -> None:
    """Write the tumours into the HU volume (solid core, necrosis, ground-glass halo), tissues and label."""
    for t in placed:
        sub, tis = hu[t.sl], tissue[t.sl]
        solid = t.shape.solid_hu
        sub[t.core] = solid
        if t.necrotic is not None:
            sub[t.necrotic] = max(solid - t.shape.necrosis_hu, 0.0)
        halo = t.mask & ~t.core
        sub[halo] = np.maximum(sub[halo], t.shape.ggo_hu)
        tis[t.core], tis[halo] = TUMOUR_SOLID, TUMOUR_GGO
        label[t.sl][t.mask] = 1


def _acquire(
    rng: np.random.Generator, hu: np.ndarray, prof: SiteProfile
) -> tuple[np.ndarray, float, float]:
    """The scanner: the site's blur and correlated noise; the CT (int16 HU), blur sigma and noise SD."""
    sig = rng.uniform(*prof.blur_px)
    hu = ndimage.gaussian_filter(hu, (0.35, sig, sig), mode="nearest")
    noise_sd = rng.uniform(*prof.noise_hu)
    noise = ndimage.gaussian_filter(rng.standard_normal(hu.shape, dtype=np.float32), (0, 0.6, 0.6))
    hu += noise * np.float32(noise_sd / max(float(noise.std()), 1e-6))
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16), sig, noise_sd


def _case_geometry(grid: Grid, spacing: tuple[float, float, float], scale: float) -> Geometry:
    return Geometry(
        size=(grid.shape[2], grid.shape[1], grid.shape[0]),
        spacing=tuple(float(v) for v in spacing),
        origin=(
            float(grid.x[0] * scale),
            float(grid.y[0] * scale),
            float(grid.z[0] * scale),
        ),
        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
    )


def _tumour_info(
    t: PlacedTumour,
    grid: Grid,
    lung: np.ndarray,
    vessel: np.ndarray,
    spacing_zyx: np.ndarray,
    cfg: PhantomConfig,
) -> dict:
    idx = np.argwhere(t.mask) + [s.start for s in t.sl]
    big, dil = _ring(t.mask, t.sl, grid.shape)
    return {
        "volume_ml": round(float(len(idx) * np.prod(spacing_zyx) / 1000), 5),
        "diameter_mm": round(_diameter_mm(idx, spacing_zyx), 3),
        "nominal_diameter_mm": round(
            float(t.nominal_diameter), 2
        ),  # real size, the site's Table 1 draw
        "n_voxels": int(len(idx)),
        "center_zyx": [int(v) for v in np.rint(idx.mean(axis=0))],
        "juxtapleural": bool((dil & ~lung[big]).any()),
        "touches_vessel": bool((dil & (vessel[big] > 0.5)).any()),
        "part_solid": bool(t.shape.part_solid),
        "placement": t.placement,
    }
