"""Phantom families: what a whole population of phantoms looks like beyond the three sites.

``standard`` is the family the project was built and tuned on. ``copd`` is a second family, written to be
different in the ways real chest CTs are (and tuned by nobody): emphysematous lungs (air blebs at -960 to
-990 HU), tumours drawn from a nodule/mass mixture of sizes, spiculated and with heterogeneous texture,
mostly attached to the pleura, and, around half of them, unlabelled atelectasis/consolidation (soft-tissue
density lung, -100 to +40 HU) on the pleural side, which a box ∧ HU rule and a careless teacher take for
tumour. A family only adds draws after the standard ones, so the standard phantoms stay bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core.errors import InputError


@dataclass(frozen=True)
class Family:
    """Population-level settings; ``None`` / 0 keep the standard phantom."""

    name: str
    #: tumour diameters (real mm) as a log-normal mixture ``(weight, mean, sd)``; None: the site's Table 1 draw
    diameter_mixture: tuple[tuple[float, float, float], ...] | None = None
    placement_probs: tuple[float, float, float] | None = (
        None  # central, juxtapleural, vessel (all sites)
    )
    wave_amplitude: tuple[float, float] = (0.02, 0.05)  # surface roughness (spiculation)
    texture_hu: float = 0.0  # sd of the correlated texture inside tumours
    consolidation_prob: float = 0.0  # per tumour
    consolidation_hu: tuple[float, float] = (-100.0, 40.0)
    consolidation_reach: tuple[float, float] = (0.6, 1.2)  # how far it reaches, in tumour radii
    emphysema: tuple[float, float] = (0.0, 0.0)  # share of the lung in blebs


FAMILIES: dict[str, Family] = {
    "standard": Family("standard"),
    "copd": Family(
        "copd",
        diameter_mixture=((0.55, 20.0, 6.0), (0.45, 50.0, 15.0)),
        placement_probs=(0.25, 0.55, 0.2),
        wave_amplitude=(0.06, 0.14),
        texture_hu=35.0,
        consolidation_prob=0.5,
        emphysema=(0.05, 0.3),
    ),
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise InputError(f"unknown phantom family {name!r} (choose from {sorted(FAMILIES)})")
    return FAMILIES[name]


def mixture_diameters(
    rng: np.random.Generator,
    mixture: tuple[tuple[float, float, float], ...],
    n: int,
    clip: tuple[float, float],
) -> np.ndarray:
    """``n`` diameters (mm) from a mixture of log-normals with the given means and SDs, clipped."""
    w = np.array([m[0] for m in mixture], float)
    out = np.empty(n)
    for i in range(n):
        _, mean, sd = mixture[int(rng.choice(len(w), p=w / w.sum()))]
        s2 = np.log1p((sd / mean) ** 2)
        out[i] = rng.lognormal(np.log(mean) - s2 / 2, np.sqrt(s2))
    return np.clip(out, *clip)


def add_tumour_texture(
    rng: np.random.Generator, hu: np.ndarray, label: np.ndarray, sd: float
) -> None:
    """Correlated intensity texture inside the tumours (heterogeneous enhancement, necrotic streaks)."""
    if sd <= 0 or not label.any():
        return
    field = ndimage.gaussian_filter(
        rng.standard_normal(hu.shape).astype(np.float32), (0.5, 1.0, 1.0)
    )
    field *= np.float32(sd / max(float(field.std()), 1e-6))
    inside = label > 0
    hu[inside] += field[inside]


def add_consolidation(
    rng: np.random.Generator,
    hu: np.ndarray,
    lung: np.ndarray,
    label: np.ndarray,
    tumours: list,
    spacing_zyx: np.ndarray,
    family: Family,
) -> np.ndarray:
    """Unlabelled soft-tissue-density lung beside some tumours, on the side of the nearest pleura (a wedge
    of atelectasis / post-obstructive consolidation). Returns its mask."""
    out = np.zeros(hu.shape, bool)
    if family.consolidation_prob <= 0 or not tumours:
        return out
    pleura = ndimage.distance_transform_edt(lung, sampling=spacing_zyx)
    grad = np.stack(np.gradient(pleura, *spacing_zyx))
    for t in tumours:
        if rng.random() >= family.consolidation_prob:
            continue
        idx = np.argwhere(t.mask) + [s.start for s in t.sl]
        centre = idx.mean(axis=0)
        k, j, i = np.clip(np.rint(centre).astype(int), 0, np.array(hu.shape) - 1)
        towards = -grad[:, k, j, i]
        if np.linalg.norm(towards) < 1e-6:
            towards = rng.normal(size=3)
        towards = towards / np.linalg.norm(towards)
        radius_mm = float(np.cbrt(len(idx) * np.prod(spacing_zyx) * 3 / (4 * np.pi)))
        reach = radius_mm * rng.uniform(*family.consolidation_reach) + float(spacing_zyx[1:].max())
        pad = np.ceil(reach / spacing_zyx).astype(int) + 1
        lo = np.maximum(idx.min(axis=0) - pad, 0)
        hi = np.minimum(idx.max(axis=0) + pad + 1, hu.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        own = np.zeros(tuple(hi - lo), bool)
        own[tuple((idx - lo).T)] = True
        dist = ndimage.distance_transform_edt(~own, sampling=spacing_zyx)
        zz, yy, xx = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij")
        rel = np.stack([zz - centre[0], yy - centre[1], xx - centre[2]], axis=-1) * spacing_zyx
        side = rel @ towards > -0.3 * radius_mm  # the half towards the pleura, and a little beyond
        region = (dist > 0) & (dist <= reach) & side & lung[box] & (label[box] == 0)
        out[box] |= region
    if out.any():
        value = rng.uniform(*family.consolidation_hu)
        hu[out] = value + rng.normal(0, 12, int(out.sum())).astype(np.float32)
    return out


def add_emphysema(
    rng: np.random.Generator, hu: np.ndarray, lung: np.ndarray, keep: np.ndarray, family: Family
) -> None:
    """Air blebs: a share of the lung (outside ``keep``: tumours, vessels, consolidation) at -960..-990 HU."""
    lo, hi = family.emphysema
    if hi <= 0:
        return
    share = rng.uniform(lo, hi)
    free = lung & ~keep
    if share <= 0 or not free.any():
        return
    field = ndimage.gaussian_filter(
        rng.standard_normal(hu.shape).astype(np.float32), (0.7, 1.2, 1.2)
    )
    cut = np.quantile(field[free], 1 - share)
    blebs = free & (field >= cut)
    hu[blebs] = rng.uniform(-990, -960, int(blebs.sum())).astype(np.float32)
