"""The settings of ``nnts predict`` (:class:`PredictSettings`): the command line, the pipeline and the Python API
(:func:`.case.predict_case`, :func:`.batch.predict_path`) build the same object."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: the default of where the lung box is cut: from nnU-Net's resampled CT (True: its own voxel grid, closer to
#: full-volume prediction, but the whole CT is resampled) or from the CT before it (False: faster; BENCHMARKS.md)
CROP_AFTER_RESAMPLING = False
#: the default of growing each box onto nnU-Net's whole-CT sample positions (:mod:`.grid`; never adds a tile): with
#: models that work on the CT's field of view it agreed as well or better with full-volume prediction (BENCHMARKS.md)
ALIGN_GRID = True
#: ``-device``'s default on the command line (the Python API's is ``cpu``)
CLI_DEVICE = "auto"


@dataclass(frozen=True)
class PredictSettings:
    """How ``nnts predict`` loads the model, chooses the regions, keeps lesions and writes its files."""

    # the model (folds None: every fold_X with the checkpoint)
    folds: tuple[int | str, ...] | None = None
    checkpoint: str = "checkpoint_final.pth"
    device: str = "cpu"
    tta: bool = True
    step_size: float = 0.5
    # the regions: lung box(es) grown by margin_mm; per_lung None: the layout with fewer network passes
    lung_crop: bool = True
    per_lung: bool | None = None
    crop_after_resampling: bool = CROP_AFTER_RESAMPLING
    align_grid: bool = ALIGN_GRID
    skip_tiles: bool = True
    margin_mm: float = 10.0
    # the lung mask, the lesions kept (within lung_dilation_mm of the lungs; None: all) and the tumour label
    lung_weights: Path | None = None
    lung_method: str = "auto"
    lung_dilation_mm: float | None = 5.0
    label: int | None = None
    # the files
    save_probabilities: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:  # one spelling of folds and weights, whoever builds it
        if self.folds is not None and not isinstance(self.folds, tuple):
            object.__setattr__(self, "folds", tuple(self.folds))
        if self.lung_weights is not None and not isinstance(self.lung_weights, Path):
            object.__setattr__(self, "lung_weights", Path(os.fspath(self.lung_weights)))

    def cli_args(self) -> list[str]:
        """The ``nnts predict`` flags (besides ``-i``, ``-o``, ``-m``) that give these settings; defaults left
        out. ``align_grid=False`` has no flag: a :class:`ValueError`."""
        if self.align_grid != ALIGN_GRID:
            raise ValueError(f"align_grid={self.align_grid} has no nnts predict flag")
        default = PredictSettings()
        args: list[str] = []
        if self.folds is not None:
            args += ["-f", *map(str, self.folds)]
        if self.checkpoint != default.checkpoint:
            args += ["-chk", self.checkpoint]
        if self.device != CLI_DEVICE:
            args += ["-device", self.device]
        if self.step_size != default.step_size:
            args += ["--step-size", str(self.step_size)]
        args += [flag for flag, on in self._switches() if on]
        if self.per_lung is not None:
            args.append("--per-lung" if self.per_lung else "--one-box")
        if self.crop_after_resampling != default.crop_after_resampling:
            args.append(
                "--crop-after-resampling"
                if self.crop_after_resampling
                else "--crop-before-resampling"
            )
        if self.margin_mm != default.margin_mm:
            args += ["--margin-mm", str(self.margin_mm)]
        if self.lung_weights is not None:
            args += ["--lungmask-weights", str(self.lung_weights)]
        if self.lung_method != default.lung_method:
            args += ["--lung-method", self.lung_method]
        if self.lung_dilation_mm is None:
            args.append("--keep-outside-lungs")
        elif self.lung_dilation_mm != default.lung_dilation_mm:
            args += ["--lung-dilation-mm", str(self.lung_dilation_mm)]
        if self.label is not None:
            args += ["--label", str(self.label)]
        return args

    def _switches(self) -> list[tuple[str, bool]]:
        """(flag, given) of the on/off flags."""
        return [
            ("--disable-tta", not self.tta),
            ("--no-lung-crop", not self.lung_crop),
            ("--all-tiles", not self.skip_tiles),
            ("--save-probabilities", self.save_probabilities),
            ("--overwrite", self.overwrite),
        ]
