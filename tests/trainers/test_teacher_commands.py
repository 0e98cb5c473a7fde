"""Teachers through nnU-Net's literal commands, and box-region inference."""

from __future__ import annotations


import numpy as np
import pytest
import SimpleITK as sitk

from nnts_testlib import SMALL_CONFIG, TEACHER_ID, run_nnunet

pytestmark = pytest.mark.slow


def test_box_teacher_trains_and_predicts_with_literal_commands(
    box_teacher_model, teacher_dataset, tmp_path
):
    out = tmp_path / "pred"
    run_nnunet(
        [
            "nnUNetv2_predict",
            "-i",
            str(teacher_dataset / "imagesWeak"),
            "-o",
            str(out),
            "-d",
            str(TEACHER_ID),
            "-c",
            SMALL_CONFIG,
            "-f",
            "0",
            "-tr",
            "nnUNetTrainerBoxTeacher",
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
    inputs = sorted(teacher_dataset.glob("imagesWeak/*_0000.nii.gz"))
    assert len(preds) == len(inputs) > 0
    for p, i in zip(preds, inputs):
        a, b = sitk.ReadImage(str(p)), sitk.ReadImage(str(i))
        assert a.GetSize() == b.GetSize()
        assert np.allclose(a.GetSpacing(), b.GetSpacing()) and np.allclose(
            a.GetOrigin(), b.GetOrigin()
        )
        assert set(np.unique(sitk.GetArrayFromImage(a))) <= {0, 1}
