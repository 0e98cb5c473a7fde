"""`nnts env` and the folder nnU-Net searches for our trainers."""

from __future__ import annotations

import os
import subprocess
import sys

from nnunet_teacher_student.cli import COMMAND_MODULES, main
from nnunet_teacher_student.nnunet.plans import ext_trainer_dir
from nnunet_teacher_student.trainers import __all__ as TRAINERS


def test_env_prints_exports_for_unset_folders_and_the_trainer_folder(capsys, monkeypatch, tmp_path):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("nnUNet_results", "/data/results")
    assert main(["env", "--base", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"export nnUNet_raw={tmp_path / 'nnUNet_raw'}" in lines
    assert f"export nnUNet_preprocessed={tmp_path / 'nnUNet_preprocessed'}" in lines
    assert not any(line.startswith("export nnUNet_results") for line in lines)
    assert f"export nnUNet_extTrainer={ext_trainer_dir()}" in lines


def test_ext_folder_holds_only_the_reexport_module_and_nnunet_finds_every_trainer():
    files = [p.name for p in ext_trainer_dir().iterdir() if p.name != "__pycache__"]
    assert files == ["nnts_trainers.py"]
    code = (
        "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f\n"
        f"names = {list(TRAINERS)!r}\n"
        "print(all(f(n).__name__ == n for n in names))"
    )
    env = dict(os.environ, nnUNet_extTrainer=str(ext_trainer_dir()))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"


def test_every_listed_command_is_registered():
    from nnunet_teacher_student.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    registered = set(sub.choices)
    assert {m.replace("_", "-") for m in COMMAND_MODULES} <= registered
