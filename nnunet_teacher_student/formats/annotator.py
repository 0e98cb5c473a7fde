"""A model of how radiologists draw axial boxes: the noise between a lesion's tight boxes and real ones.

Each box edge moves by a random fraction of the box's own extent (default within +/-10 %), bounded
below and above in mm, so a large tumour gets a few pixels of slack and a small one is never lost;
a share of boxes is drawn exactly; optionally the thin end slices of a lesion go unboxed (annotators
miss them). ``voxels > 0`` is the old absolute stress setting: every edge moves by a uniform integer
in ``[-voxels, voxels]``, whatever the lesion size.

The same model makes the phantoms' weak boxes, the scenarios' weak boxes, the teacher dataset's
``_0001`` boxes and the box teacher's online box channel; its settings are recorded with them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Sequence

import numpy as np

from ..core.errors import InputError


@dataclass(frozen=True)
class Annotator:
    """Box noise; ``Annotator.exact()`` draws tight boxes."""

    edge_fraction: float = 0.10  # each edge moves by U(-f, f) x the box extent along its axis
    floor_mm: float = 0.5  # ... but at most by max(floor, f x extent) ...
    cap_mm: float = 5.0  # ... and never by more than cap_mm
    exact_share: float = 0.25  # share of boxes drawn exactly
    skip_ends: float = 0.0  # probability that each end slice of a lesion (>= 3 slices) is not boxed
    voxels: int = 0  # stress setting: uniform integer edge moves in [-voxels, voxels]

    def validate(self) -> "Annotator":
        if not 0 <= self.edge_fraction <= 0.5:
            raise InputError(
                f"annotator edge_fraction must be in [0, 0.5], got {self.edge_fraction}"
            )
        if not 0 <= self.floor_mm <= self.cap_mm:
            raise InputError(
                f"annotator needs 0 <= floor_mm <= cap_mm, got {self.floor_mm}, {self.cap_mm}"
            )
        for name in ("exact_share", "skip_ends"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"annotator {name} must be in [0, 1], got {getattr(self, name)}")
        if self.voxels < 0:
            raise InputError(f"annotator voxels must be >= 0, got {self.voxels}")
        return self

    @classmethod
    def exact(cls) -> "Annotator":
        return cls(edge_fraction=0.0, floor_mm=0.0, cap_mm=0.0, exact_share=1.0)

    @classmethod
    def stress(cls, voxels: int) -> "Annotator":
        """The absolute-voxel jitter (``voxels`` = 0: exact boxes)."""
        return (
            cls.exact()
            if voxels == 0
            else replace(cls.exact(), exact_share=0.0, voxels=int(voxels)).validate()
        )

    @property
    def is_exact(self) -> bool:
        return (
            self.voxels == 0
            and self.skip_ends == 0
            and (self.exact_share >= 1 or self.edge_fraction == 0 and self.floor_mm == 0)
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "annotator") -> "Annotator":
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise InputError(
                f"{where}: unknown annotator setting(s) {bad} (known: {sorted(known)})"
            )
        try:
            return cls(
                **{k: (int(v) if k == "voxels" else float(v)) for k, v in d.items()}
            ).validate()
        except (TypeError, ValueError) as e:
            raise InputError(f"{where}: bad annotator setting ({e})") from e

    @classmethod
    def parse(cls, spec: str) -> "Annotator":
        """``"default"``, ``"exact"``, ``"voxels=2"`` or ``"edge_fraction=0.15,exact_share=0.5"``."""
        spec = spec.strip()
        if spec in ("", "default"):
            return cls()
        if spec == "exact":
            return cls.exact()
        items = {}
        for part in spec.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise InputError(
                    f"annotator setting {part!r}: write key=value (e.g. edge_fraction=0.1)"
                )
            items[key.strip()] = value.strip()
        if set(items) == {"voxels"}:
            return cls.stress(int(items["voxels"]))
        return cls.from_dict(items, f"annotator {spec!r}")

    def describe(self) -> str:
        if self.voxels:
            return f"+/-{self.voxels} voxel edge jitter (stress)"
        if self.is_exact:
            return "exact boxes"
        ends = f", end slices skipped with p={self.skip_ends:g}" if self.skip_ends else ""
        return (
            f"edges +/-{100 * self.edge_fraction:g} % of the box extent ({self.floor_mm:g}-{self.cap_mm:g} mm), "
            f"{100 * self.exact_share:g} % exact{ends}"
        )

    # ------------------------------------------------------------------ drawing
    def edge_moves(
        self, rng: np.random.Generator, extent_xy: np.ndarray, spacing_xy: Sequence[float]
    ) -> np.ndarray:
        """Integer moves ``(n, 4)`` for boxes of ``extent_xy`` (n, 2) voxels: (dxmin, dymin, dxmax, dymax)."""
        n = len(extent_xy)
        if self.voxels:
            return rng.integers(-self.voxels, self.voxels + 1, size=(n, 4))
        spacing = np.asarray(spacing_xy, float)
        extent_mm = np.asarray(extent_xy, float) * spacing  # (n, 2)
        bound_mm = np.clip(self.edge_fraction * extent_mm, self.floor_mm, self.cap_mm)
        bound_mm = np.concatenate([bound_mm, bound_mm], axis=1)  # (n, 4): x, y, x, y
        moves_mm = rng.uniform(-1, 1, size=(n, 4)) * bound_mm
        moves = np.rint(moves_mm / np.concatenate([spacing, spacing])).astype(int)
        moves[rng.random(n) < self.exact_share] = 0
        return moves

    def skipped_slices(
        self, rng: np.random.Generator, lesion_slices: dict[int, list[int]]
    ) -> set[tuple[int, int]]:
        """(lesion, slice) pairs left unboxed: each end of a lesion spanning >= 3 slices with p=skip_ends."""
        out = set()
        if not self.skip_ends:
            return out
        for lesion, zs in lesion_slices.items():
            zs = sorted(zs)
            if len(zs) < 3:
                continue
            for z in (zs[0], zs[-1]):
                if rng.random() < self.skip_ends:
                    out.add((lesion, z))
        return out


DEFAULT_ANNOTATOR = Annotator()


def annotator_from(annotator: Annotator | str | dict | None = None) -> Annotator:
    """The annotator of a setting: an :class:`Annotator`, its spec (``Annotator.parse``), its dict, or
    None (the default model)."""
    if isinstance(annotator, Annotator):
        return annotator.validate()
    if isinstance(annotator, str):
        return Annotator.parse(annotator)
    if isinstance(annotator, dict):
        return Annotator.from_dict(annotator)
    return DEFAULT_ANNOTATOR


def refuse_jitter(jitter: object, where: str) -> None:
    """The removed ``jitter`` setting: 0 (or absent) meant the annotator model, as now; any other value is
    an :class:`InputError` saying what replaces it (``where``: the file or flag that set it)."""
    if jitter in (None, 0):
        return
    raise InputError(
        f"{where}: jitter = {jitter!r} was removed; the same absolute +/-N-voxel stress boxes are the "
        f"annotator 'voxels={jitter}' (--annotator voxels={jitter}, or annotator = \"voxels={jitter}\")"
    )
