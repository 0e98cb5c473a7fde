"""Every trainer of ours trains, checkpoints and predicts through nnU-Net's literal commands."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import SMALL_CONFIG, STRONG_ID, TEACHER_ID, plan_and_preprocess, run_nnunet, train

pytestmark = pytest.mark.slow
SO_ID, DO_ID = 503, 504


@pytest.fixture(scope="session")
def student_datasets(phantom_study):
    """SO and DO student datasets from the strong phantom cases (true masks only), preprocessed."""
    from nnunet_teacher_student.student_dataset import make_student_dataset

    manifest = phantom_study / "manifest.json"
    make_student_dataset(STRONG_ID, SO_ID, "PhantomSO", "so", manifest=manifest, n_folds=3)
    make_student_dataset(STRONG_ID, DO_ID, "PhantomDO", "do", manifest=manifest, n_folds=3)
    plan_and_preprocess(SO_ID, DO_ID)
    return phantom_study


def _student_inputs(phantom_study: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for p in sorted((phantom_study / "test" / "images").glob("*.nii.gz"))[:1]:
        os.symlink(p, folder / p.name.replace(".nii.gz", "_0000.nii.gz"))
    return folder


def _predict(dataset_id: int, trainer: str, inputs: Path, out: Path) -> list[np.ndarray]:
    run_nnunet(["nnUNetv2_predict", "-i", str(inputs), "-o", str(out), "-d", str(dataset_id), "-c", SMALL_CONFIG,
                "-f", "0", "-tr", trainer, "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"])
    preds = sorted(out.glob("*.nii.gz"))
    assert preds
    arrays = []
    for p in preds:
        src = next(inputs.glob(p.name.replace(".nii.gz", "_0000.nii.gz")))
        a, b = sitk.ReadImage(str(p)), sitk.ReadImage(str(src))
        assert a.GetSize() == b.GetSize() and np.allclose(a.GetOrigin(), b.GetOrigin())
        arrays.append(sitk.GetArrayFromImage(a))
    return arrays


@pytest.mark.parametrize("trainer, form", [
    ("nnUNetTrainerSOStudent", "so"), ("nnUNetTrainerDOStudent", "do"), ("nnUNetTrainerSOStudent_Paper", "so"),
    ("nnUNetTrainerDOStudent_Paper", "do"), ("nnUNetTrainerBaseline_Paper", "so"),
])
def test_students_train_and_predict(student_datasets, tmp_path, trainer, form):
    dataset_id = DO_ID if form == "do" else SO_ID
    model = train(dataset_id, trainer)
    arrays = _predict(dataset_id, trainer, _student_inputs(student_datasets, tmp_path), tmp_path / "out")
    allowed = {0, 1, 2} if form == "do" else {0, 1}
    assert all(set(np.unique(a)) <= allowed for a in arrays)
    log = next((model / "fold_0").glob("training_log_*.txt")).read_text()
    if trainer.endswith("_Paper"):
        assert "Current learning rate: 0.0001" in log  # Adam at 1e-4, constant


@pytest.mark.parametrize("trainer", ["nnUNetTrainerPointTeacher", "nnUNetTrainerBoxTeacher_Paper",
                                     "nnUNetTrainerPointTeacher_Paper"])
def test_other_teachers_train_and_predict(teacher_dataset, tmp_path, trainer):
    train(TEACHER_ID, trainer)
    arrays = _predict(TEACHER_ID, trainer, teacher_dataset / "imagesWeak", tmp_path / "out")
    assert all(set(np.unique(a)) <= {0, 1} for a in arrays)


def test_do_checkpoint_reloads_into_nnunet_predictor(student_datasets, tmp_path):
    """The DO model (already trained above or trained here) loads into nnUNetPredictor and gives the
    tumour region as its target channel, box region first."""
    from nnunet_teacher_student.inference import RegionPredictor
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
    assert probs.shape[0] == 2 and seg.shape == arr.shape[1:] and predictor.target_channel() == 1
    assert np.array_equal(tumour_prob, probs[1])
    assert set(np.unique(seg)) <= {0, 1, 2}
