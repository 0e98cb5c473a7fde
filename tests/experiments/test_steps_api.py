"""Steps call the Python API; the command line a step shows must say the same: parsed by the CLI, it gives
the settings (and paths) the step calls with."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest

from nnunet_teacher_student.cli import build_parser
from nnunet_teacher_student.commands.make_scenario import scenario_settings_from_args
from nnunet_teacher_student.commands.make_student_dataset import (
    student_dataset_settings_from_args,
)
from nnunet_teacher_student.commands.make_teacher_dataset import (
    teacher_dataset_settings_from_args,
)
from nnunet_teacher_student.commands.predict import predict_settings_from_args
from nnunet_teacher_student.commands.pseudo_label import pseudo_label_settings_from_args
from nnunet_teacher_student.commands.synth import phantom_settings_from_args
from nnunet_teacher_student.experiments.benchmark import (
    pool_step,
    quick_settings,
    run_config,
    run_steps_for,
)
from nnunet_teacher_student.experiments.demo import demo_settings, synth_step
from nnunet_teacher_student.workflow.layout import Layout
from nnunet_teacher_student.workflow.steps import ApiCall

FROM_ARGS = {
    "pseudo-label": pseudo_label_settings_from_args,
    "make-student-dataset": student_dataset_settings_from_args,
    "make-teacher-dataset": teacher_dataset_settings_from_args,
    "make-scenario": scenario_settings_from_args,
    "synth": phantom_settings_from_args,
    "predict": predict_settings_from_args,
}


def plain(value):
    """Paths as strings, sequences as tuples: the CLI and the steps may spell them differently."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    return value


def fields(settings) -> dict:
    out = {f.name: plain(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    if "strong" in out:  # a raw dataset's id or folder name: the CLI keeps it a string
        out["strong"] = str(out["strong"])
    return out


def api_steps(tmp_path, monkeypatch) -> list:
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(k, str(tmp_path / k))
    settings = dataclasses.replace(quick_settings("cpu"), tumour_free=0.25, family="copd")
    cfg = run_config(settings, tmp_path, 0, *settings.runs()[0])
    steps = [pool_step(settings, tmp_path), *run_steps_for(settings, cfg, settings.runs()[0][0])]
    steps.append(
        synth_step(
            demo_settings(True, "cpu", 3, None, None), tmp_path / "demo", Layout(tmp_path / "demo")
        )
    )
    return [s for s in steps if s.call is not None]


def test_every_api_step_shows_the_command_that_gives_its_settings(tmp_path, monkeypatch):
    steps = api_steps(tmp_path, monkeypatch)
    commands = {shlex.split(s.command)[1] for s in steps}
    assert {*FROM_ARGS, "calibrate-band", "evaluate"} <= commands
    for step in steps:
        argv = shlex.split(step.command)
        assert argv[0] == "nnts", step.command
        if "--band-from" in argv:  # the band is read when the step runs, from a file made by then
            continue
        args = build_parser().parse_args(argv[1:])
        call = step.call()
        assert isinstance(call, ApiCall)
        assert callable(call.resolve())
        if argv[1] not in FROM_ARGS:
            assert call.settings is None
            continue
        assert fields(call.settings) == fields(FROM_ARGS[argv[1]](args)), step.command
        if argv[1] == "pseudo-label":
            assert plain(call.args[:2]) == plain((args.input, args.output))
        if argv[1] == "predict":
            assert plain(call.args[:3]) == plain((args.input, args.output, args.model))


def test_a_step_whose_settings_drift_from_its_command_is_caught(tmp_path, monkeypatch):
    """The check above can fail: a step calling with a setting its command does not show."""
    step = next(
        s for s in api_steps(tmp_path, monkeypatch) if s.command.startswith("nnts pseudo-label")
    )
    args = build_parser().parse_args(shlex.split(step.command)[1:])
    drifted = dataclasses.replace(step.call().settings, box_margin_mm=7.5)
    with pytest.raises(AssertionError):
        assert fields(drifted) == fields(pseudo_label_settings_from_args(args))
