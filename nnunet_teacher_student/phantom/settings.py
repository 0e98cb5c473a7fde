"""The settings of ``nnts synth`` (:func:`~.datasets.write_phantom_datasets`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..formats.annotator import Annotator


@dataclass(frozen=True)
class PhantomSettings:
    """What :func:`~.datasets.write_phantom_datasets` writes: where, how many cases, and how they are drawn."""

    out_dir: str | os.PathLike
    dataset_id: int
    n_strong: int = 8
    n_weak: int = 24
    n_test: int = 8
    seed: int = 0
    preset: str = "default"
    scale: float | None = None  # anatomy scale (default: the preset's)
    raw_dir: str | os.PathLike | None = None  # default: $nnUNet_raw
    dataset_name: str = "PhantomLung"
    num_processes: int = 1
    overwrite: bool = False
    sites: str | Sequence[str] = "mixed"
    progress: bool = True
    annotator: Annotator | str | dict | None = None
    tumour_free: float | None = None  # share of every split without tumour
    family: str = "standard"
    #: other :class:`~.cases.PhantomConfig` fields (spacing_xy, spacing_z, inplane_px, slices, tumour_scale)
    config_overrides: Mapping[str, Any] = field(default_factory=dict)
