"""Medical Segmentation Decathlon Task06_Lung -> nnU-Net raw dataset.

Layout: ``SRC/imagesTr/lung_XXX.nii.gz``, ``SRC/labelsTr/lung_XXX.nii.gz`` (0 background,
1 tumour), ``SRC/dataset.json``. The ``._*`` files of the archive are ignored. Every image keeps
its own geometry; its label must lie on the same grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.geometry import read_image
from .masks import binary_mask, mask_on_ct
from .outputs import StrongOutput, prepare_strong_output
from .runner import CaseResult, Summary, TaskReport, run_tasks
from .settings import ConversionSettings

DATASET = "msd-lung"
DEFAULT_NAME = "MSDLung"
SUFFIX = ".nii.gz"


def find_cases(src: Path) -> list[str]:
    """Case ids of ``imagesTr`` (without macOS ``._*`` files)."""
    images = src / "imagesTr"
    if not images.is_dir():
        raise InputError(f"{src}: not a Task06_Lung folder (no imagesTr/)")
    cases = sorted(
        p.name[: -len(SUFFIX)] for p in images.glob(f"*{SUFFIX}") if not p.name.startswith(".")
    )
    if not cases:
        raise InputError(f"{images}: no {SUFFIX} images")
    return cases


def read_binary_label(path: Path, image: sitk.Image, what: str) -> np.ndarray:
    """A 0/1 label on ``image``'s voxels (see :func:`mask_on_ct`), as a uint8 ``[z, y, x]`` array."""
    return binary_mask(mask_on_ct(read_image(path), image, f"{what}: label {path}"), str(path))


def convert_case(src: str, case: str, out: StrongOutput) -> TaskReport:
    """Convert one MSD case (or report it as already done)."""
    resumed = out.resumed(case)
    if resumed is not None:
        return resumed
    src_path = Path(src)
    image_path, label_path = (
        src_path / "imagesTr" / f"{case}{SUFFIX}",
        src_path / "labelsTr" / f"{case}{SUFFIX}",
    )
    if not label_path.is_file():
        return TaskReport([CaseResult(case, "skipped", f"no label {label_path}")])
    image = read_image(image_path)
    label = read_binary_label(label_path, image, f"case {case}")
    if not label.any():
        return TaskReport([CaseResult(case, "skipped", f"{label_path}: empty tumour mask")])
    info = {
        "patient": case,
        "dataset": DATASET,
        "source": str(image_path),
        "tumour_voxels": int(label.sum()),
    }
    out.write(case, image, label, info)
    return TaskReport([CaseResult(case, "converted", info=info)])


def convert_msd_lung(src: str | Path, settings: ConversionSettings) -> tuple[Summary, StrongOutput]:
    """Convert Task06_Lung into ``Dataset{dataset_id:03d}_{name}`` (name default ``MSDLung``); returns the
    summary and the output."""
    src = Path(src)
    cases = find_cases(src)
    options = {"converter": DATASET, "source": str(src.resolve())}
    out = prepare_strong_output(settings, settings.dataset_name(DEFAULT_NAME), options)
    reports = run_tasks(
        convert_case,
        [(c, {"src": str(src), "case": c, "out": out}) for c in cases],
        settings.num_processes,
        desc=DATASET,
    )
    summary = Summary(DATASET, str(src), str(out.root), reports)
    out.finish(summary)
    return summary, out
