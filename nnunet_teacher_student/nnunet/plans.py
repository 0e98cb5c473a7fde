"""Small helpers around nnU-Net's plans and folders: add a reduced configuration for CPU runs,
copy plans between datasets, locate datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import MutableMapping

from ..core.errors import InputError
from ..core.files import write_text_atomic


def ext_trainer_dir() -> Path:
    """Folder holding only the module that re-exports our trainers (for ``nnUNet_extTrainer``)."""
    return Path(__file__).resolve().parents[1] / "nnunet_ext"


def with_ext_trainer(env: MutableMapping[str, str]) -> str:
    """Add our trainer folder to ``env["nnUNet_extTrainer"]`` unless it is there already; returns the
    folder list (empty entries dropped) with ours last."""
    current = [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    ext = str(ext_trainer_dir())
    if ext not in current:
        current.append(ext)
        env["nnUNet_extTrainer"] = os.pathsep.join(current)
    return os.pathsep.join(current)


def ensure_ext_trainer_path() -> None:
    """Add our trainer folder to ``nnUNet_extTrainer`` in this process, so nnU-Net's predictor
    finds our trainers even when the user did not export it."""
    with_ext_trainer(os.environ)


def nnunet_dir(name: str) -> Path:
    """The folder an nnU-Net environment variable points at; a clear error when unset."""
    value = os.environ.get(name)
    if not value:
        raise InputError(f'environment variable {name} is not set (run: eval "$(nnts env)")')
    return Path(value)


def dataset_folder_name(dataset_id: int, root: Path | None = None) -> str | None:
    """``DatasetXXX_Name`` of an existing dataset id under ``root`` (default nnUNet_raw), or None."""
    root = root or nnunet_dir("nnUNet_raw")
    if not root.is_dir():
        return None
    matches = sorted(p.name for p in root.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir())
    return matches[0] if matches else None


def plans_path(dataset_id: int, plans_name: str = "nnUNetPlans") -> Path:
    pre = nnunet_dir("nnUNet_preprocessed")
    name = dataset_folder_name(dataset_id, pre)
    if name is None:
        raise InputError(
            f"{pre}: no preprocessed dataset {dataset_id} (run nnUNetv2_plan_and_preprocess -d {dataset_id})"
        )
    return pre / name / f"{plans_name}.json"


def add_small_configuration(
    dataset_id: int,
    name: str = "3d_small",
    patch_size=(16, 32, 32),
    features=(8, 16, 32),
    batch_size: int = 2,
    base: str = "3d_fullres",
    plans_name: str = "nnUNetPlans",
    spacing=None,
) -> str:
    """Add a configuration inheriting ``base`` with a smaller patch and network. Without ``spacing`` it
    uses ``base``'s preprocessed data (no new preprocessing); with ``spacing`` (mm, z y x) it resamples
    to it and has its own data folder (``nnUNetv2_preprocess -c NAME``). Strides: 1 then 2 per stage,
    limited by the patch size."""
    path = plans_path(dataset_id, plans_name)
    plans = json.loads(path.read_text())
    if base not in plans["configurations"]:
        raise InputError(f"{path}: no configuration {base!r}")
    arch = json.loads(json.dumps(plans["configurations"][base]["architecture"]))
    n = len(features)
    strides = [[1, 1, 1]] + [
        [2 if p // 2 ** (i + 1) >= 4 else 1 for p in patch_size] for i in range(n - 1)
    ]
    kw = arch["arch_kwargs"]
    kw.update(
        n_stages=n,
        features_per_stage=list(features),
        kernel_sizes=[[3, 3, 3]] * n,
        strides=strides,
        n_conv_per_stage=[2] * n,
        n_conv_per_stage_decoder=[2] * (n - 1),
    )
    config = {
        "inherits_from": base,
        "patch_size": list(patch_size),
        "batch_size": batch_size,
        "architecture": arch,
    }
    if spacing is not None:
        config.update(spacing=[float(s) for s in spacing], data_identifier=f"{plans_name}_{name}")
    plans["configurations"][name] = config
    write_text_atomic(json.dumps(plans, indent=2), path)
    return name
