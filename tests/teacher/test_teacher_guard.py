"""The teacher guard retrains a failing teacher with the next seed and keeps the best attempt; the
classical reference teacher segments a phantom weak set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_teacher_student.teacher.box_rule import ClassicalTeacher
from nnunet_teacher_student.teacher.inference import dilate_in_plane
from nnunet_teacher_student.teacher.guard import (
    GUARD_FILE,
    guard_file,
    guarded_training,
    load_guard,
    passes,
)
from nnunet_teacher_student.formats.weak_set import WeakSet


def _fake_training(folder, trained_seeds):
    def train(seed: int) -> None:
        fold = folder / "fold_all"
        if (fold / "checkpoint_final.pth").is_file():
            return
        fold.mkdir(parents=True)
        (fold / "checkpoint_final.pth").write_text(f"seed {seed}")
        trained_seeds.append(seed)

    return train


def test_guard_retrains_a_failing_teacher_until_it_passes(tmp_path):
    trained: list[int] = []
    dsc = {0: 0.3, 1: 0.92}
    record = guarded_training(
        tmp_path,
        ["all"],
        tmp_path,
        0,
        _fake_training(tmp_path, trained),
        lambda s: {"dsc_mean": dsc[s], "dsc_per_case": {"a": dsc[s]}, "boxes": 4, "empty_boxes": 0},
    )
    assert trained == [0, 1]
    assert record["passed"] and record["chosen_seed"] == 1 and record["retrained"] == 1
    assert (tmp_path / "fold_all" / "checkpoint_final.pth").read_text() == "seed 1"
    assert (tmp_path / "fold_all_seed0_failed" / "checkpoint_final.pth").read_text() == "seed 0"
    assert json.loads((tmp_path / GUARD_FILE).read_text())["final"]
    # a rerun does not train again
    again = guarded_training(
        tmp_path, ["all"], tmp_path, 0, _fake_training(tmp_path, trained), lambda s: 1 / 0
    )
    assert again == load_guard(tmp_path) and trained == [0, 1]


def test_an_ensembles_folds_keep_their_own_guard_record_next_to_fold_all(tmp_path):
    """Folds 0 and 1 of a teacher share its model folder with fold all: their failed attempt is set aside and
    recorded on its own, fold all's training and record are left alone."""
    assert guard_file(tmp_path) == tmp_path / GUARD_FILE
    assert guard_file(tmp_path, (0, 1)) == tmp_path / "nnts_guard_folds_0_1.json"
    trained: list[int] = []
    guarded_training(
        tmp_path,
        ["all"],
        tmp_path,
        0,
        _fake_training(tmp_path, trained),
        lambda s: {"dsc_mean": 0.9, "dsc_per_case": {}, "boxes": 1, "empty_boxes": 0},
    )
    all_record = (tmp_path / GUARD_FILE).read_text()

    def train_folds(seed: int) -> None:
        for f in (0, 1):
            fold = tmp_path / f"fold_{f}"
            if not fold.is_dir():
                fold.mkdir()
                (fold / "checkpoint_final.pth").write_text(f"seed {seed}")
                trained.append((f, seed))

    dsc = {0: 0.5, 1: 0.85}
    record = guarded_training(
        tmp_path,
        [0, 1],
        tmp_path,
        0,
        train_folds,
        lambda s: {"dsc_mean": dsc[s], "dsc_per_case": {}, "boxes": 1, "empty_boxes": 0},
    )
    assert record["passed"] and record["chosen_seed"] == 1
    assert trained == [0, (0, 0), (1, 0), (0, 1), (1, 1)]
    assert (
        load_guard(tmp_path, (0, 1)) == record and (tmp_path / GUARD_FILE).read_text() == all_record
    )
    assert (tmp_path / "fold_all" / "checkpoint_final.pth").read_text() == "seed 0"
    assert sorted(p.name for p in tmp_path.glob("fold_*_failed")) == [
        "fold_0_seed0_failed",
        "fold_1_seed0_failed",
    ]


def test_guard_keeps_the_best_attempt_when_none_passes(tmp_path):
    trained: list[int] = []
    dsc = {5: 0.6, 6: 0.75, 7: 0.5}
    empty = {5: 0, 6: 1, 7: 0}
    record = guarded_training(
        tmp_path,
        ["all"],
        tmp_path,
        5,
        _fake_training(tmp_path, trained),
        lambda s: {"dsc_mean": dsc[s], "dsc_per_case": {}, "boxes": 3, "empty_boxes": empty[s]},
        max_attempts=3,
    )
    assert trained == [5, 6, 7] and not record["passed"]
    assert (
        record["chosen_seed"] == 6
    )  # best DSC (an empty box also fails, but 0.75 is the best try)
    assert (tmp_path / "fold_all" / "checkpoint_final.pth").read_text() == "seed 6"
    assert {p.name for p in tmp_path.iterdir() if p.name.startswith("fold")} == {
        "fold_all",
        "fold_all_seed5_failed",
        "fold_all_seed7_failed",
    }


def test_guard_fails_on_an_empty_box_over_a_real_cross_section_even_with_a_high_dsc():
    assert passes({"dsc_mean": 0.9, "empty_boxes": 0, "empty_substantial_boxes": 0})
    assert passes(
        {"dsc_mean": 0.9, "empty_boxes": 2, "empty_substantial_boxes": 0}
    )  # thin end slices only
    assert not passes({"dsc_mean": 0.95, "empty_boxes": 1, "empty_substantial_boxes": 1})
    assert not passes({"dsc_mean": 0.79, "empty_boxes": 0, "empty_substantial_boxes": 0})


def test_classical_teacher_on_phantom_weak_cases(phantom_study):
    weak = WeakSet(phantom_study / "weak")
    teacher = ClassicalTeacher()
    dscs = []
    for case in weak.case_ids():
        ct, boxset = weak.read_case(case)
        pred = teacher.predict(ct, boxset)
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(weak.label_path(case)))) > 0
        mask = pred.mask > 0
        zone = dilate_in_plane(pred.box_mask, ct.GetSpacing()[::-1], teacher.box_margin_mm)
        assert not (mask & ~zone).any(), "the rule never leaves the box zone"
        dscs.append(2 * (mask & truth).sum() / (mask.sum() + truth.sum()))
    print("classical DSC per weak case", np.round(dscs, 3))
    assert np.mean(dscs) > 0.6
    assert min(dscs) > 0.3


@pytest.mark.slow
def test_classical_pseudo_label_command(phantom_study, tmp_path):
    from nnunet_teacher_student.cli import main

    out = tmp_path / "pl"
    assert (
        main(
            [
                "pseudo-label",
                "--teacher",
                "classical",
                "-i",
                str(phantom_study / "weak"),
                "-o",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    qc = json.loads((out / "qc.json").read_text())
    assert qc["complete"] and qc["summary"]["mean_dice_vs_truth"] > 0.6
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["trainer"] == "classical" and prov["checkpoint_sha256"].startswith("classical-")
