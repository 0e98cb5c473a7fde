"""The settings of ``nnts make-scenario`` (:func:`~.scenario.make_scenario`) and ``nnts make-student-dataset``
(:func:`~.dataset.make_student_dataset`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..formats.annotator import Annotator
from ..formats.boxes import BoxMode
from ..teacher.settings import annotator_arg, box_drawing_args

Form = Literal["so", "do", "ignore"]


@dataclass(frozen=True)
class ScenarioSettings:
    """A scenario: ``strong_count`` strong cases of a strong dataset kept, the others as a weak set."""

    strong: int | str  # the pool: strong raw dataset id or folder name
    out_dir: str | Path  # the weak set to write
    strong_count: int
    new_strong_id: int
    name: str  # of the new strong dataset
    seed: int = 0
    box_mode: BoxMode = "lesion"
    manifest: str | Path | None = None
    size_balance: bool = False
    overwrite: bool = False
    progress: bool = True
    annotator: Annotator | str | dict | None = None
    strong_sites: tuple[str, ...] | None = None  # the strong cases come from these sites only

    def cli_args(self) -> list[str]:
        """The ``nnts make-scenario`` flags that give these settings (defaults left out)."""
        args = ["--strong", str(self.strong), "-d", str(self.new_strong_id), "--name", self.name]
        args += ["--strong-count", str(self.strong_count), "-o", str(self.out_dir)]
        if self.annotator is not None:
            args += ["--annotator", annotator_arg(self.annotator)]
        if self.strong_sites:
            args += ["--strong-sites", *self.strong_sites]
        args += box_drawing_args(self.seed, self.box_mode, self.manifest)
        flags = {"--size-balance": self.size_balance, "--overwrite": self.overwrite}
        return args + [f for f, on in {**flags, "--quiet": not self.progress}.items() if on]


@dataclass(frozen=True)
class StudentDatasetSettings:
    """A student dataset: strong cases (true masks) and weak cases (pseudo masks, or boxes for ``ignore``)."""

    strong: int | str  # strong raw dataset id or folder name
    dataset_id: int
    name: str
    form: Form = "so"
    weak_dir: str | Path | None = None
    pseudo_dir: str | Path | None = None
    manifest: str | Path | None = None
    n_folds: int = 5
    seed: int = 0
    size_balance: bool = False
    crop: str | None = None  # "lungs": every case cropped to its lungs
    lung_weights: str | None = None  # lungmask R231 weights (else the classical lung mask)
    crop_margin_mm: float = 10.0
    exclude: frozenset[str] = frozenset()  # cases left out (no command-line flag)
    overwrite: bool = False
    uncertain_band: tuple[float, float] | None = None  # (lo, hi): the uncertainty-aware form

    def cli_args(self) -> list[str]:
        """The ``nnts make-student-dataset`` flags that give these settings (defaults left out)."""
        if self.exclude:
            raise ValueError("make-student-dataset has no flag for excluded cases")
        args = ["--strong", str(self.strong), "-d", str(self.dataset_id), "--name", self.name]
        if self.form != "so":
            args += ["--form", self.form]
        for flag, value in (
            ("--weak", self.weak_dir),
            ("--pseudo", self.pseudo_dir),
            ("--manifest", self.manifest),
            ("--crop", self.crop),
            ("--lungmask-weights", self.lung_weights),
        ):
            if value is not None:
                args += [flag, str(value)]
        if self.n_folds != 5:
            args += ["--folds", str(self.n_folds)]
        if self.seed:
            args += ["--seed", str(self.seed)]
        if self.crop_margin_mm != 10.0:
            args += ["--crop-margin-mm", str(self.crop_margin_mm)]
        if self.uncertain_band is not None:
            args += ["--uncertain-band", *map(str, self.uncertain_band)]
        flags = {"--size-balance": self.size_balance, "--overwrite": self.overwrite}
        return args + [f for f, on in flags.items() if on]
