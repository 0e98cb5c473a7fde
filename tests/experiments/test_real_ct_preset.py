"""The clinical-resolution preset ``examples/real_ct.toml``: its own spacing is planned and preprocessed as
its own nnU-Net configuration, the student datasets are lung crops, and ``models = []`` stops after the
pseudo-labels."""

from __future__ import annotations

import json
from pathlib import Path

from nnunet_teacher_student.workflow.config import load_config
from nnunet_teacher_student.workflow.layout import Layout
from nnunet_teacher_student.workflow.method import method_steps

REPO = Path(__file__).resolve().parents[2]
PRESET = REPO / "examples" / "real_ct.toml"


def _steps(config: Path, folders: Path, monkeypatch):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(folders / name))
    cfg, _ = load_config(config)
    return cfg, {s.name: s.command for s in method_steps(cfg, Layout(cfg.work_dir))}


def test_preset_plans_its_own_spacing_and_crops_the_students_to_the_lungs(tmp_path, monkeypatch):
    cfg, steps = _steps(PRESET, tmp_path, monkeypatch)
    assert cfg.small.spacing == (3.0, 2.0, 2.0) and cfg.small.patch_size == (32, 80, 80)
    assert cfg.train_configuration == "3d_real" and cfg.student_crop == "lungs"
    plan = steps["plan and preprocess (teacher)"]
    # nnU-Net plans the base configuration from the data, then our configuration is added and preprocessed
    order = [
        "nnUNetv2_extract_fingerprint -d 911",
        "use_box_window(911)",
        "nnUNetv2_plan_experiment -d 911",
        "add_small_configuration(911",
        "nnUNetv2_preprocess -d 911 -c 3d_real",
    ]
    at = [plan.index(part) for part in order]
    assert at == sorted(at), plan
    assert "(32, 80, 80), (8, 16, 32, 64, 128), 2," in plan and "(3.0, 2.0, 2.0))" in plan
    assert "-c 3d_fullres" not in plan  # the base configuration's data would never be used
    students = steps["plan and preprocess (students and baseline)"]
    assert "--no_pp" in students and "nnUNetv2_preprocess -d 912 913 914 -c 3d_real" in students
    crops = [c for c in steps.values() if "--crop lungs" in c]
    assert len(crops) == 3 and all("make-student-dataset" in c for c in crops)  # so, do, baseline
    assert any(
        "nnUNetv2_train 911 3d_real all -tr nnUNetTrainerBoxTeacher" in c for c in steps.values()
    )


def test_no_models_runs_the_teacher_and_the_pseudo_labels_only(tmp_path, monkeypatch):
    config = tmp_path / "teacher_only.toml"
    config.write_text(
        PRESET.read_text()
        .replace('models = ["so", "do", "baseline"]', "models = []")
        .replace('weak = "data/real_weak"', f"weak = {json.dumps(str(REPO / 'examples' / 'data'))}")
    )
    cfg, steps = _steps(config, tmp_path, monkeypatch)
    assert cfg.train == ()
    commands = " ".join(steps.values())
    assert "nnts pseudo-label" in commands and "nnUNetv2_train 911 3d_real" in commands
    assert (
        "make-student-dataset" not in commands
        and "912" not in commands
        and "nnts predict" not in commands
    )
