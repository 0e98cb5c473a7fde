"""``NNTS_SEED``: the literal ``nnUNetv2_train`` twice with one seed gives the same checkpoint on a CPU;
another seed gives another one. For the box teacher (its online box channel draws random boxes) and for
the DO student (the dual-decoder network, region labels)."""
from __future__ import annotations

import shutil

import pytest
import torch

from nnts_testlib import DO_ID, SMALL_CONFIG, TEACHER_ID, run_nnunet

pytestmark = pytest.mark.slow


def _train(dataset_id: int, trainer: str, fold: str, seed: int, results) -> dict:
    run_nnunet(["nnUNetv2_train", str(dataset_id), SMALL_CONFIG, fold, "-tr", trainer, "-device", "cpu"],
               training=True, extra_env={"NNTS_SEED": str(seed), "NNTS_SKIP_VALIDATION": "1",
                                         "nnUNet_results": str(results)})
    folder = next(results.glob(f"*/{trainer}__nnUNetPlans__{SMALL_CONFIG}/fold_{fold}"))
    ckpt = torch.load(folder / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    shutil.rmtree(folder)
    return ckpt


def _same(a: dict, b: dict) -> bool:
    wa, wb = a["network_weights"], b["network_weights"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_same_seed_same_checkpoint(teacher_dataset, tmp_path):
    a, b, c = (_train(TEACHER_ID, "nnUNetTrainerBoxTeacher", "all", seed, tmp_path / f"r{i}")
               for i, seed in enumerate((3, 3, 4)))
    assert _same(a, b), "same NNTS_SEED, different weights"
    assert a["logging"]["train_losses"] == b["logging"]["train_losses"]
    assert not _same(a, c), "another seed should give other weights"


def test_same_seed_same_student_checkpoint(planned_datasets, tmp_path):
    a, b = (_train(DO_ID, "nnUNetTrainerDOStudent", "0", 5, tmp_path / f"s{i}") for i in range(2))
    assert _same(a, b) and a["logging"]["train_losses"] == b["logging"]["train_losses"]
