"""``nnts benchmark``: settings, the run's step list, statistics across seeds, the goal check, the report.

The full benchmark trains dozens of models; its end-to-end smoke run (``--quick``) is marked
``benchmark`` and runs outside the default suite. Here everything but the training runs for real.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnunet_teacher_student.experiments.benchmark import (
    DATASET_OFFSETS,
    MODELS,
    BenchmarkSettings,
    default_settings,
    load_run_results,
    pool_step,
    quick_settings,
    run_config,
    SECOND_OFFSETS,
    run_dir,
    run_steps_for,
)
from nnunet_teacher_student.experiments.benchmark_report import (
    aggregate,
    failed_teachers,
    goal_check,
    goal_text,
    markdown_table,
    seed_stats,
)
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.experiments.presets import MODEL_NAMES
from nnunet_teacher_student.workflow.layout import Layout


def test_seed_stats_match_the_t_interval_by_hand():
    values = [0.5, 0.6, 0.7]
    s = seed_stats(values)
    std = math.sqrt(sum((v - 0.6) ** 2 for v in values) / 2)  # sample std
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(std)
    assert s["ci95"] == pytest.approx(4.302653 * std / math.sqrt(3), rel=1e-6)  # t(0.975, df=2)
    assert s["low"] == pytest.approx(0.6 - s["ci95"]) and s["high"] == pytest.approx(
        0.6 + s["ci95"]
    )
    one = seed_stats([0.4, None, float("nan")])
    assert (
        one["n"] == 1 and one["mean"] == 0.4 and math.isnan(one["std"]) and math.isnan(one["ci95"])
    )
    assert seed_stats([])["n"] == 0


OFFSETS = (-0.04, -0.02, 0.0, 0.02, 0.04)  # per tumour case around the run's mean


def _runs(
    dsc: dict[str, list[float]],
    scenario: str = "scarce",
    n_strong: int = 4,
    free: dict[str, float] | None = None,
) -> tuple[list[dict], dict]:
    """Per-run records and per-case results: per model one value per seed = the mean DSC over five tumour
    cases (the value + OFFSETS), and one tumour-free case whose predicted volume is ``free[model]`` mL (DSC
    1 when it predicts nothing, 0 otherwise, as the metric's convention)."""
    records, cases = [], {}
    for model, values in dsc.items():
        for seed, v in enumerate(values):
            records.append(
                {
                    "scenario": scenario,
                    "n_strong": n_strong,
                    "n_weak": 20,
                    "seed": seed,
                    "model": model,
                    "name": MODEL_NAMES[model],
                    "evaluated_on": "test set",
                    "dsc": v,
                    "dsc_tp": v,
                    "f1": v,
                    "recall": v,
                    "precision": v,
                }
            )
            run = {
                f"c{i}": {m: v + o for m in ("dsc", "dsc_tp", "f1", "recall", "precision")}
                | {"gt_volume_ml": 1.0, "pred_volume_ml": 1.0}
                for i, o in enumerate(OFFSETS)
            }
            vol = (free or {}).get(model, 0.0)
            run["empty"] = {"dsc": float(vol == 0), "gt_volume_ml": 0.0, "pred_volume_ml": vol}
            cases[(scenario, seed, model)] = run
    return records, cases


def _rows(dsc: dict[str, list[float]], **kw) -> list[dict]:
    return aggregate(*_runs(dsc, **kw))


def test_goal_check_met_and_not_met():
    met = _rows(
        {
            "baseline": [0.40, 0.42, 0.38],
            "ignore": [0.45, 0.5, 0.4],
            "so": [0.6, 0.62, 0.58],
            "do": [0.7, 0.72, 0.71],
            "upper": [0.72, 0.74, 0.73],
        }
    )
    g = goal_check(met, "scarce")
    assert g["best_student"]["model"] == "do" and g["met"] is True and g["question_real"] is True
    assert g["checks"]["5 DSC points above the baseline"]["value"] == pytest.approx(31.0)
    assert g["gap"] == pytest.approx(33.0) and g["upper_ratio"] == pytest.approx(0.71 / 0.73)
    assert "Overall: **met**" in goal_text(g)

    close = _rows({"baseline": [0.68], "ignore": [0.75], "so": [0.72], "upper": [0.8]})
    g = goal_check(close, "scarce")
    assert g["met"] is False and g["question_real"] is True  # upper - baseline = +12
    assert g["checks"]["5 DSC points above the baseline"]["ok"] is False  # +4 points
    assert g["checks"]["above the ignore-label answer"]["ok"] is False
    assert g["warnings"] == [] and "Caution" not in goal_text(g)

    saturated = goal_check(
        _rows({"baseline": [0.70], "ignore": [0.1], "so": [0.71], "upper": [0.75]}), "scarce"
    )
    assert saturated["question_real"] is False and "asks no question here" in goal_text(saturated)

    untrained = goal_check(_rows({"baseline": [0.3], "so": [0.5], "upper": [0.1]}), "scarce")
    assert len(untrained["warnings"]) == 1 and "did not converge" in goal_text(untrained)

    partial = goal_check(_rows({"so": [0.5]}), "scarce")
    assert partial["met"] is False and "no baseline in this benchmark" in goal_text(partial)
    no_ignore = goal_check(_rows({"baseline": [0.4], "so": [0.6], "upper": [0.7]}), "scarce")
    assert no_ignore["met"] is True and list(no_ignore["checks"]) == [
        "5 DSC points above the baseline"
    ]
    assert goal_check(_rows({"baseline": [0.5]}), "scarce")["best_student"] is None


def test_a_tumour_free_case_cannot_carry_a_mean_or_a_comparison():
    """The audit's case: DO predicts nothing on the one tumour-free test case (DSC 1 by convention) and the
    others a speck (DSC 0). Tumour-case means and the paired test must not move; the speck is counted apart."""
    from nnunet_teacher_student.experiments.benchmark_report import paired_stats

    dsc = {"so": [0.6, 0.6], "do": [0.6, 0.6]}
    records, cases = _runs(dsc, free={"so": 0.002})
    rows = aggregate(records, cases)
    so, do = (next(r for r in rows if r["model"] == m) for m in ("so", "do"))
    assert so["dsc"]["mean"] == pytest.approx(0.6) == do["dsc"]["mean"] and so["n_cases"] == 5
    assert so["tumour_free"] == {"n": 2, "with_fp": 2, "fp_ml_mean": pytest.approx(0.002)}
    assert do["tumour_free"]["with_fp"] == 0
    r = paired_stats(cases, "scarce", "do", "so")
    assert r["n"] == 5 and r["mean"] == pytest.approx(0.0) and r["p"] is None
    table = markdown_table(rows, ["so", "do"])
    assert "| 2 / 2 (0.002 mL) |" in table and "| 0 / 2 |" in table


def test_aggregate_is_case_level_and_orders_by_strong_count():
    recs_v, cases_v = _runs({"baseline": [0.3, 0.5], "so": [0.6, 0.7]}, "vast", 12)
    recs_s, cases_s = _runs({"baseline": [0.1, 0.2], "so": [0.4, 0.5]}, "scarce", 4)
    rows = aggregate(recs_v + recs_s, {**cases_v, **cases_s})
    assert [(r["scenario"], r["model"]) for r in rows] == [
        ("scarce", "baseline"),
        ("scarce", "so"),
        ("vast", "baseline"),
        ("vast", "so"),
    ]
    base = rows[0]
    assert (
        base["seeds"] == [0, 1]
        and base["dsc"]["mean"] == pytest.approx(0.15)
        and base["dsc"]["n"] == 5
    )
    # the CI is over the five seed-averaged cases (0.15 +/- 0.04), not over seeds
    assert 0.11 <= base["dsc"]["low"] < 0.15 < base["dsc"]["high"] <= 0.19
    assert base["seed_dsc"]["std"] == pytest.approx(math.sqrt(0.005))
    table = markdown_table(rows, ["so"])
    assert "Baseline" not in table and table.count("| SO student |") == 2
    assert "| scarce (4 / 20) | SO student | 2 | 5 | 45.0 [" in table and "| 7.1 | 0 / 2 |" in table


def test_settings_are_checked():
    s = default_settings("cpu")
    assert s.runs() == [
        ("scarce", 0),
        ("scarce", 1),
        ("scarce", 2),
        ("vast", 0),
        ("vast", 1),
        ("vast", 2),
    ]
    s.check()
    for change, message in (
        (dict(scenarios={"scarce": 24}), "must be in 1..23"),
        (dict(scenarios={"sc-arce": 4}), "letters and digits"),
        (dict(seeds=[1, 1]), "distinct"),
        (dict(models=["teacher", "nope"]), "unknown model"),
        (dict(n_test=0), "at least one test case"),
        (dict(strong_sites={"scarce": ["mars"]}), "strong sites"),
        (dict(strong_sites={"other": ["msd"]}), "need a scenario of this benchmark"),
        (dict(family="mars"), "unknown phantom family"),
        (dict(tumour_free=1.0), "tumour-free share"),
        (dict(model_epochs={"nope": 3}), "epochs-for"),
        (dict(model_epochs={"upper": 0}), "epochs-for"),
    ):
        bad = BenchmarkSettings(**{**s.__dict__, **change})
        with pytest.raises(InputError, match=message):
            bad.check()


def test_run_steps_cover_every_model_with_separate_datasets(tmp_path, monkeypatch):
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(k, str(tmp_path / k))
    s = quick_settings("cpu")
    cfgs = [run_config(s, tmp_path, k, sc, seed) for k, (sc, seed) in enumerate(s.runs())]
    ids = [
        cfg.dataset_ids[m]
        for cfg in cfgs
        for m in (
            "teacher",
            "so",
            "do",
            "baseline",
            "ignore",
            "upper",
            "upper_do",
            "so_unc",
            "do_unc",
            "do_ens",
            "do_r2",
        )
    ]
    ids += [cfg.strong for cfg in cfgs]
    # no two datasets share an id
    assert len(ids) == len(set(ids)) == len(s.runs()) * (len(DATASET_OFFSETS) + len(SECOND_OFFSETS))
    cfg = cfgs[0]
    assert cfg.dataset_ids["so_paper"] == cfg.dataset_ids["so"] and cfg.trainers[
        "so_paper"
    ].endswith("_Paper")
    steps = run_steps_for(s, cfg, "scarce")
    names = [st.name for st in steps]
    assert len(names) == len(set(names))  # timings are keyed by step name
    commands = "\n".join(st.command for st in steps)
    for model, trainer in ((k, m.trainer) for k, m in MODELS.items()):
        if model == "classical":
            assert "nnts pseudo-label --teacher classical" in commands
            continue
        assert f"-tr {trainer} " in commands, model
    assert (
        "--form ignore --weak" in commands
        and "--pseudo" not in commands.split("--form ignore")[1].split("\n")[0]
    )
    assert (
        f"--pseudo {cfg.weak_dir / 'labels'}" in commands
    )  # the upper bound: true masks of the weak cases
    # the DO student's ceiling: the DO form of the true masks, trained by the DO trainer
    assert f"--form do --weak {cfg.weak_dir} --pseudo {cfg.weak_dir / 'labels'}" in commands
    assert (
        cfg.trainers["upper_do"] == cfg.trainers["do"]
        and cfg.dataset_ids["upper_do"] != cfg.dataset_ids["do"]
    )
    assert sum(n.startswith("predict the test set") for n in names) == 13
    # the uncertainty-aware students: the same teacher's probabilities, its band from the strong cases, appended last
    unc = commands[commands.index("--save-probabilities") :]
    assert (
        "nnts calibrate-band --teacher-dataset" in unc
        and unc.count(f"--band-from {cfg.work_dir}") == 2
    )
    assert names.index("plan and preprocess (uncertainty-aware students)") > names.index(
        "evaluate DO student (test set)"
    )
    assert sum("pseudo-labels vs true weak masks" in n for n in names) == 5
    # the teacher ensemble: one fold per strong case (2 here), next to the box teacher's fold all in its model folder
    teacher_id = cfg.dataset_ids["teacher"]
    for f in ("all", 0, 1):
        assert f"nnUNetv2_train {teacher_id} 3d_small {f} -tr nnUNetTrainerBoxTeacher" in commands
    ens = [
        st.command
        for st in steps
        if st.name == "pseudo-label the weak set (Box teacher ensemble of folds (pseudo-labels))"
    ][0]
    assert " -f 0 1 " in ens and f"-o {cfg.work_dir / 'pseudo_labels_teacher_ens'}" in ens
    assert f"--pseudo {cfg.work_dir / 'pseudo_labels_teacher_ens'}" in commands
    # the noisy-student round: the DO student re-labels (against the teacher's labels) and a second DO student learns
    relabel = [st.command for st in steps if st.name.startswith("round 2: re-label")][0]
    assert (
        "nnUNetTrainerDOStudent__" in relabel
        and f"--previous {cfg.work_dir / 'pseudo_labels'}" in relabel
    )
    assert f"--pseudo {cfg.work_dir / 'pseudo_labels_do_relabel'}" in commands
    assert names.index(
        "train DO student, round 2 (noisy student) (nnUNetTrainerDOStudent)"
    ) > names.index(
        "evaluate DO student's re-labels (round 2 pseudo-labels) (pseudo-labels vs true weak masks)"
    )
    # every printed nnts command is one the CLI takes (the steps run these very argument lists)
    from nnunet_teacher_student.cli import build_parser

    nnts = [
        shlex.split(c)[1:]
        for st in [pool_step(s, tmp_path), *steps]
        for c in st.command.split(" && ")
        if c.startswith("nnts ")
    ]
    assert {a[0] for a in nnts} >= {
        "synth",
        "make-scenario",
        "make-teacher-dataset",
        "pseudo-label",
        "make-student-dataset",
        "predict",
        "evaluate",
    }
    for argv in nnts:
        build_parser().parse_args(argv)
    # a model's own epochs reach its training only; every test-set model trains fold all (all strong cases)
    own = BenchmarkSettings(
        **{**s.__dict__, "model_epochs": {"upper": 7}, "family": "copd", "tumour_free": 0.1}
    )
    own_cfg = run_config(own, tmp_path, 0, "scarce", 0)
    trains = {
        st.name: st.command
        for st in run_steps_for(own, own_cfg, "scarce")
        if st.name.startswith("train ")
    }
    upper = next(c for n, c in trains.items() if "Upper bound (true" in n)
    base = next(c for n, c in trains.items() if "Baseline" in n)
    assert "NNTS_EPOCHS=7 " in upper and f"NNTS_EPOCHS={own.epochs} " in base
    assert f"nnUNetv2_train {own_cfg.dataset_ids['baseline']} 3d_small all " in base
    pool = pool_step(own, tmp_path).command
    assert "--family copd" in pool and "--tumour-free 0.1" in pool
    # students without teachers asked for: the box teacher is still trained (the students need it)
    only = BenchmarkSettings(**{**s.__dict__, "models": ["so"]})
    names = [st.name for st in run_steps_for(only, cfg, "scarce")]
    assert any("box teacher" in n.lower() and n.startswith("train") for n in names)
    assert not any("point teacher" in n.lower() for n in names)


def _fake_run(
    out: Path, settings: BenchmarkSettings, dsc: dict[tuple[str, int, str], float]
) -> None:
    """Evaluations as ``nnts evaluate`` writes them: three tumour cases (the value, ± 0.01) and, for test-set
    models, one tumour-free case predicted empty."""
    from nnunet_teacher_student.evaluation.aggregate import summarize

    for (scenario, seed, model), value in dsc.items():
        folder = Layout(run_dir(out, scenario, seed)).evaluation(model)
        folder.mkdir(parents=True, exist_ok=True)
        cases = [
            {
                "case": f"c{i}",
                "dataset": "All",
                "gt_volume_ml": 1.0,
                "pred_volume_ml": 1.0,
                "n_gt_lesions": 1,
                **{m: value + o for m in ("dsc", "dsc_tp", "f1", "recall", "precision")},
            }
            for i, o in enumerate((-0.01, 0.0, 0.01))
        ]
        if model != "teacher":
            cases.append(
                {
                    "case": "free",
                    "dataset": "All",
                    "gt_volume_ml": 0.0,
                    "pred_volume_ml": 0.0,
                    "dsc": 1.0,
                }
            )
        (folder / "summary.json").write_text(
            json.dumps({"summary": summarize(cases), "cases": cases})
        )


def test_report_only_writes_tables_plot_and_csv(tmp_path):
    """``--report-only`` on finished (here: written by hand) evaluations: the whole report, no training."""
    s = BenchmarkSettings(
        {"scarce": 2, "vast": 3},
        [0, 1, 2],
        6,
        2,
        "tiny",
        0,
        ["teacher", "baseline", "so", "upper"],
        "cpu",
        1,
        2,
        1,
        True,
    )
    values = {}
    for sc, base in (("scarce", 0.2), ("vast", 0.4)):
        for seed in range(3):
            for model, plus in (("teacher", 0.4), ("baseline", 0.0), ("so", 0.2), ("upper", 0.25)):
                values[(sc, seed, model)] = base + plus + 0.01 * seed
    values[("vast", 2, "teacher")] = 0.0  # a teacher that found nothing (recall 0)
    _fake_run(tmp_path, s, values)
    records = load_run_results(tmp_path, s)
    assert len(records) == 24 and {
        r["evaluated_on"] for r in records if r["model"] == "teacher"
    } == {"weak set"}
    from dataclasses import asdict

    from nnunet_teacher_student.experiments.benchmark_run import SETTINGS_FILE

    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"settings": asdict(s)}))
    env = {
        **os.environ,
        "nnUNet_raw": str(tmp_path / "r"),
        "nnUNet_preprocessed": str(tmp_path / "p"),
        "nnUNet_results": str(tmp_path / "res"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnunet_teacher_student.cli",
            "benchmark",
            "-o",
            str(tmp_path),
            "--report-only",
            "-device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "report" / "report.md").read_text()
    assert (
        "| scarce (2 / 4) | SO student | 3 | 3 | 41.0 [40.0, 42.0]" in report
    )  # n = 3 tumour cases
    assert (
        "| 1.0 | 0 / 3 |" in report
    )  # seed spread, and the tumour-free case of each seed without FP
    assert "ratio to the upper bound: 0.89x" in report
    assert "5 DSC points above the baseline: met (+20.0 points)" in report
    assert "upper bound − baseline >= 10 points): real (+25.0 points)" in report
    assert "| scarce | SO student − Baseline (strong only) | 3 | +20.0" in report
    assert "Box teacher (pseudo-labels)" in report.split("## Teachers")[1]
    assert "**The box teacher failed** in run(s) vast:2: it found no lesion" in report
    png = tmp_path / "report" / "dsc_vs_strong.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    rows = (tmp_path / "report" / "results.csv").read_text().splitlines()
    assert len(rows) == 25 and rows[0].startswith("scenario,n_strong,n_weak,seed,model")
    per_case = (tmp_path / "report" / "per_case.csv").read_text().splitlines()
    assert len(per_case) == 1 + 24 * 3 + 18 and per_case[0].startswith(
        "scenario,seed,model,case,tumour_case"
    )
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    goal = summary["goals"][0]
    assert (
        goal["scenario"] == "scarce"
        and goal["met"] is True
        and goal["best_student"]["model"] == "so"
    )
    first = summary["rows"][
        :2
    ]  # the scarce scenario first, models in MODELS order (teachers first)
    assert [r["model"] for r in first] == ["teacher", "baseline"] and np.isclose(
        first[1]["dsc"]["mean"], 0.21
    )


@pytest.mark.benchmark
def test_quick_benchmark_end_to_end(tmp_path):
    """Every model of both scenarios and two seeds through nnU-Net's commands (minutes: not in the suite)."""
    env = {**os.environ, "nnUNet_def_n_proc": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnunet_teacher_student.cli",
            "benchmark",
            "--quick",
            "-o",
            str(tmp_path / "b"),
            "-device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = tmp_path / "b" / "report"
    summary = json.loads((report / "summary.json").read_text())
    assert len(summary["records"]) == 2 * 2 * len(MODELS)
    # the table is the case-level aggregate of per_case.csv: rebuild it and compare the DSC cells
    from nnunet_teacher_student.experiments.benchmark_report import read_per_case_csv

    cases = read_per_case_csv((report / "per_case.csv").read_text())
    assert {k[2] for k in cases} == set(MODELS) and {k[:2] for k in cases} == {
        (s, d) for s in ("scarce", "vast") for d in (0, 1)
    }
    rebuilt = aggregate(summary["records"], cases)
    text = (report / "report.md").read_text()
    for row in rebuilt:
        assert row["dsc"] == pytest.approx(
            next(
                r["dsc"]
                for r in summary["rows"]
                if r["scenario"] == row["scenario"] and r["model"] == row["model"]
            ),
            nan_ok=True,
        )
        assert f"| {row['name']} | 2 | {row['n_cases']} |" in text


def test_only_selects_runs_and_names_the_valid_ones():
    from nnunet_teacher_student.experiments.benchmark_run import only_runs

    runs = default_settings("cpu").runs()
    assert only_runs(None, runs) is None
    assert only_runs(["vast:2", "scarce:0"], runs) == {("vast", 2), ("scarce", 0)}
    with pytest.raises(
        InputError, match=r"--only vast:7: not a run of this benchmark \(runs: scarce:0"
    ):
        only_runs(["vast:7"], runs)


def test_cpu_defaults_are_the_demos_and_presets_choose_the_patch():
    """One measured CPU budget for demo and benchmark; ``--preset`` picks its own reduced configuration
    unless ``--patch``/``--features`` say otherwise; a GPU runs nnU-Net's 3d_fullres on the default preset."""
    import argparse

    from nnunet_teacher_student.commands import benchmark as cmd
    from nnunet_teacher_student.experiments.demo import demo_settings

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())

    def settings(*argv: str, device: str = "cpu"):
        return cmd.settings_from_args(parser.parse_args(["benchmark", *argv]), device)

    demo, bench = demo_settings(False, "cpu", 0, None, None), settings()
    assert (
        (bench.preset, bench.epochs, bench.iterations, bench.val_iterations)
        == (demo.preset, demo.epochs, demo.iterations, demo.val_iterations)
        == ("tiny", 10, 100, 3)
    )
    assert bench.small["patch_size"] == list(demo.small["patch_size"]) == [16, 32, 32]
    assert settings("--preset", "default").small["patch_size"] == [16, 48, 48]
    custom = settings("--preset", "default", "--patch", "8", "32", "32", "--features", "4", "8")
    assert custom.small["patch_size"] == [8, 32, 32] and custom.small["features"] == [4, 8]
    assert bench.strong_sites == {"scarce": ["msd"]}  # the scarce scenario's strong cases: one site
    mine = settings("--scenarios", "few=3@msd,nsclc", "many=10")
    assert mine.scenarios == {"few": 3, "many": 10} and mine.strong_sites == {
        "few": ["msd", "nsclc"]
    }
    for bad in ("few=3@", "few=x"):
        with pytest.raises(InputError, match="NAME=STRONG_COUNT"):
            settings("--scenarios", bad)
    gpu = settings(device="cuda")
    assert gpu.small is None and gpu.preset == "default" and gpu.epochs == 50
    json.dumps(bench.__dict__)  # the settings file stays JSON


def test_failed_teachers_are_the_runs_whose_teacher_found_nothing():
    records = [
        {"scenario": "scarce", "seed": 0, "model": "teacher", "recall": 0.8},
        {"scenario": "scarce", "seed": 2, "model": "teacher", "recall": 0.0},
        {"scenario": "scarce", "seed": 2, "model": "so", "recall": 0.0},  # a student: not a teacher
        {"scenario": "vast", "seed": 1, "model": "teacher", "recall": None},
    ]  # not evaluated: unknown
    assert failed_teachers(records) == ["scarce:2"]
    assert failed_teachers(records, "so") == ["scarce:2"]


@pytest.mark.benchmark
def test_gpu_benchmark_script_smoke_on_the_cpu(tmp_path):
    """``benchmarks/gpu_benchmark.sh`` at a tiny size on the CPU: the scarce run trains every model it lists
    and prints the table last (minutes: not in the suite)."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_benchmark.sh"
    env = {
        **os.environ,
        "DEVICE": "cpu",
        "PRESET": "tiny",
        "POOL": "6",
        "STRONG": "2",
        "TEST": "2",
        "EPOCHS": "1",
        "ITER": "2",
        "PYTHON": sys.executable,
    }
    proc = subprocess.run(
        ["bash", str(script), str(tmp_path / "g")],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert (
        lines[-8].startswith("model") and len(lines[-7:]) == 7
    )  # header, then teacher + 6 test-set models
    assert any(line.startswith("Box teacher") and "weak set" in line for line in lines[-7:])


def test_paired_statistics_average_seeds_per_case_and_per_seed_tables():
    from nnunet_teacher_student.experiments.benchmark_report import (
        paired_stats,
        paired_table,
        per_seed_table,
    )

    def run(values):
        return {f"c{i}": {"dsc": v, "gt_volume_ml": 1.0} for i, v in enumerate(values)}

    cases = {}
    for seed in (0, 1, 2):
        cases[("scarce", seed, "baseline")] = run([0.4] * 8)
        cases[("scarce", seed, "do")] = run(
            [0.4 + 0.1 * (seed + 1) if i else 0.3 for i in range(8)]
        )
    r = paired_stats(cases, "scarce", "do", "baseline")
    # n = 8 cases (not 24 case x seed pairs): case 0 is 0.1 worse, the others 0.2 better on average
    assert r["n"] == 8 and r["better"] == 7 and r["worse"] == 1
    assert r["diffs"]["c0"] == pytest.approx(-0.1) and r["diffs"]["c1"] == pytest.approx(0.2)
    assert r["per_seed"] == pytest.approx(
        {0: (7 * 0.1 - 0.1) / 8, 1: (7 * 0.2 - 0.1) / 8, 2: (7 * 0.3 - 0.1) / 8}
    )
    assert r["mean"] == pytest.approx((7 * 0.2 - 0.1) / 8) and r["low"] < r["mean"] < r["high"]
    assert 0 < r["p"] < 0.05
    assert paired_stats(cases, "scarce", "so", "baseline") is None
    table = paired_table(cases, ["scarce"])
    assert (
        "| scarce | DO student − Baseline (strong only) | 8 | +16.2 [" in table
        and "+7.5, +16.3, +25.0" in table
    )
    records = [
        {"scenario": "scarce", "n_strong": 4, "seed": s, "model": "do", "dsc": 0.5 + s / 10}
        for s in (0, 1)
    ]
    assert "| scarce | DO student | 50.0 | 60.0 |" in per_seed_table(records, ["do", "baseline"])


def test_per_case_csv_round_trips():
    from nnunet_teacher_student.experiments.benchmark_report import per_case_csv, read_per_case_csv

    records, cases = _runs({"so": [0.5, 0.6]}, free={"so": 0.01})
    back = read_per_case_csv(per_case_csv(cases))
    assert set(back) == set(cases)
    assert back[("scarce", 1, "so")]["c4"]["dsc"] == pytest.approx(0.64)
    assert back[("scarce", 0, "so")]["empty"]["pred_volume_ml"] == pytest.approx(0.01)
    assert aggregate(records, back) == aggregate(records, cases)


def _pool(root: Path, n: int) -> Path:
    """A minimal pool folder of the --pool-from layout (its files are never read as images here)."""
    (root / "dataset").mkdir(parents=True)
    (root / "dataset" / "dataset.json").write_text(json.dumps({"numTraining": n}))
    (root / "manifest.json").write_text(json.dumps({"cases": {}}))
    for sub in ("images", "labels"):
        (root / "test" / sub).mkdir(parents=True)
    return root


def test_a_pool_of_your_own_is_checked_linked_and_trained_as_configured(tmp_path, monkeypatch):
    from nnunet_teacher_student.experiments.benchmark import (
        POOL_ID,
        link_pool,
        pool_step,
        run_config,
        settings_defaults,
        settings_dict,
    )
    from nnunet_teacher_student.nnunet.workspace import prepare_run_folder

    pool = _pool(tmp_path / "pool_src", 12)
    s = default_settings("cpu")
    s.scenarios, s.strong_sites, s.pool, s.n_test = {"scarce": 4}, {}, 12, 3
    s.pool_from, s.configuration, s.small, s.lung_crop = str(pool), "2d", None, False
    s.check()
    missing = BenchmarkSettings(**{**s.__dict__, "pool_from": str(tmp_path)})
    with pytest.raises(InputError, match="not a benchmark pool .*dataset/dataset.json"):
        missing.check()

    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    out = tmp_path / "bench"
    with pytest.raises(InputError, match="12 pool case.*--pool says 30"):
        link_pool(pool, out / "pool", 30)
    step = pool_step(s, out)
    assert not step.done()
    step.run()
    assert step.done() and (out / "pool").resolve() == pool.resolve()
    assert (tmp_path / "raw" / f"Dataset{POOL_ID:03d}_BenchPool").resolve() == (
        pool / "dataset"
    ).resolve()
    cfg = run_config(s, out, 0, "scarce", 0)
    assert cfg.configuration == cfg.train_configuration == "2d" and not cfg.lung_crop
    assert cfg.test_images == out / "pool" / "test" / "images"

    # a folder written before these settings existed resumes: what its marker lacks counts as the default
    old = {
        k: v
        for k, v in settings_dict(default_settings("cpu")).items()
        if k not in ("pool_from", "configuration", "lung_crop")
    }
    marker = tmp_path / "old" / "nnts_benchmark.json"
    marker.parent.mkdir()
    marker.write_text(json.dumps({"settings": old}))
    prepare_run_folder(
        marker.parent,
        settings_dict(default_settings("cpu")),
        marker.name,
        "nnts benchmark",
        False,
        defaults=settings_defaults(),
    )
    with pytest.raises(InputError, match="differs in configuration"):
        prepare_run_folder(
            marker.parent,
            {**settings_dict(default_settings("cpu")), "configuration": "2d"},
            marker.name,
            "nnts benchmark",
            False,
            defaults=settings_defaults(),
        )
