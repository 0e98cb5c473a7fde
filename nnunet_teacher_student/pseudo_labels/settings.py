"""The settings of ``nnts pseudo-label`` (:class:`PseudoLabelSettings`): the command line, the pipeline and the
Python API (:func:`.run.pseudo_label`) build the same object."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.defaults import BOX_MARGIN_MM
from .qc import FILTERS

#: ``-device``'s default on the command line (the Python API's is ``cpu``)
CLI_DEVICE = "auto"


def _path(value: str | os.PathLike | None) -> Path | None:
    return value if value is None or isinstance(value, Path) else Path(os.fspath(value))


@dataclass(frozen=True)
class PseudoLabelSettings:
    """Which teacher ``nnts pseudo-label`` runs, how, which QC filters apply and what it writes."""

    # the teacher: a trained model (model_folder, folds, checkpoint; mode None: from the trainer name) or the
    # classical rule
    teacher: str = "model"
    model_folder: Path | None = None
    folds: tuple[int | str, ...] = (0,)
    checkpoint: str = "checkpoint_final.pth"
    mode: str | None = None
    device: str = "cpu"
    tta: bool = True
    box_margin_mm: float = BOX_MARGIN_MM
    # the QC filters (None: off; each named as in qc.FILTERS) and what a failing case gets (flag or drop)
    min_box_fill: float | None = None
    min_box_iou: float | None = None
    max_entropy: float | None = None
    max_empty_slices: int | None = None
    min_volume_ml: float | None = None
    max_disagreement: float | None = None
    max_label_change: float | None = None
    filter_mode: str = "flag"
    # the QC's true masks (None: the weak set's labels/) and the previous noisy-student round's pseudo-labels
    labels_dir: Path | None = None
    previous: Path | None = None
    # the files and the run
    save_probabilities: bool = False
    overwrite: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:  # one spelling of folds and paths, whoever builds it
        if not isinstance(self.folds, tuple):
            object.__setattr__(self, "folds", tuple(self.folds))
        for name in ("model_folder", "labels_dir", "previous"):
            object.__setattr__(self, name, _path(getattr(self, name)))

    @property
    def filters(self) -> dict[str, float]:
        """The QC filters that are on: filter name -> threshold."""
        return {k: getattr(self, k) for k in FILTERS if getattr(self, k) is not None}

    def cli_args(self) -> list[str]:
        """The ``nnts pseudo-label`` flags (besides ``-i``, ``-o`` and the part) that give these settings;
        defaults left out."""
        default = PseudoLabelSettings()
        args: list[str] = []
        if self.teacher != default.teacher:
            args += ["--teacher", self.teacher]
        if self.model_folder is not None:
            args += ["-m", str(self.model_folder)]
        if self.folds != default.folds:
            args += ["-f", *map(str, self.folds)]
        if self.checkpoint != default.checkpoint:
            args += ["-chk", self.checkpoint]
        if self.mode is not None:
            args += ["--mode", self.mode]
        if self.device != CLI_DEVICE:
            args += ["-device", self.device]
        if self.box_margin_mm != default.box_margin_mm:
            args += ["--box-margin-mm", str(self.box_margin_mm)]
        for name, value in self.filters.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        if self.filter_mode != default.filter_mode:
            args += ["--filter-mode", self.filter_mode]
        for flag, path in (("--labels", self.labels_dir), ("--previous", self.previous)):
            if path is not None:
                args += [flag, str(path)]
        args += [flag for flag, on in self._switches() if on]
        return args

    def _switches(self) -> list[tuple[str, bool]]:
        """(flag, given) of the on/off flags."""
        return [
            ("--disable-tta", not self.tta),
            ("--save-probabilities", self.save_probabilities),
            ("--overwrite", self.overwrite),
            ("--quiet", self.quiet),
        ]
