"""``NNTS_SEED``: the literal ``nnUNetv2_train`` twice with one seed gives the same checkpoint on a CPU;
another seed gives another one (the box teacher: its online box channel draws random boxes too; the seeding
lives in the base class of all our trainers). And an interrupted training resumes from its checkpoint."""

from __future__ import annotations

import re
import shutil

import pytest
import torch

from nnts_testlib import DO_ID, SMALL_CONFIG, TEACHER_ID, run_nnunet

pytestmark = pytest.mark.slow


def _train(dataset_id: int, trainer: str, fold: str, seed: int, results) -> dict:
    run_nnunet(
        ["nnUNetv2_train", str(dataset_id), SMALL_CONFIG, fold, "-tr", trainer, "-device", "cpu"],
        training=True,
        extra_env={
            "NNTS_SEED": str(seed),
            "NNTS_SKIP_VALIDATION": "1",
            "nnUNet_results": str(results),
        },
    )
    folder = next(results.glob(f"*/{trainer}__nnUNetPlans__{SMALL_CONFIG}/fold_{fold}"))
    ckpt = torch.load(folder / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    shutil.rmtree(folder)
    return ckpt


def _same(a: dict, b: dict) -> bool:
    wa, wb = a["network_weights"], b["network_weights"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_same_seed_same_checkpoint(teacher_dataset, tmp_path):
    a, b, c = (
        _train(TEACHER_ID, "nnUNetTrainerBoxTeacher", "all", seed, tmp_path / f"r{i}")
        for i, seed in enumerate((3, 3, 4))
    )
    assert _same(a, b), "same NNTS_SEED, different weights"
    assert a["logging"]["train_losses"] == b["logging"]["train_losses"]
    assert not _same(a, c), "another seed should give other weights"


def test_killed_training_resumes_from_its_latest_checkpoint(planned_datasets, tmp_path):
    """kill -9 after the first epoch's checkpoint_latest, then ``--c`` (what ``nnts pipeline`` runs): the
    training continues at the next epoch instead of starting over."""
    import os

    from nnts_testlib import kill9_when, nnunet_command

    results = tmp_path / "r"
    env = {
        **os.environ,
        "NNTS_SEED": "1",
        "NNTS_SKIP_VALIDATION": "1",
        "NNTS_EPOCHS": "4",
        "nnUNet_results": str(results),
        "nnUNet_n_proc_DA": "0",
    }
    argv = [
        nnunet_command("nnUNetv2_train"),
        str(DO_ID),
        SMALL_CONFIG,
        "0",
        "-tr",
        "nnUNetTrainerDOStudent",
        "-device",
        "cpu",
    ]

    def latest() -> bool:
        found = list(
            results.glob(
                f"*/nnUNetTrainerDOStudent__nnUNetPlans__{SMALL_CONFIG}/fold_0/checkpoint_latest.pth"
            )
        )
        return bool(found) and found[0].stat().st_size > 0

    assert kill9_when(argv, latest, env=env), "the training finished before the kill"
    fold = next(results.glob(f"*/nnUNetTrainerDOStudent__nnUNetPlans__{SMALL_CONFIG}/fold_0"))
    assert not (fold / "checkpoint_final.pth").exists()
    done = torch.load(fold / "checkpoint_latest.pth", map_location="cpu", weights_only=False)[
        "current_epoch"
    ]
    run_nnunet(
        [
            "nnUNetv2_train",
            str(DO_ID),
            SMALL_CONFIG,
            "0",
            "-tr",
            "nnUNetTrainerDOStudent",
            "-device",
            "cpu",
            "--c",
        ],
        training=True,
        extra_env={
            k: env[k]
            for k in ("NNTS_SEED", "NNTS_SKIP_VALIDATION", "NNTS_EPOCHS", "nnUNet_results")
        },
    )
    final = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert (
        1 <= done < 4 and final["current_epoch"] == 4 and len(final["logging"]["train_losses"]) == 4
    )
    log = sorted(fold.glob("training_log_*.txt"))[-1].read_text()  # the resumed run's log
    assert re.search(rf": Epoch {done}\s*$", log, re.M) and not re.search(
        r": Epoch 0\s*$", log, re.M
    )
