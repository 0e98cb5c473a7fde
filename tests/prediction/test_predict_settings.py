"""``PredictSettings``: the command line builds the same object as the Python API, and ``cli_args`` gives the
flags that build it back."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnunet_teacher_student.cli import build_parser
from nnunet_teacher_student.commands.predict import predict_settings_from_args
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.prediction.settings import PredictSettings


def parse(*flags: str) -> PredictSettings:
    argv = ["predict", "-i", "ct.nii.gz", "-o", "out", "-m", "model", *flags]
    return predict_settings_from_args(build_parser().parse_args(argv))


@pytest.mark.parametrize(
    "settings",
    [
        PredictSettings(),
        PredictSettings(device="auto"),
        PredictSettings(
            folds=(0, "all"),
            checkpoint="checkpoint_best.pth",
            device="cuda",
            tta=False,
            step_size=0.25,
        ),
        PredictSettings(
            lung_crop=False,
            skip_tiles=False,
            lung_dilation_mm=None,
            save_probabilities=True,
            overwrite=True,
        ),
        PredictSettings(
            folds=[1, 2],  # a list is kept as a tuple
            per_lung=True,
            margin_mm=5.5,
            lung_dilation_mm=2.0,
            lung_weights="weights/r231.pth",  # a str is kept as a Path
            lung_method="classical",
            label=2,
        ),
        PredictSettings(per_lung=False, crop_after_resampling=True, margin_mm=0.0),
    ],
)
def test_cli_args_give_the_settings_back(settings):
    assert parse(*settings.cli_args()) == settings


def test_the_command_lines_defaults():
    assert PredictSettings().cli_args() == [
        "-device",
        "cpu",
    ]  # the API's device, not the CLI's auto
    assert parse() == PredictSettings(device="auto")
    assert parse("--crop-before-resampling") == PredictSettings(device="auto")
    s = PredictSettings(folds=[0], lung_weights="w.pth")
    assert s.folds == (0,) and s.lung_weights == Path("w.pth") and hash(s)


def test_settings_without_a_flag_and_bad_values():
    with pytest.raises(ValueError, match="align_grid"):
        PredictSettings(align_grid=False).cli_args()
    with pytest.raises(InputError, match="--margin-mm"):
        parse("--margin-mm", "-1")
    with pytest.raises(InputError, match="--step-size"):
        parse("--step-size", "1.5")
