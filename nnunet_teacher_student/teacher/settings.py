"""The settings of ``nnts make-teacher-dataset`` (:func:`~.dataset.make_teacher_dataset`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..formats.annotator import Annotator
from ..formats.boxes import BoxMode


def annotator_arg(annotator: Annotator | str | dict) -> str:
    """The ``--annotator`` value of an annotator given as a spec, a settings dict or an :class:`Annotator`."""
    if isinstance(annotator, str):
        return annotator
    items = annotator.to_dict() if isinstance(annotator, Annotator) else annotator
    return ",".join(f"{k}={v}" for k, v in items.items())


def box_drawing_args(seed: int, box_mode: BoxMode, manifest: str | Path | None) -> list[str]:
    """``--seed``, ``--box-mode`` and ``--manifest`` of the commands that draw boxes from masks (defaults left
    out)."""
    args = ["--seed", str(seed)] if seed else []
    if box_mode != "lesion":
        args += ["--box-mode", box_mode]
    if manifest is not None:
        args += ["--manifest", str(manifest)]
    return args


@dataclass(frozen=True)
class TeacherDatasetSettings:
    """A teacher dataset (CT + box channel) from a strong raw dataset and optionally a weak set."""

    strong: int | str  # strong raw dataset id or folder name
    dataset_id: int
    name: str = "Teacher"
    seed: int = 0
    box_mode: BoxMode = "lesion"
    weak_dir: str | Path | None = None
    exclude: frozenset[str] = frozenset()  # cases left out (no command-line flag)
    overwrite: bool = False
    manifest: str | Path | None = None
    n_folds: int = 5
    annotator: Annotator | str | dict | None = None

    def cli_args(self) -> list[str]:
        """The ``nnts make-teacher-dataset`` flags that give these settings (defaults left out)."""
        if self.exclude:
            raise ValueError("make-teacher-dataset has no flag for excluded cases")
        args = ["--strong", str(self.strong), "-d", str(self.dataset_id)]
        if self.name != "Teacher":
            args += ["--name", self.name]
        if self.weak_dir is not None:
            args += ["--weak", str(self.weak_dir)]
        if self.annotator is not None:
            args += ["--annotator", annotator_arg(self.annotator)]
        args += box_drawing_args(self.seed, self.box_mode, self.manifest)
        if self.n_folds != 5:
            args += ["--folds", str(self.n_folds)]
        return args + (["--overwrite"] if self.overwrite else [])
