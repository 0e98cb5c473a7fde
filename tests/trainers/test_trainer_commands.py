"""Every trainer of ours trains, checkpoints and predicts through nnU-Net's literal commands."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnts_testlib import DO_ID, SMALL_CONFIG, SO_ID, TEACHER_ID, run_nnunet, train

pytestmark = pytest.mark.slow


def _student_inputs(phantom_study: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for p in sorted((phantom_study / "test" / "images").glob("*.nii.gz"))[:1]:
        os.symlink(p, folder / p.name.replace(".nii.gz", "_0000.nii.gz"))
    return folder


def _predict(dataset_id: int, trainer: str, inputs: Path, out: Path) -> list[np.ndarray]:
    run_nnunet(
        [
            "nnUNetv2_predict",
            "-i",
            str(inputs),
            "-o",
            str(out),
            "-d",
            str(dataset_id),
            "-c",
            SMALL_CONFIG,
            "-f",
            "0",
            "-tr",
            trainer,
            "-device",
            "cpu",
            "--disable_tta",
            "-npp",
            "1",
            "-nps",
            "1",
        ]
    )
    preds = sorted(out.glob("*.nii.gz"))
    assert preds
    arrays = []
    for p in preds:
        src = next(inputs.glob(p.name.replace(".nii.gz", "_0000.nii.gz")))
        a, b = sitk.ReadImage(str(p)), sitk.ReadImage(str(src))
        assert a.GetSize() == b.GetSize() and np.allclose(a.GetOrigin(), b.GetOrigin())
        arrays.append(sitk.GetArrayFromImage(a))
    return arrays


@pytest.mark.parametrize(
    "trainer, form", [("nnUNetTrainerSOStudent", "so"), ("nnUNetTrainerDOStudent", "do")]
)
def test_students_train_and_predict_with_literal_commands(
    student_datasets, tmp_path, trainer, form
):
    dataset_id = DO_ID if form == "do" else SO_ID
    model = train(dataset_id, trainer)
    assert list((model / "fold_0" / "validation").glob("*.nii.gz")), (
        "nnUNetv2_train's final validation predicts"
    )
    arrays = _predict(
        dataset_id, trainer, _student_inputs(student_datasets, tmp_path), tmp_path / "out"
    )
    allowed = {0, 1, 2} if form == "do" else {0, 1}
    assert all(set(np.unique(a)) <= allowed for a in arrays)


def test_point_teacher_trains_and_predicts_with_literal_commands(teacher_dataset, tmp_path):
    model = train(TEACHER_ID, "nnUNetTrainerPointTeacher", validate=False)
    # NNTS_SKIP_VALIDATION=1: no final validation, and the training log says so
    assert not (model / "fold_0" / "validation").exists()
    log = "".join(p.read_text() for p in (model / "fold_0").glob("training_log_*.txt"))
    assert "final validation skipped" in log
    arrays = _predict(
        TEACHER_ID, "nnUNetTrainerPointTeacher", teacher_dataset / "imagesWeak", tmp_path / "out"
    )
    assert all(set(np.unique(a)) <= {0, 1} for a in arrays)


@pytest.mark.parametrize(
    "trainer, dataset_id",
    [
        ("nnUNetTrainerSOStudent_Paper", SO_ID),
        ("nnUNetTrainerDOStudent_Paper", DO_ID),
        ("nnUNetTrainerBaseline_Paper", SO_ID),
        ("nnUNetTrainerBoxTeacher_Paper", TEACHER_ID),
        ("nnUNetTrainerPointTeacher_Paper", TEACHER_ID),
    ],
)
def test_paper_variants_train_checkpoint_and_predict(
    student_datasets, teacher_dataset, monkeypatch, trainer, dataset_id
):
    """In-process (the literal command path is the same class; this saves a process start per variant):
    nnU-Net's run_training, then the checkpoint through nnUNetPredictor."""
    import json

    import torch
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_teacher_student.prediction.region import RegionPredictor
    from nnunet_teacher_student.nnunet.plans import nnunet_dir

    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    pre = next(nnunet_dir("nnUNet_preprocessed").glob(f"Dataset{dataset_id}_*"))
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    cls = recursive_find_trainer_class_by_name(trainer)
    t = cls(
        plans,
        SMALL_CONFIG,
        0,
        json.loads((pre / "dataset.json").read_text()),
        device=torch.device("cpu"),
    )
    assert (t.initial_lr, t.enable_deep_supervision, t.paper_accumulation_steps) == (1e-4, False, 8)
    t.run_training()
    assert t.batch_size == 1 and isinstance(t.optimizer, torch.optim.Adam)
    assert any(isinstance(m, torch.nn.PReLU) for m in t.network.modules())
    predictor = RegionPredictor(t.output_folder_base, folds=(0,), tta=False)
    n_channels = len(t.dataset_json["channel_names"])
    seg, prob, _ = predictor.predict_array(
        np.random.default_rng(0).normal(-700, 200, (n_channels, 20, 40, 40)).astype(np.float32),
        (1.5, 0.8, 0.8),
    )
    assert seg.shape == (20, 40, 40) and np.isfinite(prob).all()


def test_do_checkpoint_reloads_into_nnunet_predictor(student_datasets, tmp_path):
    """The DO model (already trained above or trained here) loads into nnUNetPredictor and gives the
    tumour region as its target channel, box region first."""
    from nnunet_teacher_student.prediction.region import RegionPredictor
    from nnunet_teacher_student.trainers.networks import DualDecoderUNet

    results = Path(os.environ["nnUNet_results"]) / "Dataset504_PhantomDO"
    model = results / f"nnUNetTrainerDOStudent__nnUNetPlans__{SMALL_CONFIG}"
    if not (model / "fold_0" / "checkpoint_final.pth").is_file():
        model = train(DO_ID, "nnUNetTrainerDOStudent")
    predictor = RegionPredictor(model, folds=(0,), tta=False)
    assert isinstance(predictor.predictor.network, DualDecoderUNet)
    ct = sitk.ReadImage(str(next((student_datasets / "test" / "images").glob("*.nii.gz"))))
    arr = sitk.GetArrayFromImage(ct).astype(np.float32)[None]
    seg, tumour_prob, probs = predictor.predict_array(arr, ct.GetSpacing()[::-1])
    assert (
        probs.shape[0] == 2 and seg.shape == arr.shape[1:] and predictor.tumour() == (2, 1)
    )  # label 2 (regions_class_order [1, 2]), channel 1
    assert np.array_equal(tumour_prob, probs[1])
    assert set(np.unique(seg)) <= {0, 1, 2}
