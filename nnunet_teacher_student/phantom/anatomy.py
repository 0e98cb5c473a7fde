"""Chest anatomy of the synthetic CT phantom: body, lungs, mediastinum, bones, airways, vessels.

Shapes are implicit functions of *real-size* world coordinates in mm (x: patient right -> left,
y: anterior -> posterior, z: inferior -> superior, lung base at z = 0, body axis at x = y = 0).
They are evaluated at the voxel centres of a :class:`Grid` whose step is the image spacing
divided by the anatomy scale, so a smaller scale gives a smaller chest in image millimetres.
Hand-written: no library generates CT chest phantoms with tumours and labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Segment = tuple[
    np.ndarray, np.ndarray, float, float
]  # start xyz, end xyz, start radius, end radius (mm)

# tissue codes of PhantomCase.tissues
AIR, FAT, SOFT, LUNG, VESSEL, AIRWAY, BONE, TUMOUR_SOLID, TUMOUR_GGO = range(9)


@dataclass(frozen=True)
class Grid:
    """Voxel centres in real-size mm, numpy order (z, y, x)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z.size, self.y.size, self.x.size)

    @property
    def step(self) -> np.ndarray:
        """Real-size mm per voxel, (z, y, x)."""
        return np.array([self.z[1] - self.z[0], self.y[1] - self.y[0], self.x[1] - self.x[0]])

    @property
    def voxel_size(self) -> float:
        """Geometric mean of the voxel edges (mm), the partial-volume length."""
        return float(np.prod(self.step) ** (1 / 3))

    def axes(
        self, sl: tuple[slice, slice, slice] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable (x, y, z) coordinate arrays, optionally of a sub-box."""
        sl = sl or (slice(None),) * 3
        return (
            self.x[sl[2]][None, None, :],
            self.y[sl[1]][None, :, None],
            self.z[sl[0]][:, None, None],
        )

    def bbox(self, lo_xyz: np.ndarray, hi_xyz: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Index box (z, y, x) of the voxels whose centres lie in [lo, hi]; None if empty."""
        out = []
        for c, lo, hi in (
            (self.z, lo_xyz[2], hi_xyz[2]),
            (self.y, lo_xyz[1], hi_xyz[1]),
            (self.x, lo_xyz[0], hi_xyz[0]),
        ):
            a, b = np.searchsorted(c, lo), np.searchsorted(c, hi, side="right")
            if a >= b:
                return None
            out.append(slice(int(a), int(b)))
        return tuple(out)  # type: ignore[return-value]

    def index_of(self, xyz: np.ndarray) -> tuple[int, int, int]:
        """Nearest voxel (z, y, x) to a point, clipped to the grid."""
        return tuple(
            int(np.clip(np.rint((p - c[0]) / (c[1] - c[0])), 0, c.size - 1))
            for p, c in ((xyz[2], self.z), (xyz[1], self.y), (xyz[0], self.x))
        )  # type: ignore

    def point_of(self, kji: tuple[int, int, int]) -> np.ndarray:
        k, j, i = kji
        return np.array([self.x[i], self.y[j], self.z[k]])


@dataclass
class Anatomy:
    """Sampled patient: sizes in real mm, base intensities in HU."""

    a: float  # body half-width
    b: float  # body half-depth
    body_power: float  # superellipse exponent of the body outline
    t_fat: float  # subcutaneous fat thickness
    a_i: float  # thoracic cavity half-width
    b_i: float  # thoracic cavity half-depth
    H: float  # lung height (base at z=0, apex at z=H)
    lung_cx: float  # |x| of each lung's centre
    lung_cy: float
    lung_rx: float
    lung_ry: float
    lung_power: float
    taper_start: float  # fraction of H where the apex taper starts
    dome: tuple[float, float]  # diaphragm dome height right, left
    wobble: np.ndarray  # (2 sides, 3 harmonics, amp/phase)
    med_w: float  # mediastinum half-width posteriorly
    med_w_ant: float  # extra half-width anteriorly
    heart_c: np.ndarray
    heart_r: np.ndarray
    spine_y: float
    spine_r: float
    spine_pitch: float
    rib_r: float
    rib_rz: float
    rib_pitch: float
    rib_slope: float
    rib_z0: float
    hilum_y: float
    hilum_z: float
    hu: dict = field(default_factory=dict)

    @property
    def trachea_y(self) -> float:
        return self.spine_y - self.spine_r - 16.0


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's chest."""
    a = rng.uniform(140, 185)
    b = a * rng.uniform(0.62, 0.76)
    t_fat = rng.uniform(6, 28)
    rib_r = rng.uniform(4.5, 6.5)
    wall = t_fat + rng.uniform(14, 24) + 2 * rib_r + 2
    a_i, b_i = a - wall, b - wall
    H = rng.uniform(200, 265)
    spine_r = rng.uniform(16, 21)
    wob = np.stack([rng.uniform(0, 0.04, (2, 3)), rng.uniform(0, 2 * np.pi, (2, 3))], axis=-1)
    hu = {
        "fat": rng.uniform(-115, -85),
        "soft": rng.uniform(30, 50),
        "muscle": rng.uniform(40, 55),
        "lung": rng.uniform(-895, -845),
        "lung_gradient": rng.uniform(20, 50),
        "vessel": rng.uniform(30, 60),
        "bone_marrow": rng.uniform(430, 560),
        "bone_cortex": rng.uniform(800, 1000),
        "disc": rng.uniform(60, 90),
        "blood": rng.uniform(35, 50),
        "med_fat": rng.uniform(-110, -70),
    }
    return Anatomy(
        a=a,
        b=b,
        body_power=rng.uniform(2.0, 2.6),
        t_fat=t_fat,
        a_i=a_i,
        b_i=b_i,
        H=H,
        lung_cx=0.52 * a_i,
        lung_cy=rng.uniform(0.0, 0.1) * b_i,
        lung_rx=0.52 * a_i,
        lung_ry=0.97 * b_i,
        lung_power=rng.uniform(2.2, 2.8),
        taper_start=rng.uniform(0.3, 0.45),
        dome=(rng.uniform(0.16, 0.26) * H, rng.uniform(0.1, 0.2) * H),
        wobble=wob,
        med_w=rng.uniform(0.1, 0.14) * a_i,
        med_w_ant=rng.uniform(0.08, 0.16) * a_i,
        heart_c=np.array(
            [rng.uniform(0.08, 0.16) * a_i, -rng.uniform(0.2, 0.3) * b_i, rng.uniform(0.2, 0.3) * H]
        ),
        heart_r=np.array(
            [
                rng.uniform(0.38, 0.46) * a_i,
                rng.uniform(0.45, 0.55) * b_i,
                rng.uniform(0.25, 0.32) * H,
            ]
        ),
        spine_y=b_i - spine_r - rng.uniform(2, 8),
        spine_r=spine_r,
        spine_pitch=rng.uniform(24, 30),
        rib_r=rib_r,
        rib_rz=rib_r * rng.uniform(1.3, 1.7),
        rib_pitch=rng.uniform(24, 30),
        rib_slope=rng.uniform(0.9, 1.4),
        rib_z0=rng.uniform(0, 30),
        hilum_y=rng.uniform(0.0, 0.15) * b_i,
        hilum_z=rng.uniform(0.5, 0.6) * H,
        hu=hu,
    )


def _lung_side(an: Anatomy, side: int, x, y, z):
    """One lung (side -1: patient right, +1: left) before the mediastinal cut-outs."""
    t = z / an.H
    f = np.sqrt(
        np.clip(1 - np.clip((t - an.taper_start) / (1 - an.taper_start), 0, None) ** 2, 1e-6, None)
    )
    cx = side * an.lung_cx
    u = (x - cx) / (an.lung_rx * f)
    v = (y - an.lung_cy) / (an.lung_ry * f)
    w = an.wobble[(side + 1) // 2]
    ang = np.arctan2(v, u)
    rim = 1 + sum(w[k, 0] * np.cos((k + 2) * ang + w[k, 1]) for k in range(3))
    inside = np.abs(u) ** an.lung_power + np.abs(v) ** an.lung_power <= rim**an.lung_power
    dome_h = an.dome[(side + 1) // 2]
    dome = dome_h * np.clip(
        1 - ((x - cx) / an.lung_rx) ** 2 - ((y - an.lung_cy + 0.25 * an.lung_ry) / an.lung_ry) ** 2,
        0,
        1,
    )
    return inside & (z > dome) & (z < an.H)


def lung_inside(an: Anatomy, x, y, z):
    """True lung region (both lungs) at broadcastable coordinates, without vessel/bone cut-outs."""
    cavity = (x / an.a_i) ** 2 + (y / an.b_i) ** 2 <= 1
    med = np.abs(x) < an.med_w + an.med_w_ant * np.clip(-y / an.b_i, 0, 1)
    spine = x**2 + (y - an.spine_y) ** 2 < (an.spine_r + 12) ** 2
    heart = (
        ((x - an.heart_c[0]) / an.heart_r[0]) ** 2
        + ((y - an.heart_c[1]) / an.heart_r[1]) ** 2
        + ((z - an.heart_c[2]) / an.heart_r[2]) ** 2
    ) <= 1
    return (
        (_lung_side(an, -1, x, y, z) | _lung_side(an, 1, x, y, z)) & cavity & ~med & ~spine & ~heart
    )


def body_layers(an: Anatomy, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2-D (y, x) masks: body, inside the fat layer, thoracic cavity."""
    x, y, _ = grid.axes()
    x, y = x[0], y[0]
    p = an.body_power
    body = (np.abs(x) / an.a) ** p + (np.abs(y) / an.b) ** p <= 1
    inner = (np.abs(x) / (an.a - an.t_fat)) ** p + (np.abs(y) / (an.b - an.t_fat)) ** p <= 1
    cavity = (x / an.a_i) ** 2 + (y / an.b_i) ** 2 <= 1
    return body, inner, cavity


def bone_hu(an: Anatomy, grid: Grid, inner: np.ndarray) -> np.ndarray:
    """HU of ribs, spine and sternum; NaN where there is no bone."""
    x, y, z = grid.axes()
    hu = an.hu
    out = np.full(grid.shape, np.nan, np.float32)
    # ribs: an elliptic band just outside the cavity, descending anteriorly, repeating every rib_pitch
    ar, br = an.a_i + an.rib_r + 1, an.b_i + an.rib_r + 1
    x2, y2 = x[0], y[0]
    theta = np.arctan2(np.abs(x2), y2)  # 0: posterior midline, pi: anterior
    e = np.sqrt((x2 / ar) ** 2 + (y2 / br) ** 2)
    dr = (e - 1) * np.hypot(x2, y2) / np.maximum(e, 1e-6)
    band = (np.abs(dr) <= an.rib_r) & (theta > 0.13 * np.pi) & (theta < 0.8 * np.pi)
    u = np.mod(z + an.rib_slope * an.rib_pitch / np.pi * theta - an.rib_z0, an.rib_pitch)
    dz = np.minimum(u, an.rib_pitch - u)
    q = (dr / an.rib_r) ** 2 + (dz / an.rib_rz) ** 2
    rib = band & (q <= 1) & (z > -60) & (z < an.H + 25)
    out[rib] = np.where(q > 0.45, hu["bone_cortex"], hu["bone_marrow"])[rib]
    # vertebra: body (with discs), canal ring and spinous process
    rv = an.spine_r
    r_body = np.hypot(x2, y2 - an.spine_y)
    vb = np.broadcast_to(r_body <= rv, grid.shape)
    disc = np.broadcast_to(np.mod(z - 5.0, an.spine_pitch) < 5.0, grid.shape)
    canal_y = an.spine_y + rv + 8
    r_canal = np.hypot(x2, y2 - canal_y)
    arch = (r_canal > 7) & (r_canal < 12)
    spinous = (np.abs(x2) < 3.5) & (y2 > canal_y + 7) & (y2 < canal_y + 35) & inner
    cortex2d = (r_body > rv - 2.5) | arch | spinous
    vert = np.broadcast_to(vb | arch | spinous, grid.shape) & ~(disc & vb)
    out[vert] = np.broadcast_to(
        np.where(cortex2d, hu["bone_cortex"], hu["bone_marrow"]), grid.shape
    )[vert]
    out[disc & vb] = hu["disc"]
    # sternum
    st = (np.abs(x2) < 14) & (np.abs(y2 + an.b_i + 7) < 5)
    st3 = np.broadcast_to(st, grid.shape) & (z > 0.3 * an.H) & (z < an.H + 20)
    edge = np.broadcast_to(st & ~((np.abs(x2) < 12) & (np.abs(y2 + an.b_i + 7) < 3)), grid.shape)
    out[st3] = np.where(edge, hu["bone_cortex"] * 0.85, hu["bone_marrow"])[st3]
    return out


def tube_occupancy(
    grid: Grid, segments: list[Segment], out: np.ndarray | None = None
) -> np.ndarray:
    """Partial-volume occupancy (0..1) of tapered tubes, from each voxel's distance to each segment,
    evaluated only inside the segment's bounding box."""
    occ = np.zeros(grid.shape, np.float32) if out is None else out
    h = grid.voxel_size
    for p0, p1, r0, r1 in segments:
        pad = max(r0, r1) + h
        sl = grid.bbox(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
        if sl is None:
            continue
        x, y, z = grid.axes(sl)
        d = p1 - p0
        x, y, z = x - p0[0], y - p0[1], z - p0[2]
        t = np.minimum(
            np.maximum((x * d[0] + y * d[1] + z * d[2]) * (1.0 / float(d @ d)), 0.0), 1.0
        )
        dist = np.sqrt((x - t * d[0]) ** 2 + (y - t * d[1]) ** 2 + (z - t * d[2]) ** 2)
        r = r0 + (r1 - r0) * t
        o = np.minimum(np.maximum((r - dist) * (1.0 / h) + 0.5, 0.0), 1.0) * np.minimum(
            1.0, r * (2.0 / h)
        )
        np.maximum(occ[sl], o, out=occ[sl])
    return occ


def _deflect(d: np.ndarray, angle: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Rows of ``d`` (unit vectors) turned by ``angle`` towards azimuth ``phi`` around themselves."""
    helper = np.where(np.abs(d[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(d, e1)
    out = np.cos(angle)[:, None] * d + np.sin(angle)[:, None] * (
        np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2
    )
    return out / np.linalg.norm(out, axis=1, keepdims=True)


_ROOT_DIRS = np.array(
    [
        [0.45, 0.1, 0.85],
        [0.5, -0.5, 0.6],
        [0.9, -0.35, 0.15],
        [0.8, 0.45, -0.3],
        [0.45, 0.3, -0.85],
        [0.5, -0.5, -0.6],
    ]
)


def vessel_segments(
    an: Anatomy, rng: np.random.Generator, min_radius: float, max_depth: int = 6
) -> list[Segment]:
    """Pulmonary vessel trees, grown one generation at a time for all branches at once: from each
    hilum a few roots branch dichotomously, thinning outwards; a branch whose end would leave the
    lung is halved, or dropped if its half still leaves it."""
    starts, dirs, radii, lengths = [], [], [], []
    for side in (-1, 1):
        for base in _ROOT_DIRS:
            d = base * np.array([side, 1, 1]) + rng.normal(0, 0.15, 3)
            starts.append([side * (an.med_w + 6), an.hilum_y, an.hilum_z])
            dirs.append(d / np.linalg.norm(d))
            radii.append(rng.uniform(4.0, 6.5))
            lengths.append(rng.uniform(30, 45))
    p, d, r, L = (np.array(v, dtype=float) for v in (starts, dirs, radii, lengths))
    segs: list[Segment] = []
    for depth in range(max_depth + 1):
        end = p + d * L[:, None]
        ok = lung_inside(an, end[:, 0], end[:, 1], end[:, 2])
        half = p + d * (0.5 * L)[:, None]
        ok_half = ~ok & lung_inside(an, half[:, 0], half[:, 1], half[:, 2])
        end = np.where(ok[:, None], end, half)
        keep = ok | ok_half
        p, d, r, L, end = p[keep], d[keep], r[keep], L[keep], end[keep]
        r_end = 0.9 * r
        segs.extend(zip(p, end, r.tolist(), r_end.tolist()))
        grow = r_end >= min_radius
        m = int(grow.sum())
        if depth == max_depth or m == 0:
            break
        phi = rng.uniform(0, 2 * np.pi, m)
        angle = np.deg2rad(rng.uniform(20, 45, (2, m)))
        d = np.concatenate([_deflect(d[grow], angle[k], phi + k * np.pi) for k in range(2)])
        p = np.concatenate([end[grow]] * 2)
        r = np.concatenate([r_end[grow]] * 2) * rng.uniform(0.7, 0.85, 2 * m)
        L = np.concatenate([L[grow]] * 2) * rng.uniform(0.68, 0.85, 2 * m)
    return segs


def airway_segments(an: Anatomy, z_top: float) -> tuple[list[Segment], list[Segment]]:
    """Trachea and main bronchi: (outer walls, lumens)."""
    carina = np.array([0.0, an.trachea_y, an.hilum_z + 25])
    walls: list[Segment] = [
        (np.array([0.0, an.trachea_y, max(z_top, carina[2]) + 30]), carina, 9.0, 9.0)
    ]
    for side in (-1, 1):
        hil = np.array([side * (an.med_w + 10), an.hilum_y - 8, an.hilum_z + 5])
        walls.append((carina, hil, 7.0, 5.5))
        walls.append((hil, hil + np.array([side * 18, 4, -10]), 5.5, 4.0))
    lumens = [(p0, p1, r0 - 1.8, r1 - 1.5) for p0, p1, r0, r1 in walls]
    return walls, lumens


def aorta_segments(an: Anatomy) -> list[Segment]:
    """Ascending aorta, arch and descending aorta (mediastinum, left of the spine)."""
    r = 12.0
    asc = np.array([-0.05 * an.a_i, -0.25 * an.b_i, 0.35 * an.H])
    top = np.array([0.0, 0.0, 0.78 * an.H])
    desc_top = np.array([an.spine_r + 10, an.spine_y - 8, 0.72 * an.H])
    desc_bot = np.array([an.spine_r + 8, an.spine_y - 10, -80.0])
    return [(asc, top, r, r), (top, desc_top, r, r * 0.95), (desc_top, desc_bot, r * 0.95, r * 0.9)]
