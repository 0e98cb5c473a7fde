"""Session fixtures: a tiny phantom study in a temp folder with its own nnU-Net folders, planned and
preprocessed, with a small plans configuration (patch 16x32x32, 3 stages, 8-32 features). Helpers
that run nnU-Net's literal commands live in ``nnts_testlib``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nnts_testlib import DO_ID, SO_ID, STRONG_ID, TEACHER_ID, plan_and_preprocess, train


@pytest.fixture(scope="session")
def nnunet_env(tmp_path_factory):
    """nnU-Net folders in a temp dir, exported in this process (restored afterwards)."""
    from nnunet_teacher_student.nnunet.plans import ext_trainer_dir

    base = tmp_path_factory.mktemp("nnunet")
    env = {
        "nnUNet_raw": str(base / "raw"),
        "nnUNet_preprocessed": str(base / "preprocessed"),
        "nnUNet_results": str(base / "results"),
        "nnUNet_extTrainer": str(ext_trainer_dir()),
        "nnUNet_def_n_proc": "1",
        "OMP_NUM_THREADS": "1",
        "NNTS_EPOCHS": "2",
        "NNTS_ITERATIONS": "3",
        "NNTS_VAL_ITERATIONS": "2",
        "NNTS_NO_MIRRORING": "1",
    }
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        Path(env[k]).mkdir()
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield base
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def phantom_study(nnunet_env):
    """Tiny phantom study: strong dataset 501 (6 cases), weak set (4), test set (2), manifest."""
    from nnunet_teacher_student.phantom.datasets import write_phantom_datasets
    from nnunet_teacher_student.phantom.settings import PhantomSettings

    out = nnunet_env / "phantom"
    write_phantom_datasets(
        PhantomSettings(
            out,
            STRONG_ID,
            n_strong=6,
            n_weak=4,
            n_test=2,
            seed=7,
            preset="tiny",
            raw_dir=os.environ["nnUNet_raw"],
            progress=False,
        )
    )
    return out


@pytest.fixture(scope="session")
def planned_datasets(phantom_study) -> dict[int, Path]:
    """All derived phantom datasets, planned and preprocessed by one nnU-Net call (a process start
    costs seconds): 501 strong, 502 teacher (CT + box channel, weak cases in imagesWeak/), 503 SO and
    504 DO student datasets from the strong cases' true masks."""
    from nnunet_teacher_student.nnunet.raw_dataset import find_raw_dataset
    from nnunet_teacher_student.students.student_dataset import make_student_dataset
    from nnunet_teacher_student.students.settings import StudentDatasetSettings
    from nnunet_teacher_student.teacher.teacher_dataset import make_teacher_dataset
    from nnunet_teacher_student.teacher.settings import TeacherDatasetSettings

    make_teacher_dataset(
        TeacherDatasetSettings(
            STRONG_ID,
            TEACHER_ID,
            "PhantomTeacher",
            seed=0,
            weak_dir=phantom_study / "weak",
            annotator="exact",
        )
    )
    manifest = phantom_study / "manifest.json"
    make_student_dataset(
        StudentDatasetSettings(STRONG_ID, SO_ID, "PhantomSO", "so", manifest=manifest, n_folds=3)
    )
    make_student_dataset(
        StudentDatasetSettings(STRONG_ID, DO_ID, "PhantomDO", "do", manifest=manifest, n_folds=3)
    )
    ids = (STRONG_ID, TEACHER_ID, SO_ID, DO_ID)
    plan_and_preprocess(*ids)
    return {i: find_raw_dataset(i) for i in ids}


@pytest.fixture(scope="session")
def teacher_dataset(planned_datasets) -> Path:
    return planned_datasets[TEACHER_ID]


@pytest.fixture(scope="session")
def student_datasets(planned_datasets, phantom_study) -> Path:
    """SO (503) and DO (504) datasets are ready; returns the phantom study folder."""
    return phantom_study


@pytest.fixture(scope="session")
def box_teacher_model(teacher_dataset) -> Path:
    """A box teacher trained by the literal ``nnUNetv2_train`` command (2 tiny epochs)."""
    return train(TEACHER_ID, "nnUNetTrainerBoxTeacher", validate=False)


@pytest.fixture(scope="session")
def strong_dataset(planned_datasets) -> Path:
    """The strong phantom dataset 501, planned and preprocessed."""
    return planned_datasets[STRONG_ID]


@pytest.fixture(scope="session")
def strong_model(strong_dataset) -> Path:
    """A plain nnU-Net model (nnUNetTrainerNNTS = nnUNetTrainer + budget) trained on 501."""
    return train(STRONG_ID, "nnUNetTrainerNNTS", validate=False)
