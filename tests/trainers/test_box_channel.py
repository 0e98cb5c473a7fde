"""The box channel stays binary and aligned with the CT: after preprocessing (as loaded for
training), after spatial augmentation, untouched by intensity augmentation, and at inference."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnts_testlib import SMALL_CONFIG
from nnunet_teacher_student.trainers import nnUNetTrainerBoxTeacher

pytestmark = pytest.mark.slow


def _samples(trainer_cls, teacher_dataset, monkeypatch, n_batches: int):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    pre = os.path.join(os.environ["nnUNet_preprocessed"], teacher_dataset.name)
    plans = json.load(open(os.path.join(pre, "nnUNetPlans.json")))
    plans["continue_training"] = False  # nnU-Net 2.8 reads (and pops) this key
    dataset_json = json.load(open(os.path.join(pre, "dataset.json")))
    trainer = trainer_cls(plans, SMALL_CONFIG, 0, dataset_json, device=torch.device("cpu"))
    trainer.initialize()
    train, val = trainer.get_dataloaders()
    torch.manual_seed(0)
    np.random.seed(0)
    batches = [next(train) for _ in range(n_batches)]
    val_batches = [next(val) for _ in range(3)]
    return trainer, batches, val_batches


def _box_stats(batches):
    non_binary, tumour_in_box, tumour = 0, 0, 0
    for b in batches:
        box = b["data"][:, 1]
        seg = b["target"][0] if isinstance(b["target"], list) else b["target"]
        for i in range(box.shape[0]):
            non_binary += int(not torch.isin(box[i], torch.tensor([0.0, 1.0])).all())
            t = seg[i, 0] == 1
            tumour += int(t.sum())
            tumour_in_box += int((t & (box[i] > 0.5)).sum())
    return non_binary, tumour_in_box / max(tumour, 1), tumour


def test_box_channel_binary_and_aligned_after_augmentation(teacher_dataset, monkeypatch):
    n = 50  # batches of 2 -> 100 augmented samples each
    _, ours, ours_val = _samples(nnUNetTrainerBoxTeacher, teacher_dataset, monkeypatch, n)
    _, default, _ = _samples(nnUNetTrainer, teacher_dataset, monkeypatch, n)
    bad_default, inside_default, _ = _box_stats(default)
    bad_ours, inside, tumour = _box_stats(ours)
    bad_val, inside_val, _ = _box_stats(ours_val)
    assert bad_default > 0, (
        "nnU-Net's own pipeline should blur the box channel (else this test proves nothing)"
    )
    assert bad_ours == 0 and bad_val == 0
    assert tumour > 0, "teacher patches must contain tumour"
    # box and CT moved together: tumour voxels (the segmentation moves with the CT) lie in the box
    # channel (the fixture's boxes have no jitter, so they cover the whole tumour before resampling).
    print(
        f"tumour voxels inside the box: augmented {inside:.3f}, validation {inside_val:.3f}, "
        f"nnU-Net default {inside_default:.3f}"
    )
    assert inside > 0.95 and inside_val > 0.95


def test_every_teacher_patch_contains_tumour(teacher_dataset, monkeypatch):
    trainer, batches, _ = _samples(nnUNetTrainerBoxTeacher, teacher_dataset, monkeypatch, 10)
    assert trainer.oversample_foreground_percent == 1.0
    for b in batches:
        seg = b["target"][0] if isinstance(b["target"], list) else b["target"]
        assert all(bool((seg[i] == 1).any()) for i in range(seg.shape[0]))
