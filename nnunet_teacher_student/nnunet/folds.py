"""Cross-validation folds of our datasets: grouped by patient, written where nnU-Net reads them.

nnU-Net makes its own 5-fold split when a dataset has no ``splits_final.json``; that split ignores
patients and fails with fewer than 5 cases. Our datasets bring their own: ``splits_final.json`` beside
the raw dataset (travels with it) and in its preprocessed folder (where nnU-Net reads it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.files import write_text_atomic
from ..formats.manifest import manifest_cases, read_manifest
from .plans import nnunet_dir
from .raw_dataset import find_raw_dataset

SPLITS_FILE = "splits_final.json"


def load_manifest_cases(path: str | Path | None) -> dict[str, dict]:
    """``{case: info}`` of a manifest (phantom or converter), ``{}`` without one."""
    if not path:
        return {}
    cases = manifest_cases(read_manifest(path))
    return {k: v for k, v in cases.items() if isinstance(v, dict)}


def patient_folds(
    cases: list[str], patients: dict[str, str], n_folds: int = 5, seed: int = 0
) -> list[list[str]]:
    """Cases split into ``n_folds`` validation folds, never splitting a patient across folds."""
    groups: dict[str, list[str]] = {}
    for c in cases:
        groups.setdefault(patients.get(c, c), []).append(c)
    order = sorted(groups)
    np.random.default_rng(seed).shuffle(order)
    n_folds = max(1, min(n_folds, len(order)))
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for i, patient in enumerate(order):
        folds[i % n_folds].extend(sorted(groups[patient]))
    return folds


def make_splits(
    strong: list[str], pseudo: list[str], patients: dict[str, str], n_folds: int = 5, seed: int = 0
) -> list[dict[str, list[str]]]:
    """nnU-Net splits: validation = strong cases of one fold; training = other strong + all pseudo."""
    folds = patient_folds(strong, patients, n_folds, seed)
    if (
        len(folds) == 1
    ):  # one patient: nothing to hold out, so it validates on its own training data
        return [{"train": sorted(list(strong) + list(pseudo)), "val": sorted(strong)}]
    splits = []
    for k, val in enumerate(folds):
        train = [c for j, f in enumerate(folds) if j != k for c in f] + list(pseudo)
        splits.append({"train": sorted(train), "val": sorted(val)})
    return splits


def write_splits(raw_folder: Path, splits: list[dict[str, list[str]]]) -> None:
    """``splits_final.json`` into a (staged) raw dataset folder."""
    (Path(raw_folder) / SPLITS_FILE).write_text(json.dumps(splits, indent=1))


def install_splits(dataset_id: int | str) -> Path:
    """Copy a raw dataset's ``splits_final.json`` to its preprocessed folder; returns the raw folder."""
    folder = find_raw_dataset(dataset_id)
    pre = nnunet_dir("nnUNet_preprocessed") / folder.name
    pre.mkdir(parents=True, exist_ok=True)
    write_text_atomic((folder / SPLITS_FILE).read_text(), pre / SPLITS_FILE)
    return folder
