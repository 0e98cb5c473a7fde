"""``nnts demo`` / ``nnts pipeline``: the step runner, the config file, the report pieces, and (slow) the
whole method end to end with ``nnts demo --quick``."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.workflow.config import Budget, load_config
from nnunet_teacher_student.workflow.processes import run_command
from nnunet_teacher_student.workflow.steps import Step, run_steps
from nnunet_teacher_student.reporting.run_report import (
    fill_table,
    honest_summary,
    not_learnt,
    paired_comparison,
)

REPO = Path(__file__).resolve().parents[2]
NNUNET_VARS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer")


def _clean_env() -> dict:
    env = {
        k: v for k, v in os.environ.items() if k not in NNUNET_VARS and not k.startswith("NNTS_")
    }
    env["PYTHONPATH"] = str(REPO)
    return env


def _nnts(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nnunet_teacher_student.cli", *args],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


# --------------------------------------------------------------------------- step runner
def test_run_steps_skips_done_steps_keeps_timings_and_checks_outputs(tmp_path, capsys):
    marker = tmp_path / "made.txt"
    calls = []
    steps = [
        Step("already there", "echo a", lambda: calls.append("a"), lambda: True),
        Step(
            "make file",
            f"touch {marker}",
            lambda: (calls.append("b"), time.sleep(0.05), marker.write_text("x")),
            marker.is_file,
        ),
    ]
    timings = tmp_path / "timings.json"
    records = run_steps(steps, timings)
    out = capsys.readouterr().out
    assert calls == ["b"]
    assert (
        "[stage 1/2] already there: done already, skipped" in out and "[stage 2/2] make file" in out
    )
    assert f"$ touch {marker}" in out
    assert [r["status"] for r in records] == ["done in an earlier run", "ran"]
    ran_seconds = records[1]["seconds"]
    assert 0.05 <= ran_seconds < 30  # the step's own wall time, measured around its run()
    # a second run skips both and keeps the first run's time of the step it ran
    again = run_steps(steps, timings)
    assert calls == ["b"]
    assert again[1]["seconds"] == ran_seconds
    assert json.loads(timings.read_text())["steps"][1]["seconds"] == ran_seconds

    broken = Step("claims success", "true", lambda: None, lambda: False)
    with pytest.raises(InputError, match="outputs are incomplete"):
        run_steps([broken])


def test_stale_steps_are_redone_with_everything_after_them_and_steps_can_be_forced(
    tmp_path, capsys
):
    from nnunet_teacher_student.commands.pipeline import forced_steps
    from nnunet_teacher_student.workflow.steps import step_states

    data = tmp_path / "data"
    data.mkdir()
    (data / "case.txt").write_text("v1")
    made = {k: tmp_path / f"out{k}.txt" for k in range(3)}
    calls = []

    def step(k: int, inputs=()) -> Step:
        def run():
            calls.append(k)
            made[k].write_text("x")

        return Step(
            f"step {k}",
            f"make {k}",
            run,
            made[k].is_file,
            inputs=lambda: inputs,
            clear=lambda: made[k].unlink(),
        )

    steps = [step(0, [data]), step(1), step(2)]
    timings = tmp_path / "timings.json"
    run_steps(steps, timings)
    assert calls == [0, 1, 2] and step_states(steps, timings) == ["done"] * 3
    run_steps(steps, timings)
    assert calls == [0, 1, 2]  # current: nothing redone
    time.sleep(0.01)
    (data / "case.txt").write_text("v2, re-converted")  # the user's data changed
    assert step_states(steps, timings) == ["stale"] * 3  # and every step after it
    run_steps(steps, timings)
    out = capsys.readouterr().out
    assert (
        calls == [0, 1, 2, 0, 1, 2]
        and "(redone: outputs made from other inputs or settings)" in out
    )
    changed = [
        steps[0],
        steps[1],
        Step("step 2", "make 2 --other-setting", steps[2].run, steps[2].done, clear=steps[2].clear),
    ]
    run_steps(changed, timings)
    assert calls[6:] == [2]  # a setting of step 2 changed: only it
    run_steps(changed, timings, force=forced_steps(changed, None, ["step 1"]))
    assert calls[7:] == [1]
    run_steps(changed, timings, force=forced_steps(changed, "2", None))
    assert calls[8:] == [1, 2]
    with pytest.raises(InputError, match="more than one step matches"):
        forced_steps(changed, "step", None)


def test_run_command_streams_progress_lines_logs_everything_and_reports_failures(tmp_path, capsys):
    log = tmp_path / "logs" / "x.log"
    script = "print('Epoch 3'); print('noise'); print('train_loss -0.5')"
    run_command([sys.executable, "-c", script], os.environ, log)
    shown = capsys.readouterr().out
    assert "Epoch 3" in shown and "train_loss -0.5" in shown and "noise" not in shown
    assert "noise" in log.read_text()
    with pytest.raises(InputError, match=r"exit code 3.*\n.*last words"):
        run_command(
            [sys.executable, "-c", "import sys; print('last words'); sys.exit(3)"], os.environ, log
        )


def test_budget_env_names_only_what_is_set():
    assert Budget(epochs=5, no_mirroring=True).env() == {
        "NNTS_EPOCHS": "5",
        "NNTS_NO_MIRRORING": "1",
    }
    assert Budget().env() == {}
    assert Budget(iterations=7, skip_validation=True).env() == {
        "NNTS_ITERATIONS": "7",
        "NNTS_SKIP_VALIDATION": "1",
    }


# --------------------------------------------------------------------------- pipeline config
def test_example_config_loads_with_paths_relative_to_the_file():
    cfg, folders = load_config(REPO / "examples" / "pipeline.toml")
    assert cfg.strong == 501 and cfg.dataset_ids == {
        "teacher": 502,
        "so": 503,
        "do": 504,
        "baseline": 505,
    }
    assert cfg.weak_dir == REPO / "examples" / "data" / "weak"
    assert cfg.work_dir == REPO / "examples" / "nnts_pipeline"
    assert cfg.trainers["teacher"] == "nnUNetTrainerBoxTeacher" and cfg.folds == (0,)
    assert cfg.device in ("cpu", "cuda") and folders == {}


@pytest.mark.parametrize(
    "body, message",
    [
        ("[data]\nweak = 'w'\n", "needs 'strong'"),
        (
            "[data]\nstrong = 1\nweak = 'w'\n[datasets]\nteacher = 2\nso = 3\ndo = 4\nbaseline = 2\n",
            "must all differ",
        ),
        ("[data]\nstrong = 1\nweak = 'w'\n[datasets]\nteacher = 2\nso = 3\n", "do must be a new"),
        (
            "[data]\nstrong = 1\nweak = 'w'\n[datasets]\nteacher = 2\nso = 3\ndo = 4\nbaseline = 5\n[train]\n"
            "models = ['teacher']\n",
            "models may name",
        ),
        (
            "[data]\nstrong = 1\nweak = 'w'\n[datasets]\nteacher = 2\nso = 3\n[train]\nmodels = ['so']\ndevice = 'tpu'\n",
            "device must be",
        ),
        (
            "[data]\nstrong = 1\nweak = 'w'\n[datasets]\nteacher = 2\nso = 3\n[train]\nmodels = ['so']\ncrop = 'body'\n",
            'crop must be "lungs" or "none"',
        ),
        ("[oops]\n", "unknown section 'oops'"),
        (
            "[data]\nstrong = 1\nweak = 'w'\n[train]\nepoch = 1\n",
            r"unknown key in \[train\] 'epoch' \(did you mean 'epochs'\?\)",
        ),
        (
            "[small]\npatch = [8, 16, 16]\n",
            r"unknown key in \[small\] 'patch' \(did you mean 'patch_size'\?\)",
        ),
        (
            "[predict]\ntta_mode = false\n",
            r"unknown key in \[predict\] 'tta_mode' \(did you mean 'tta'\?\)",
        ),
        ("[train]\nxyzzy = 1\n", r"unknown key in \[train\] 'xyzzy' \(known: configuration"),
        ("train = 3\n", r"\[train\] must be a table"),
        ("[data\n", "not valid TOML"),
    ],
)
def test_bad_configs_name_the_file_and_the_problem(tmp_path, body, message):
    path = tmp_path / "p.toml"
    path.write_text(body)
    with pytest.raises(InputError, match=message) as e:
        load_config(path)
    assert str(path) in str(e.value)


ROUNDS_CONFIG = """
[data]
strong = 501
weak = "weak"
test_images = "test/images"
test_labels = "test/labels"
weak_labels = "weak/labels"
[datasets]
teacher = 502
so = 503
do = 504
baseline = 505
[train]
rounds = 3
[pseudo_label]
max_label_change = 0.3
max_disagreement = 0.2
filter_mode = "drop"
"""


def test_noisy_student_rounds_become_steps(tmp_path, monkeypatch):
    """``rounds = 3``: rounds 2 and 3 re-label the weak set with the previous round's DO student (against the
    previous round's labels, the label-change filter only there), then train their students on their own ids."""
    from nnunet_teacher_student.workflow.method import method_steps
    from nnunet_teacher_student.workflow.layout import Layout

    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(k, str(tmp_path / k))
    path = tmp_path / "p.toml"
    path.write_text(ROUNDS_CONFIG)
    cfg, _ = load_config(path)
    assert cfg.rounds == 3 and cfg.relabel_with == "do"
    assert {r: cfg.dataset_ids[r] for r in ("so_r2", "do_r2", "so_r3", "do_r3")} == {
        "so_r2": 603,
        "do_r2": 604,
        "so_r3": 703,
        "do_r3": 704,
    }
    assert cfg.trainers["do_r3"] == cfg.trainers["do"] and not cfg.names_clash()
    steps = method_steps(cfg, Layout(cfg.work_dir))
    names = [s.name for s in steps]
    assert len(names) == len(set(names))
    by = {s.name: s.command for s in steps}
    work = cfg.work_dir
    first = by["pseudo-label the weak set (with QC)"]
    assert (
        "--max-disagreement 0.2" in first
        and "--max-label-change" not in first
        and "--previous" not in first
    )
    r2 = by["round 2: re-label the weak set (DO student, in the boxes)"]
    assert (
        "Dataset504_StudentDO/nnUNetTrainerDOStudent__" in r2
        and f"-o {work / 'pseudo_labels_round2'}" in r2
    )
    assert f"--previous {work / 'pseudo_labels'} " in r2 + " " and "--max-label-change 0.3" in r2
    r3 = by["round 3: re-label the weak set (DO student, round 2, in the boxes)"]
    assert "Dataset604_StudentDORound2/nnUNetTrainerDOStudent__" in r3
    assert (
        f"--previous {work / 'pseudo_labels_round2'}" in r3
        and f"-o {work / 'pseudo_labels_round3'}" in r3
    )
    ds = by["round 3: DO student dataset (box + tumour regions)"]
    assert (
        "-d 704 --name StudentDORound3 --form do" in ds
        and f"--pseudo {work / 'pseudo_labels_round3'}" in ds
    )
    assert (
        "nnUNetv2_train 704 3d_fullres 0 -tr nnUNetTrainerDOStudent"
        in by["train DO student, round 3 (nnUNetTrainerDOStudent)"]
    )
    assert names.index(
        "round 3: re-label the weak set (DO student, round 2, in the boxes)"
    ) > names.index("train DO student, round 2 (nnUNetTrainerDOStudent)")
    assert (
        "evaluate Pseudo-labels of round 3 (DO student, round 2) (pseudo-labels vs true weak masks)"
        in names
    )
    assert sum(n.startswith("predict the test set") for n in names) == 3 + 2 * 2
    from nnunet_teacher_student.cli import build_parser  # every nnts command is one the CLI takes

    for c in (c for s in steps for c in s.command.split(" && ") if c.startswith("nnts ")):
        build_parser().parse_args(shlex.split(c)[1:])


@pytest.mark.parametrize(
    "change, message",
    [
        ("rounds = 3", "rounds = 0"),
        ("rounds = 3", "rounds = 'two'"),
        ("[datasets]", "[datasets]\nround_offset = 1"),
        ("do = 504", "do = 904"),
        ("rounds = 3", "rounds = 2\nrelabel_with = 'baseline'"),
        ("rounds = 3", "rounds = 1"),
    ],
)
def test_bad_round_settings_are_refused(tmp_path, change, message):
    expected = {
        "rounds = 0": "rounds must be a whole number",
        "rounds = 'two'": "rounds must be a whole number",
        "[datasets]\nround_offset = 1": "clash with other ids",
        "do = 904": "over 999",
        "rounds = 2\nrelabel_with = 'baseline'": "relabel_with must be a trained student",
        "rounds = 1": "max_label_change .* needs \\[train\\] rounds >= 2",
    }[message]
    path = tmp_path / "p.toml"
    path.write_text(ROUNDS_CONFIG.replace(change, message, 1))
    with pytest.raises(InputError, match=expected) as e:
        load_config(path)
    assert str(path) in str(e.value)


def test_pipeline_dry_run_lists_the_steps_with_their_commands(tmp_path):
    from nnunet_teacher_student.phantom.datasets import write_phantom_datasets
    from nnunet_teacher_student.phantom.settings import PhantomSettings

    raw = tmp_path / "raw"
    write_phantom_datasets(
        PhantomSettings(
            tmp_path / "ph",
            501,
            n_strong=2,
            n_weak=1,
            n_test=1,
            seed=1,
            preset="tiny",
            raw_dir=raw,
            progress=False,
        )
    )
    config = tmp_path / "p.toml"
    config.write_text(
        textwrap.dedent("""
        [paths]
        work_dir = "work"
        nnUNet_raw = "raw"
        nnUNet_preprocessed = "pre"
        nnUNet_results = "res"
        [data]
        strong = 501
        weak = "ph/weak"
        test_images = "ph/test/images"
        test_labels = "ph/test/labels"
        manifest = "ph/manifest.json"
        [datasets]
        teacher = 502
        so = 503
        do = 504
        baseline = 505
        [train]
        device = "cpu"
        epochs = 3
        """)
    )
    proc = _nnts("pipeline", str(config), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"export nnUNet_raw={raw}" in out
    assert (
        "[stage 1/" in out and "teacher dataset" in out and ": to do" in out and ": done" not in out
    )
    assert "nnts make-teacher-dataset --strong 501 -d 502" in out
    assert (
        "nnUNetv2_extract_fingerprint -d 502" in out and "use_box_window(502)" in out
    )  # the teacher's window
    assert (
        "NNTS_EPOCHS=3 NNTS_SEED=0 nnUNet_n_proc_DA=0 nnUNetv2_train 502 3d_fullres all -tr nnUNetTrainerBoxTeacher "
        "-device cpu"
    ) in out  # the teacher: every strong case (fold all), seeded
    assert "then the teacher guard" in out
    assert (
        "NNTS_EPOCHS=3 NNTS_SEED=0 nnUNet_n_proc_DA=0 nnUNetv2_train 504 3d_fullres 0 -tr nnUNetTrainerDOStudent"
        in out
    )
    assert "nnts pseudo-label -i" in out and "nnts make-student-dataset --strong 501 -d 504" in out
    assert "--form do" in out and "nnts predict -i" in out and "nnts evaluate --pred" in out
    assert not (tmp_path / "work").exists()  # a dry run writes nothing

    assert "checks passed: 2 strong case(s), 1 weak case(s), no id shared, 1 test case(s)" in out

    bad = _nnts("pipeline", str(tmp_path / "missing.toml"))
    assert bad.returncode == 1 and "missing.toml: config file not found" in bad.stderr

    # what the student-dataset step would find after the teacher trained is found now, also by --dry-run
    import shutil

    weak = tmp_path / "ph" / "weak"
    case = next((weak / "images").glob("*.nii.gz")).name[: -len(".nii.gz")]
    strong = next(raw.glob("Dataset501_*"))
    shutil.copyfile(
        strong / "labelsTr" / "phantom_0001.nii.gz", strong / "labelsTr" / f"{case}.nii.gz"
    )
    shutil.copyfile(
        strong / "imagesTr" / "phantom_0001_0000.nii.gz",
        strong / "imagesTr" / f"{case}_0000.nii.gz",
    )
    clash = _nnts("pipeline", str(config), "--dry-run")
    assert clash.returncode == 1 and f"case id(s) ['{case}'] are also strong cases" in clash.stderr
    for f in (strong / "labelsTr" / f"{case}.nii.gz", strong / "imagesTr" / f"{case}_0000.nii.gz"):
        f.unlink()
    (raw / "Dataset503_SomeoneElse").mkdir()
    taken = _nnts("pipeline", str(config), "--dry-run")
    assert (
        taken.returncode == 1
        and "Dataset503_SomeoneElse: dataset id 503 ([datasets] so) is taken" in taken.stderr
    )
    box = next((weak / "boxes").glob("*.json"))
    doc = json.loads(box.read_text())
    doc["geometry"]["size"][0] += 1
    box.write_text(json.dumps(doc))
    (raw / "Dataset503_SomeoneElse").rmdir()
    grid = _nnts("pipeline", str(config))
    assert grid.returncode == 1 and box.name in grid.stderr and not (tmp_path / "work").exists()


# --------------------------------------------------------------------------- demo folder guard
def test_demo_refuses_a_foreign_folder_even_with_overwrite(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = _nnts("demo", "--quick", "-o", str(tmp_path), "--overwrite", "-device", "cpu")
    assert proc.returncode == 1 and "is not an nnts demo folder" in proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_demo_refuses_to_mix_runs_with_other_settings(tmp_path):
    from dataclasses import asdict

    from nnunet_teacher_student.experiments.demo import SETTINGS_FILE, demo_settings

    other = asdict(demo_settings(True, "cpu", seed=5, epochs=None, iterations=None))
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"settings": json.loads(json.dumps(other))}))
    proc = _nnts("demo", "--quick", "-o", str(tmp_path), "-device", "cpu")
    assert proc.returncode == 1 and "other settings (differs in seed)" in proc.stderr


# --------------------------------------------------------------------------- report pieces
def _result(dscs: dict[str, float], empty: dict[str, float] | None = None) -> dict:
    """Tumour cases with these DSCs, and tumour-free cases with these predicted volumes (mL)."""
    return {
        "cases": [
            {"case": c, "dsc": d, "gt_volume_ml": 1.0, "pred_volume_ml": 1.0}
            for c, d in dscs.items()
        ]
        + [
            {"case": c, "dsc": float(v == 0), "gt_volume_ml": 0.0, "pred_volume_ml": v}
            for c, v in (empty or {}).items()
        ]
    }


def test_paired_comparison_and_the_honest_summary():
    base = _result({f"c{i}": 0.5 for i in range(8)})
    better = _result({f"c{i}": 0.5 + (0.1 if i < 7 else -0.05) for i in range(8)})
    cmp_ = paired_comparison(better, base)
    assert cmp_["n"] == 8 and cmp_["better"] == 7 and cmp_["worse"] == 1
    assert cmp_["mean"] == pytest.approx((0.7 - 0.05) / 8)
    assert 0 < cmp_["p"] < 0.05 and cmp_["low"] < cmp_["mean"] < cmp_["high"]
    text = honest_summary({"B": base, "S": better}, "B", ["S"], quick=False, teacher_doc=None)
    assert "S vs B: +8.1 DSC points" in text and "better on 7, worse on 1" in text
    # a tumour-free case where S predicts nothing (DSC 1 by convention) and B a stray speck changes nothing
    base_e = _result({f"c{i}": 0.5 for i in range(8)}, {"e": 0.02})
    better_e = _result({f"c{i}": 0.5 + (0.1 if i < 7 else -0.05) for i in range(8)}, {"e": 0.0})
    assert paired_comparison(better_e, base_e)["mean"] == pytest.approx(cmp_["mean"])
    text = honest_summary({"B": base_e, "S": better_e}, "B", ["S"], quick=False, teacher_doc=None)
    assert "S vs B: +8.1 DSC points" in text and "1 test case(s) have no tumour (e)" in text
    assert (
        "B 1 of 1 with false positives (mean 0.02 mL" in text
        and "S 0 of 1 with false positives" in text
    )
    assert "unlikely to be chance" in text
    few = honest_summary(
        {"B": _result({"a": 0.5}), "S": _result({"a": 0.6})},
        "B",
        ["S"],
        quick=True,
        teacher_doc=None,
    )
    assert (
        "too few cases for a test" in few
        and "cannot tell from chance" in few
        and "smoke run" in few
    )


def test_fill_table_bins_pseudo_label_dsc_by_box_fill():
    qc = [
        {"box_fill_mean": 0.1, "dice_vs_truth": 0.2},
        {"box_fill_mean": 0.6, "dice_vs_truth": 0.8},
        {"box_fill_mean": 0.65, "dice_vs_truth": 0.6},
        {"box_fill_mean": 0.9, "dice_vs_truth": None},
    ]
    table = fill_table(qc)
    assert "| 0–30 % | 1 | 20.00 ± 0.00 |" in table
    assert "| 50–70 % | 2 | 70.00 ± 10.00 |" in table
    assert "| 70–100 % | 0 | – |" in table


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_demo_quick_runs_the_whole_method_end_to_end(tmp_path):
    out = tmp_path / "demo"
    t0 = time.perf_counter()
    proc = _nnts("demo", "--quick", "-o", str(out), "-device", "cpu", timeout=1800)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    log = proc.stdout
    # progress: stages, the nnU-Net commands, epochs
    assert (
        "[stage 1/" in log and "nnUNetv2_train 901 3d_small all -tr nnUNetTrainerBoxTeacher" in log
    )
    assert "Epoch 0" in log and "export nnUNet_results=" in log

    # every model trained by nnU-Net, in nnU-Net's own folders
    results = out / "nnUNet_results"
    for ds, trainer, fold in (
        ("Dataset901_PhantomTeacher", "nnUNetTrainerBoxTeacher", "all"),
        ("Dataset902_PhantomStudentSO", "nnUNetTrainerSOStudent", "all"),
        ("Dataset903_PhantomStudentDO", "nnUNetTrainerDOStudent", "all"),
        ("Dataset902_PhantomStudentSO", "nnUNetTrainerNNTS", "all"),  # the control
        ("Dataset904_PhantomBaseline", "nnUNetTrainerNNTS", "all"),
    ):  # every strong case
        assert (
            results
            / ds
            / f"{trainer}__nnUNetPlans__3d_small"
            / f"fold_{fold}"
            / "checkpoint_final.pth"
        ).is_file()
    # the teacher guard scored the teacher (quick: at most 2 trainings) and kept one training in fold_all
    teacher = (
        results / "Dataset901_PhantomTeacher" / "nnUNetTrainerBoxTeacher__nnUNetPlans__3d_small"
    )
    guard = json.loads((teacher / "nnts_guard.json").read_text())
    assert (
        guard["final"] and 1 <= len(guard["attempts"]) <= 2 and "teacher guard, attempt 1/2" in log
    )
    for k, a in enumerate(
        guard["attempts"]
    ):  # each attempt's mean is the mean of its strong cases' DSC
        assert a["seed"] == k and a["dsc_mean"] == pytest.approx(
            sum(a["dsc_per_case"].values()) / len(a["dsc_per_case"]), abs=1e-4
        )
    assert (
        len(guard["attempts"]) == 1
        or (teacher / f"fold_all_seed{1 - guard['chosen_seed']}_failed").is_dir()
    )
    # the teacher's CT window was fitted to its box voxels (lung included), nnU-Net's own fingerprint kept beside it
    pre = out / "nnUNet_preprocessed" / "Dataset901_PhantomTeacher"
    window = json.loads((pre / "nnUNetPlans.json").read_text())[
        "foreground_intensity_properties_per_channel"
    ]["0"]
    nnunet = json.loads((pre / "dataset_fingerprint.nnunet.json").read_text())
    assert (
        window["percentile_00_5"]
        < -700
        < nnunet["foreground_intensity_properties_per_channel"]["0"]["mean"]
    )
    # pseudo-labels with QC, predictions of all test cases, evaluations
    qc = json.loads((out / "pseudo_labels" / "qc.json").read_text())
    assert (
        qc["complete"]
        and len(qc["cases"]) == 6
        and all(c["dice_vs_truth"] is not None for c in qc["cases"])
    )
    for role in ("so", "do", "so_nnunet", "baseline"):
        assert len(list((out / "predictions" / role).glob("*.nii.gz"))) == 2
        summary = json.loads((out / "evaluation" / role / "summary.json").read_text())
        assert len(summary["cases"]) == 2
        for c in summary["cases"]:  # the DSC recomputed from the written mask and the true label
            from nnunet_teacher_student.evaluation.metrics import dice
            import SimpleITK as sitk

            pred = sitk.GetArrayFromImage(sitk.ReadImage(c["pred_file"])) > 0
            truth = sitk.GetArrayFromImage(sitk.ReadImage(c["gt_file"])) > 0
            assert c["dsc"] == pytest.approx(dice(pred, truth))

    report = out / "report" / "report.md"
    text = report.read_text()
    for table_header in (
        "Teacher: pseudo-labels",
        "Students vs the strong-only baseline",
        "| Dataset | Model | DSC",
    ):
        assert table_header in text
    for model in (
        "Box teacher (pseudo-labels)",
        "SO student",
        "DO student",
        "Baseline (strong only)",
        "nnU-Net on strong + pseudo (control)",
    ):
        assert f"| {model} |" in text
    assert (
        "smoke run" in text
        and "## Timings" in text
        and "## Settings" in text
        and "**Teacher guard**" in text
    )
    for png in (
        "test_cases.png",
        "weak_cases.png",
        "dsc_per_model.png",
        "pseudo_dsc_vs_box_fill.png",
        "training_teacher.png",
    ):
        path = out / "report" / png
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"]({png})" in text
    print(f"nnts demo --quick: {seconds:.0f} s")

    # a rerun resumes: every step is skipped, the report is rewritten
    again = _nnts("demo", "--quick", "-o", str(out), "-device", "cpu", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout and "Epoch" not in again.stdout
    n_steps = again.stdout.count("[stage ")
    assert again.stdout.count("done already, skipped") == n_steps

    # kill -9 while the SO student trains again, rerun: the same checkpoint and table as the uninterrupted run
    import shutil

    import torch
    from nnts_testlib import kill9_when, nnts_cli

    fold = (
        results
        / "Dataset902_PhantomStudentSO"
        / "nnUNetTrainerSOStudent__nnUNetPlans__3d_small"
        / "fold_all"
    )
    weights = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)[
        "network_weights"
    ]
    cases = json.loads((out / "evaluation" / "so" / "summary.json").read_text())["cases"]
    for folder in (fold, out / "predictions" / "so", out / "evaluation" / "so"):
        shutil.rmtree(folder)
    assert kill9_when(
        nnts_cli("demo", "--quick", "-o", str(out), "-device", "cpu"),
        lambda: any(fold.glob("training_log_*.txt")),
        env=_clean_env(),
    ), "finished before the kill"
    assert not (fold / "checkpoint_final.pth").exists()
    resumed = _nnts("demo", "--quick", "-o", str(out), "-device", "cpu", timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again_weights = torch.load(
        fold / "checkpoint_final.pth", map_location="cpu", weights_only=False
    )["network_weights"]
    assert all(torch.equal(weights[k], again_weights[k]) for k in weights)
    again_cases = json.loads((out / "evaluation" / "so" / "summary.json").read_text())["cases"]
    assert [(c["case"], c["dsc"]) for c in again_cases] == [(c["case"], c["dsc"]) for c in cases]


def test_budget_scales_only_the_training_epochs():
    from nnunet_teacher_student.experiments.demo import (
        DEFAULT_MINUTES,
        epochs_for_minutes,
        demo_settings,
    )

    default = demo_settings(False, "cpu", 0, None, None).epochs
    assert epochs_for_minutes(default, DEFAULT_MINUTES) == default
    assert (
        epochs_for_minutes(default, 2 * DEFAULT_MINUTES) > 2 * default
    )  # the fixed overhead is not doubled
    assert epochs_for_minutes(default, 1) == 1
    assert demo_settings(False, "cpu", 0, None, None, minutes=60).epochs == epochs_for_minutes(
        default, 60
    )
    assert demo_settings(False, "cpu", 0, epochs=3, iterations=None).epochs == 3


def test_honest_summary_flags_a_failed_teacher_and_tumour_free_test_cases():
    teacher = {"summary": {"overall": {"dsc": {"mean": 0.0, "std": 0.0, "n": 4}}}, "cases": []}
    base = {
        "cases": [
            {"case": "a", "dsc": 1.0, "gt_volume_ml": 0.0},
            {"case": "b", "dsc": 0.1, "gt_volume_ml": 2.0},
        ]
    }
    text = honest_summary({"T": teacher, "B": base}, "B", [], quick=False, teacher_doc=teacher)
    assert "The teacher failed" in text
    assert "1 test case(s) have no tumour (a)" in text


def test_the_summary_draws_no_comparison_with_a_model_that_did_not_learn():
    def doc(pred_ml: float, precision: float) -> dict:
        return {
            "cases": [
                {
                    "case": f"c{i}",
                    "dsc": 0.3 + 0.01 * i,
                    "gt_volume_ml": 2.0,
                    "pred_volume_ml": pred_ml,
                    "precision": precision,
                }
                for i in range(8)
            ]
        }

    good = doc(2.1, 0.9)
    assert not_learnt(good) is None
    assert "predicts nothing" in not_learnt(doc(0.0, 0.0))
    assert "over ten times" in not_learnt(doc(230.0, 0.5))
    assert "precision below 5 %" in not_learnt(doc(5.0, 0.0))
    text = honest_summary(
        {"B": doc(0.0, 0.0), "S": good}, "B", ["S"], quick=False, teacher_doc=None
    )
    assert "**B did not learn**" in text and "S vs B" not in text
    text = honest_summary(
        {"B": good, "S": doc(230.0, 0.0)}, "B", ["S"], quick=False, teacher_doc=None
    )
    assert "**S did not learn**" in text and "S vs B" not in text


def test_predict_tta_is_its_own_setting(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(
        "[data]\nstrong = 1\nweak = 'w'\n[datasets]\nteacher = 2\nso = 3\ndo = 4\nbaseline = 5\n"
        "[pseudo_label]\ntta = true\n[predict]\ntta = false\n"
    )
    cfg, _ = load_config(path)
    assert cfg.tta and not cfg.test_tta


def test_own_data_path_of_the_readme_up_to_the_dry_run(tmp_path):
    """nnU-Net-style CT names, box-mask images as boxes, both converted, a pipeline TOML, the dry run's checks."""
    import shutil

    from nnunet_teacher_student.phantom.datasets import write_phantom_datasets
    from nnunet_teacher_student.phantom.settings import PhantomSettings

    ph = tmp_path / "ph"
    write_phantom_datasets(
        PhantomSettings(
            ph,
            590,
            n_strong=2,
            n_weak=2,
            n_test=1,
            seed=3,
            preset="tiny",
            raw_dir=tmp_path / "r0",
            progress=False,
        )
    )
    data = tmp_path / "data"
    src = next((tmp_path / "r0").glob("Dataset590_*"))
    shutil.copytree(src / "imagesTr", data / "strong" / "images")  # <case>_0000.nii.gz
    shutil.copytree(src / "labelsTr", data / "strong" / "labels")
    shutil.copytree(ph / "weak" / "images", data / "weak" / "images")
    shutil.copytree(
        ph / "weak" / "boxmasks", data / "weak" / "boxmasks"
    )  # box-mask images as the box input
    env = {
        **_clean_env(),
        "nnUNet_raw": str(tmp_path / "raw"),
        "nnUNet_preprocessed": str(tmp_path / "pre"),
        "nnUNet_results": str(tmp_path / "res"),
    }

    def nnts(*args):
        return subprocess.run(
            [sys.executable, "-m", "nnunet_teacher_student.cli", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    strong = nnts(
        "convert",
        "folder",
        "data/strong/images",
        "--masks",
        "data/strong/labels",
        "-d",
        "771",
        "--name",
        "MyStrong",
        "--test-fraction",
        "0",
    )
    assert strong.returncode == 0, strong.stdout + strong.stderr
    weak = nnts(
        "convert",
        "folder",
        "data/weak/images",
        "--boxes",
        "data/weak/boxmasks",
        "-o",
        "data/weak_set",
        "--test-fraction",
        "0",
    )
    assert weak.returncode == 0, weak.stdout + weak.stderr
    (tmp_path / "my.toml").write_text(
        textwrap.dedent(f"""
        [data]
        strong = 771
        weak = "data/weak_set"
        manifest = "{tmp_path / "raw" / "Dataset771_MyStrong" / "manifest.json"}"
        [datasets]
        teacher = 772
        so = 773
        do = 774
        baseline = 775
        [train]
        device = "cpu"
        epochs = 2
        """)
    )
    dry = nnts("pipeline", "my.toml", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "checks passed: 2 strong case(s), 2 weak case(s), no id shared" in dry.stdout


def test_run_report_has_a_row_per_round(tmp_path, monkeypatch):
    from nnunet_teacher_student.reporting.run_report import rounds_section
    from nnunet_teacher_student.workflow.layout import Layout

    path = tmp_path / "p.toml"
    path.write_text(ROUNDS_CONFIG.replace("rounds = 3", "rounds = 2"))
    cfg, _ = load_config(path)
    layout = Layout(cfg.work_dir)

    def summary(role: str, dsc: float) -> None:
        (layout.evaluation(role)).mkdir(parents=True)
        (layout.evaluation(role) / "summary.json").write_text(
            json.dumps({"summary": {"overall": {"dsc": {"mean": dsc}}}})
        )

    for k, changes in ((1, []), (2, [0.1, 0.3])):
        folder = layout.round_pseudo(k)
        folder.mkdir(parents=True)
        (folder / "qc.json").write_text(
            json.dumps(
                {"cases": [{"case": f"c{i}", "label_change": c} for i, c in enumerate(changes)]}
            )
        )
    (layout.round_pseudo(2) / "excluded.json").write_text(json.dumps({"excluded": ["c1"]}))
    for role, dsc in (
        ("teacher", 0.87),
        ("pseudo_r2", 0.83),
        ("so", 0.78),
        ("do", 0.79),
        ("do_r2", 0.75),
    ):
        summary(role, dsc)
    rows = [
        line
        for line in rounds_section(cfg, layout).splitlines()
        if line.startswith("| ") and "Round" not in line
    ]
    assert rows == [
        "| 1 | Box teacher (pseudo-labels) | 87.0 | – | 0 | 78.0 | 79.0 |",
        "| 2 | DO student | 83.0 | 20.0 | 1 | – | 75.0 |",
    ]


def test_qc_figures_need_their_number(tmp_path):
    from nnunet_teacher_student.reporting.figures import figure_box_consistency, figure_disagreement

    qc = [
        {"case": "a", "box_iou_mean": 0.7, "empty_boxes": 1, "dice_vs_truth": 0.8},
        {"case": "b", "box_iou_mean": 0.5, "dice_vs_truth": 0.6},
    ]
    assert figure_disagreement(qc, tmp_path / "d.png") is None and not (tmp_path / "d.png").exists()
    assert figure_box_consistency(qc, tmp_path / "b.png").stat().st_size > 1000
    qc[0]["disagreement"] = 0.1
    assert figure_disagreement(qc, tmp_path / "d.png").stat().st_size > 1000
