"""Where the box teacher is unsure: a probability band calibrated on the strong cases.

The teacher segments the strong cases from fresh annotator boxes (as its guard does); inside the boxes
(dilated like the pseudo-label constraint) its tumour probabilities are binned against the true masks. A bin
is *unsure* when thresholding at 0.5 is wrong for more than ``max_error`` of its voxels. The band grows from
0.5 outwards over the unsure bins and stops at the first sure bin on each side; voxels whose probability lies
in the band become nnU-Net's ignore label in an uncertainty-aware student dataset
(``make-student-dataset --uncertain-band``). With cross-validation folds each strong case is predicted by the
fold that did not train on it (held out); with fold ``all`` the teacher saw every strong case, its
probabilities there are over-confident and the band comes out narrow (the band file says which).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.geometry import spacing_zyx
from ..core.defaults import BOX_MARGIN_MM
from ..core.errors import InputError
from ..core.files import write_text_atomic
from .inference import dilate_in_plane

N_BINS = 20
MAX_ERROR = 0.2


def reliability_counts(
    probability: np.ndarray, truth: np.ndarray, region: np.ndarray, n_bins: int = N_BINS
) -> np.ndarray:
    """``[n_bins, 2]`` voxel counts inside ``region``: per probability bin, background and tumour voxels."""
    p = np.clip(probability[region > 0], 0, 1)
    t = truth[region > 0] > 0
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    return np.stack(
        [np.bincount(bins[~t], minlength=n_bins), np.bincount(bins[t], minlength=n_bins)], axis=1
    )


def band_from_counts(counts: np.ndarray, max_error: float = MAX_ERROR) -> tuple[float, float]:
    """The unsure band ``(lo, hi)`` around 0.5 (see the module text); ``(0.5, 0.5)`` when no bin next to 0.5
    is unsure. Empty bins count as unsure: nothing shows the teacher is right there."""
    counts = np.asarray(counts, float)
    n_bins = len(counts)
    if n_bins % 2:
        raise ValueError("the band needs an even number of bins (0.5 on a bin edge)")
    total = counts.sum(axis=1)
    wrong = np.where(np.arange(n_bins) < n_bins // 2, counts[:, 1], counts[:, 0])
    unsure = (total == 0) | (wrong > max_error * np.maximum(total, 1))
    lo = n_bins // 2
    while lo > 0 and unsure[lo - 1]:
        lo -= 1
    hi = n_bins // 2
    while hi < n_bins and unsure[hi]:
        hi += 1
    return lo / n_bins, hi / n_bins


def _held_out_cases(model_folder: Path, folds: Sequence[int | str]) -> dict | None:
    """fold -> its validation cases from nnU-Net's ``splits_final.json``; None for fold ``all``."""
    if any(f == "all" for f in folds):
        return None
    from nnunetv2.paths import nnUNet_preprocessed

    splits_path = Path(nnUNet_preprocessed or "") / model_folder.parent.name / "splits_final.json"
    if not splits_path.is_file():
        raise InputError(
            f"{splits_path}: no nnU-Net splits for the folds {list(folds)} (plan the teacher dataset "
            "first, or calibrate fold all)"
        )
    splits = json.loads(splits_path.read_text())
    return {int(f): list(splits[int(f)]["val"]) for f in folds}


def calibrate_band(
    model_folder: str | Path,
    folds: Sequence[int | str],
    teacher_dataset: str | Path,
    seed: int = 0,
    device: str = "cpu",
    box_margin_mm: float = BOX_MARGIN_MM,
    max_error: float = MAX_ERROR,
    n_bins: int = N_BINS,
) -> dict:
    """Calibrate the band on the strong cases of ``teacher_dataset`` (a raw dataset folder); returns the band
    document (``band``, ``held_out``, the bins' counts)."""
    from .guard import strong_case_predictions

    if not 0 < max_error < 0.5:
        raise InputError(f"--max-error must be in (0, 0.5), got {max_error}")
    folder, data = Path(model_folder).resolve(), Path(teacher_dataset)
    held_out = _held_out_cases(folder, folds)
    counts = np.zeros((n_bins, 2), int)
    cases = []
    for case, ct, label, boxes, pred in strong_case_predictions(
        folder, folds, data, seed, device, False, box_margin_mm, held_out
    ):
        region = dilate_in_plane(pred.box_mask, spacing_zyx(ct), box_margin_mm)
        counts += reliability_counts(pred.probability, label, region, n_bins)
        cases.append(case)
    if not cases:
        raise InputError(f"{data}: no strong case to calibrate on")
    lo, hi = band_from_counts(counts, max_error)
    return {
        "band": [lo, hi],
        "max_error": max_error,
        "held_out": held_out is not None,
        "cases": cases,
        "teacher_model_folder": str(folder),
        "folds": [str(f) for f in folds],
        "seed": seed,
        "bins": [[i / n_bins, (i + 1) / n_bins, int(b), int(t)] for i, (b, t) in enumerate(counts)],
    }


def write_band(doc: dict, path: str | Path) -> None:
    write_text_atomic(json.dumps(doc, indent=1), Path(path))


def read_band(path: str | Path) -> tuple[float, float]:
    """The ``(lo, hi)`` band of a band file (``nnts calibrate-band``)."""
    path = Path(path)
    try:
        lo, hi = json.loads(path.read_text())["band"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a band file of nnts calibrate-band ({e})") from e
    return check_band(float(lo), float(hi), str(path))


def check_band(lo: float, hi: float, where: str = "--uncertain-band") -> tuple[float, float]:
    if not 0 <= lo <= 0.5 <= hi <= 1:
        raise InputError(f"{where}: the band needs 0 <= LO <= 0.5 <= HI <= 1, got {lo}, {hi}")
    return lo, hi
