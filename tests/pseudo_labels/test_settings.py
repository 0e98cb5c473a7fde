"""``PseudoLabelSettings``: the command line and the Python API build the same object, and ``cli_args`` gives the
``nnts pseudo-label`` flags that rebuild it."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from nnunet_teacher_student.cli import build_parser
from nnunet_teacher_student.commands.pseudo_label import pseudo_label_settings_from_args
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.pseudo_labels.qc import FILTERS
from nnunet_teacher_student.pseudo_labels.settings import PseudoLabelSettings

#: every field away from its default
EVERYTHING = PseudoLabelSettings(
    teacher="model",
    model_folder=Path("results/Dataset501/T__nnUNetPlans__3d_fullres"),
    folds=(0, "all", 3),
    checkpoint="checkpoint_best.pth",
    mode="point",
    device="cuda",
    tta=False,
    box_margin_mm=3.25,
    min_box_fill=0.3,
    min_box_iou=0.45,
    max_entropy=0.125,
    max_empty_slices=2,
    min_volume_ml=0.05,
    max_disagreement=0.2,
    max_label_change=0.3,
    filter_mode="drop",
    labels_dir=Path("truth"),
    previous=Path("pseudo_round1"),
    save_probabilities=True,
    overwrite=True,
    quiet=True,
)


def _from_cli(args: list[str]) -> PseudoLabelSettings:
    parsed = build_parser().parse_args(["pseudo-label", "-i", "weak", "-o", "out", *args])
    return pseudo_label_settings_from_args(parsed)


@pytest.mark.parametrize(
    "settings",
    [
        PseudoLabelSettings(model_folder="model"),
        PseudoLabelSettings(model_folder=Path("model"), device="auto", tta=False),
        PseudoLabelSettings(
            model_folder="m", folds=[0, 1], min_box_fill=0.25, filter_mode="drop", quiet=True
        ),
        PseudoLabelSettings(
            teacher="classical",
            box_margin_mm=0.0,
            labels_dir="truth",
            previous="round1",
            max_label_change=0.3,
            overwrite=True,
        ),
        EVERYTHING,
    ],
)
def test_cli_args_rebuild_the_settings(settings):
    assert _from_cli(settings.cli_args()) == settings


def test_every_setting_has_a_flag():
    default = PseudoLabelSettings()
    assert all(
        getattr(EVERYTHING, f.name) != getattr(default, f.name)
        for f in fields(default)
        if f.name != "teacher"
    )
    assert set(EVERYTHING.filters) == set(FILTERS)
    assert _from_cli(EVERYTHING.cli_args()) == EVERYTHING


def test_defaults_match_the_command_line():
    """Only ``-device`` differs: the command line's default is ``auto``, the Python API's ``cpu``."""
    assert _from_cli(["-m", "model"]) == PseudoLabelSettings(model_folder="model", device="auto")
    assert PseudoLabelSettings(model_folder="m", device="auto").cli_args() == ["-m", "m"]
    assert PseudoLabelSettings(teacher="classical").cli_args() == [
        "--teacher",
        "classical",
        "-device",
        "cpu",
    ]


def test_settings_from_args_checks_them():
    with pytest.raises(InputError, match="box-margin-mm"):
        _from_cli(["-m", "m", "--box-margin-mm", "-1"])
    with pytest.raises(InputError, match="needs --previous"):
        _from_cli(["-m", "m", "--max-label-change", "0.2"])
    with pytest.raises(InputError, match="-m/--model is required"):
        _from_cli([])
