"""Writing derived nnU-Net raw datasets (teacher, student) all at once: files go to a hidden staging
folder beside the target, ``dataset.json`` is written last, then the folder is renamed into place.
An interrupted run leaves only the staging folder (removed by the next run), never a half dataset."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk

from ..core import dataset_keys as keys
from ..core.errors import InputError
from ..formats.images import IMAGE_SUFFIX
from .plans import nnunet_dir


# dataset.json key: {case: repeats} for size-balanced sampling (read by the student trainers)
SAMPLING_WEIGHTS_KEY = keys.SAMPLING_WEIGHTS


def find_raw_dataset(dataset: int | str) -> Path:
    """A raw dataset by id (``501``) or folder name (``Dataset501_X``)."""
    root = nnunet_dir("nnUNet_raw")
    if isinstance(dataset, int) or str(dataset).isdigit():
        hits = sorted(root.glob(f"Dataset{int(dataset):03d}_*"))
    else:
        hits = [root / str(dataset)] if (root / str(dataset)).is_dir() else []
    hits = [h for h in hits if h.is_dir()]
    if not hits:
        raise InputError(f"{root}: no raw dataset {dataset}")
    if not (hits[0] / "dataset.json").is_file():
        raise InputError(f"{hits[0]}: dataset.json missing")
    return hits[0]


def training_cases(folder: Path) -> list[str]:
    """Case ids of ``labelsTr`` (one label per case), sorted."""
    labels = folder / "labelsTr"
    if not labels.is_dir():
        raise InputError(f"{labels}: missing")
    return sorted(
        p.name[: -len(IMAGE_SUFFIX)]
        for p in labels.glob(f"*{IMAGE_SUFFIX}")
        if not p.name.startswith(".")
    )


@contextmanager
def staged_dataset(dataset_id: int, name: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces/creates ``Dataset{id}_{name}``. Refuses an
    existing dataset with the same id (whatever its name) or name unless ``overwrite``."""
    root = nnunet_dir("nnUNet_raw")
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"Dataset{dataset_id:03d}_{name}"
    existing = [p for p in root.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir()]
    existing += [p for p in root.glob(f"Dataset*_{name}") if p.is_dir() and p not in existing]
    if existing and not overwrite:
        raise InputError(
            f"{existing[0]}: an nnU-Net dataset with id {dataset_id} or name {name!r} exists; "
            "pass --overwrite to replace it"
        )
    staging = root / f".staging_{target.name}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        yield staging
        if not (staging / "dataset.json").is_file():
            raise RuntimeError("staged dataset has no dataset.json")
        for p in existing:
            shutil.rmtree(p)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def write_dataset_json(
    folder: Path, channel_names: dict, labels: dict, num_training: int, **extra
) -> None:
    d = {
        "channel_names": channel_names,
        "labels": labels,
        "numTraining": num_training,
        "file_ending": IMAGE_SUFFIX,
        **extra,
    }
    (folder / "dataset.json").write_text(json.dumps(d, indent=1))


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link when possible (same file system, no extra space), else copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_mask(array: np.ndarray, reference: sitk.Image, path: Path) -> None:
    img = sitk.GetImageFromArray(array.astype(np.uint8))
    img.CopyInformation(reference)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), useCompression=True)
