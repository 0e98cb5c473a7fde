"""``NNTS_SEED``: the literal ``nnUNetv2_train`` twice with one seed gives the same checkpoint on a CPU;
another seed gives another one."""
from __future__ import annotations

import shutil

import pytest
import torch

from nnts_testlib import SMALL_CONFIG, TEACHER_ID, run_nnunet

pytestmark = pytest.mark.slow


def _train(seed: int, results) -> dict:
    run_nnunet(["nnUNetv2_train", str(TEACHER_ID), SMALL_CONFIG, "all", "-tr", "nnUNetTrainerBoxTeacher", "-device",
                "cpu"], training=True, extra_env={"NNTS_SEED": str(seed), "NNTS_SKIP_VALIDATION": "1",
                                                  "nnUNet_results": str(results)})
    fold = next(results.glob(f"*/nnUNetTrainerBoxTeacher__nnUNetPlans__{SMALL_CONFIG}/fold_all"))
    ckpt = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    shutil.rmtree(fold)
    return ckpt


def test_same_seed_same_checkpoint(teacher_dataset, tmp_path):
    a, b, c = (_train(seed, tmp_path / f"r{i}") for i, seed in enumerate((3, 3, 4)))
    wa, wb, wc = a["network_weights"], b["network_weights"], c["network_weights"]
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "same NNTS_SEED, different weights"
    assert a["logging"]["train_losses"] == b["logging"]["train_losses"]
    assert any(not torch.equal(wa[k], wc[k]) for k in wa), "another seed should give other weights"
