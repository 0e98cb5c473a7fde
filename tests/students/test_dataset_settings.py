"""The settings of make-scenario, make-student-dataset and make-teacher-dataset: their ``cli_args`` parse back
to equal settings (the flags the workflow builds stay the same)."""

from __future__ import annotations

import json
from pathlib import Path

from nnunet_teacher_student.cli import build_parser
from nnunet_teacher_student.commands.make_scenario import scenario_settings_from_args
from nnunet_teacher_student.commands.make_student_dataset import (
    student_dataset_settings_from_args,
)
from nnunet_teacher_student.commands.make_teacher_dataset import (
    teacher_dataset_settings_from_args,
)
from nnunet_teacher_student.formats.annotator import Annotator
from nnunet_teacher_student.students.settings import ScenarioSettings, StudentDatasetSettings
from nnunet_teacher_student.teacher.settings import TeacherDatasetSettings, annotator_arg


def test_scenario_settings_round_trip_through_the_command_line():
    required = ["--strong", "501", "-d", "541", "--name", "S", "--strong-count", "3", "-o", "w"]
    default = ScenarioSettings("501", Path("w"), 3, 541, "S")
    s = ScenarioSettings(
        "Dataset501_Pool",
        Path("weak"),
        4,
        542,
        "Scenario",
        seed=2,
        box_mode="component2d",
        manifest=Path("m.json"),
        size_balance=True,
        overwrite=True,
        progress=False,
        annotator="edge_fraction=0.2,exact_share=0.5",
        strong_sites=("msd", "nsclc"),
    )
    parser = build_parser()
    for settings in (default, s):
        args = parser.parse_args(["make-scenario", *required, *settings.cli_args()])
        assert scenario_settings_from_args(args) == settings


def test_student_dataset_settings_round_trip_through_the_command_line(tmp_path):
    required = ["--strong", "501", "-d", "542", "--name", "S"]
    default = StudentDatasetSettings("501", 542, "S")
    s = StudentDatasetSettings(
        "Dataset501_X",
        543,
        "Student",
        form="do",
        weak_dir="weak",
        pseudo_dir="pseudo",
        manifest="m.json",
        n_folds=3,
        seed=4,
        size_balance=True,
        crop="lungs",
        lung_weights="r231.pth",
        crop_margin_mm=7.5,
        overwrite=True,
        uncertain_band=(0.2, 0.8),
    )
    parser = build_parser()
    for settings in (default, s):
        args = parser.parse_args(["make-student-dataset", *required, *settings.cli_args()])
        assert student_dataset_settings_from_args(args) == settings
    # --band-from: the band of the file, given back as --uncertain-band
    band = tmp_path / "band.json"
    band.write_text(json.dumps({"band": [0.1, 0.9]}))
    args = parser.parse_args(["make-student-dataset", *required, "--band-from", str(band)])
    from_file = student_dataset_settings_from_args(args)
    assert from_file.uncertain_band == (0.1, 0.9)
    args = parser.parse_args(["make-student-dataset", *required, *from_file.cli_args()])
    assert student_dataset_settings_from_args(args) == from_file


def test_teacher_dataset_settings_round_trip_through_the_command_line():
    required = ["--strong", "501", "-d", "502"]
    default = TeacherDatasetSettings("501", 502)
    s = TeacherDatasetSettings(
        "Dataset501_X",
        503,
        "BoxTeacher",
        seed=5,
        box_mode="lesion3d",
        weak_dir="weak",
        overwrite=True,
        manifest="m.json",
        n_folds=3,
        annotator="exact",
    )
    parser = build_parser()
    for settings in (default, s):
        args = parser.parse_args(["make-teacher-dataset", *required, *settings.cli_args()])
        assert teacher_dataset_settings_from_args(args) == settings
    custom = Annotator(edge_fraction=0.2, skip_ends=0.1)
    assert Annotator.parse(annotator_arg(custom)) == custom
    assert Annotator.parse(annotator_arg(custom.to_dict())) == custom
