"""The box teacher's guard: score a trained teacher on its own strong cases with fresh boxes, retrain if it fails.

A teacher that stays in nnU-Net's all-background state, or misses a tumour its box frames, would
teach every student "no tumour". After training, the teacher segments each strong case from boxes
drawn anew by the dataset's annotator model (a seed the training never used); below ``min_dsc``
mean DSC, or with a box left empty that frames a real cross-section of its lesion (at least a quarter
of the lesion's largest axial area: a thin end slice of 1-3 voxels can vanish in the resampling to
the plans' spacing, whoever segments it), the training is set aside (``fold_X`` -> ``fold_X_seedS_failed``)
and repeated with the next seed, at most ``max_attempts`` times; the best attempt is kept.
``nnts_guard.json`` in the model folder records every attempt (``nnts_guard_folds_0_1_2.json`` for an ensemble
of folds, whose folds share the model folder with fold ``all``); reports read it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..core.defaults import BOX_MARGIN_MM, case_seed
from ..core import dataset_keys as keys
from ..core.components import label_components
from ..core.files import write_text_atomic
from ..core.geometry import Geometry, read_image, spacing_zyx
from ..evaluation.metrics import dice
from ..formats.annotator import annotator_from
from ..formats.box_channel import BOX_MODE_KEY
from ..formats.boxes import BoxSet, boxes_from_mask
from ..formats.images import IMAGE_SUFFIX
from ..nnunet.raw_dataset import training_cases

GUARD_FILE = "nnts_guard.json"
MIN_DSC = 0.80
MAX_ATTEMPTS = 3
FRESH_BOX_SEED = 7919  # added to the run seed: boxes the teacher never trained on
SUBSTANTIAL_AREA = 0.25  # an empty box fails the guard when its lesion area is >= this share of the lesion's largest


def strong_case_predictions(
    model_folder: Path,
    folds: Sequence[int | str],
    teacher_dataset: Path,
    seed: int,
    device: str = "cpu",
    tta: bool = False,
    box_margin_mm: float = BOX_MARGIN_MM,
    cases_of_fold: dict | None = None,
) -> Iterator[tuple]:
    """``(case, ct, true mask, boxes, TeacherPrediction)`` of the teacher on each strong case of its dataset, with
    boxes drawn anew by the dataset's annotator model (a seed the training never used). ``cases_of_fold``
    (fold -> cases): each fold's own model predicts only its cases (held-out validation cases); default: the
    ensemble of ``folds`` predicts every case."""
    from ..prediction.region import RegionPredictor
    from ..core.geometry import read_label
    from .inference import teacher_predict_case

    dataset_json = json.loads((teacher_dataset / "dataset.json").read_text())
    annotator = annotator_from(annotator=dataset_json.get(keys.ANNOTATOR))
    plan = cases_of_fold or {tuple(folds): training_cases(teacher_dataset)}
    index = {c: i for i, c in enumerate(training_cases(teacher_dataset))}
    for fold, cases in plan.items():
        predictor = RegionPredictor(
            model_folder, fold if isinstance(fold, tuple) else (fold,), device=device, tta=tta
        )
        for case in cases:
            ct = read_image(teacher_dataset / "imagesTr" / f"{case}_0000{IMAGE_SUFFIX}")
            label = read_label(teacher_dataset / "labelsTr" / f"{case}{IMAGE_SUFFIX}", ct)
            boxes = boxes_from_mask(
                label,
                dataset_json.get(BOX_MODE_KEY, "lesion"),
                seed=case_seed(seed + FRESH_BOX_SEED, index[case]),
                annotator=annotator,
                spacing_zyx=spacing_zyx(ct),
            )
            pred = teacher_predict_case(
                predictor, ct, BoxSet(Geometry.of(ct), boxes), box_margin_mm=box_margin_mm
            )
            yield case, ct, label, boxes, pred


def score_teacher(predictions: Iterable[tuple]) -> dict:
    """DSC per strong case of the teacher dataset and the boxes left empty, from the teacher's predictions with
    fresh annotator boxes (:func:`strong_case_predictions`)."""
    cases, empty, substantial, n_boxes = {}, [], [], 0
    for case, ct, label, boxes, pred in predictions:
        mask = pred.mask > 0
        cases[case] = round(dice(mask, label > 0), 4)
        n_boxes += len(boxes)
        lesions, _ = label_components(label > 0)
        largest: dict[int, int] = {}
        for z in range(lesions.shape[0]):
            ids, counts = np.unique(lesions[z][lesions[z] > 0], return_counts=True)
            for i, c in zip(ids, counts):
                largest[int(i)] = max(largest.get(int(i), 0), int(c))
        for b in boxes:
            if mask[b.slice, b.ymin : b.ymax + 1, b.xmin : b.xmax + 1].any():
                continue
            where = f"{case}: slice {b.slice}"
            empty.append(where)
            in_box = lesions[b.slice, b.ymin : b.ymax + 1, b.xmin : b.xmax + 1]
            ids, counts = np.unique(in_box[in_box > 0], return_counts=True)
            if any(c >= SUBSTANTIAL_AREA * largest[int(i)] for i, c in zip(ids, counts)):
                substantial.append(where)
    return {
        "dsc_mean": round(float(np.mean(list(cases.values()))), 4) if cases else None,
        "dsc_per_case": cases,
        "boxes": n_boxes,
        "empty_boxes": len(empty),
        "empty_box_list": empty[:50],
        "empty_substantial_boxes": len(substantial),
        "empty_substantial_list": substantial[:50],
    }


def passes(score: dict, min_dsc: float = MIN_DSC) -> bool:
    """Mean DSC >= ``min_dsc`` and no empty box over a real cross-section of its lesion."""
    return (
        score["dsc_mean"] is not None
        and score["dsc_mean"] >= min_dsc
        and score.get("empty_substantial_boxes", score["empty_boxes"]) == 0
    )


def guard_file(model_folder: Path, folds: Sequence[int | str] = ("all",)) -> Path:
    """The guard record of a teacher's ``folds`` (one record per set of folds: they share the model folder)."""
    folds = [str(f) for f in folds]
    return model_folder / (
        GUARD_FILE if folds == ["all"] else f"nnts_guard_folds_{'_'.join(folds)}.json"
    )


def load_guard(model_folder: Path, folds: Sequence[int | str] = ("all",)) -> dict:
    path = guard_file(model_folder, folds)
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def _set_aside(model_folder: Path, folds: Sequence[int | str], seed: int) -> None:
    for f in folds:
        src, dst = model_folder / f"fold_{f}", model_folder / f"fold_{f}_seed{seed}_failed"
        if src.is_dir():
            if dst.exists():
                shutil.rmtree(dst)
            os.replace(src, dst)


def _restore(model_folder: Path, folds: Sequence[int | str], seed: int) -> None:
    for f in folds:
        os.replace(model_folder / f"fold_{f}_seed{seed}_failed", model_folder / f"fold_{f}")


def guarded_training(
    model_folder: Path,
    folds: Sequence[int | str],
    teacher_dataset: Path,
    seed: int,
    train: Callable[[int], None],
    score: Callable[[int], dict],
    min_dsc: float = MIN_DSC,
    max_attempts: int = MAX_ATTEMPTS,
) -> dict:
    """Train (``train(seed)``), score (``score(seed)``), retrain with seed+1, ... until the guard passes or
    ``max_attempts`` are spent; keeps the best attempt in ``fold_X``. Resumes from ``nnts_guard.json``.
    Prints a line per attempt. ``teacher_dataset`` is not read (the caller's ``score`` reads it)."""
    record = load_guard(model_folder, folds)
    if record.get("final"):
        return record
    record = {
        "min_dsc": min_dsc,
        "max_attempts": max_attempts,
        "attempts": record.get("attempts", []),
    }
    for k in range(len(record["attempts"]), max_attempts):
        s = seed + k
        train(s)
        result = {"seed": s, **score(s)}
        result["passed"] = passes(result, min_dsc)
        record["attempts"].append(result)
        print(
            f"  teacher guard, attempt {k + 1}/{max_attempts} (seed {s}): DSC {result['dsc_mean']} on "
            f"{len(result['dsc_per_case'])} strong case(s) with fresh boxes, {result['empty_boxes']}/"
            f"{result['boxes']} box(es) empty ({result.get('empty_substantial_boxes', result['empty_boxes'])} over a real cross-section) -> "
            f"{'passed' if result['passed'] else 'FAILED'}"
        )
        if result["passed"]:
            break
        if k < max_attempts - 1:
            _set_aside(model_folder, folds, s)
        write_text_atomic(json.dumps(record, indent=1), guard_file(model_folder, folds))
    best = max(
        record["attempts"], key=lambda a: (a["passed"], a["dsc_mean"] or -1, -a["empty_boxes"])
    )
    last = record["attempts"][-1]
    if best is not last:
        _set_aside(model_folder, folds, last["seed"])
        _restore(model_folder, folds, best["seed"])
    record.update(
        final=True,
        chosen_seed=best["seed"],
        passed=best["passed"],
        retrained=len(record["attempts"]) - 1,
    )
    if not best["passed"]:
        print(
            f"  teacher guard: no attempt passed; keeping the best (seed {best['seed']}, DSC {best['dsc_mean']})"
        )
    write_text_atomic(json.dumps(record, indent=1), guard_file(model_folder, folds))
    return record
