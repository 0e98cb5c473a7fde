"""The teacher's CT window: fitted to the voxels inside the boxes (tumour and the lung around it), so that
ground-glass stays distinguishable from lung even when the strong cases' tumours are all solid."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.teacher.teacher_dataset import (
    WEAK_FOLDER,
    box_intensity_properties,
    use_box_window,
)

DATASET_ID = 559


def _case(folder: Path, case: str, tumour_hu: float, rng) -> None:
    ct = np.full((6, 16, 16), -850.0) + rng.normal(0, 20, (6, 16, 16))  # aerated lung
    ct[2:4, 6:10, 6:10] = tumour_hu
    box = np.zeros(ct.shape, np.uint8)
    box[2:4, 4:12, 4:12] = 1  # the tumour and lung around it
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(
        sitk.GetImageFromArray(ct.astype(np.int16)), str(folder / f"{case}_0000.nii.gz")
    )
    sitk.WriteImage(sitk.GetImageFromArray(box), str(folder / f"{case}_0001.nii.gz"))


def test_box_window_covers_lung_and_ground_glass_where_the_tumour_window_does_not(nnunet_env):
    rng = np.random.default_rng(0)
    raw = Path(os.environ["nnUNet_raw"]) / f"Dataset{DATASET_ID}_WindowTeacher"
    _case(raw / "imagesTr", "strong_0", 40.0, rng)  # solid tumours only among the strong cases
    _case(raw / WEAK_FOLDER, "weak_0", -450.0, rng)  # a ground-glass lesion on a weak case
    (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT", "1": "noNorm"}}))
    props = box_intensity_properties(raw)
    assert props["percentile_00_5"] < -850 and props["percentile_99_5"] >= 40 - 1e-6
    assert (
        props["min"]
        <= props["percentile_00_5"]
        <= props["median"]
        <= props["percentile_99_5"]
        <= props["max"]
    )

    fingerprint = Path(os.environ["nnUNet_preprocessed"]) / raw.name / "dataset_fingerprint.json"
    with pytest.raises(InputError, match="no fingerprint"):
        use_box_window(DATASET_ID)
    nnunet = {
        "0": {
            "mean": 40.0,
            "std": 1.0,
            "median": 40.0,
            "min": 39.0,
            "max": 41.0,
            "percentile_00_5": 39.5,
            "percentile_99_5": 40.5,
        },
        "1": {"mean": 1.0},
    }
    fingerprint.parent.mkdir(parents=True)
    fingerprint.write_text(
        json.dumps({"foreground_intensity_properties_per_channel": nnunet, "spacings": []})
    )
    for _ in range(2):  # a second call keeps nnU-Net's original copy
        assert use_box_window(DATASET_ID) == props
    doc = json.loads(fingerprint.read_text())
    assert doc["foreground_intensity_properties_per_channel"] == {"0": props, "1": {"mean": 1.0}}
    kept = json.loads(fingerprint.with_name("dataset_fingerprint.nnunet.json").read_text())
    assert kept["foreground_intensity_properties_per_channel"] == nnunet
