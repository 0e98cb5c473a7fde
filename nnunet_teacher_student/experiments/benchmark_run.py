"""The benchmark folder (``nnts benchmark -o OUT``): its settings marker, which runs a process works on, and
the report written from the finished runs (``OUT/report/``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path


SETTINGS_FILE = "nnts_benchmark.json"


def only_runs(items: list[str] | None, runs: list[tuple[str, int]]) -> set[tuple[str, int]] | None:
    """``--only scarce:0 vast:2``: the runs this process works on (None: all). Separate processes may
    work on separate runs of one benchmark folder at the same time (each run has its own datasets)."""
    from ..core.errors import InputError

    if not items:
        return None
    out = set()
    for item in items:
        name, _, seed = item.partition(":")
        if not seed.lstrip("-").isdigit() or (name, int(seed)) not in runs:
            raise InputError(
                f"--only {item}: not a run of this benchmark (runs: "
                f"{' '.join(f'{a}:{b}' for a, b in runs)})"
            )
        out.add((name, int(seed)))
    return out


def stored_settings(out: Path):
    """The settings in a benchmark folder's marker (a setting it lacks: its default; the removed ``jitter``:
    refused unless 0)."""
    from ..experiments.benchmark import BenchmarkSettings, settings_defaults
    from ..formats.annotator import refuse_jitter

    stored = dict(json.loads((out / SETTINGS_FILE).read_text())["settings"])
    refuse_jitter(stored.pop("jitter", None), str(out / SETTINGS_FILE))
    return BenchmarkSettings(**{**settings_defaults(), **stored})


def _command(out: Path) -> str:
    """The command that started the benchmark (from its marker), else a pointer to the settings."""
    doc = json.loads((out / SETTINGS_FILE).read_text()) if (out / SETTINGS_FILE).is_file() else {}
    return (
        doc.get("command") or f"nnts benchmark -o {out} ...   # settings in {out / SETTINGS_FILE}"
    )


def _wall_seconds(out: Path) -> float:
    """Seconds of every finished step of every run (an interrupted and resumed benchmark included)."""
    total = 0.0
    for path in [out / "timings_pool.json", *sorted((out / "runs").glob("*/timings.json"))]:
        if path.is_file():
            total += sum(
                s.get("seconds") or 0.0 for s in json.loads(path.read_text()).get("steps", [])
            )
    return total


def write_benchmark_report(
    out: Path, settings, records: list[dict], seconds_now: float, exports: list[str]
) -> Path:
    """``OUT/report/``: report.md, results.csv (one row per run and model), summary.json, dsc_vs_strong.png."""
    from ..experiments.benchmark import load_case_results
    from ..core.files import write_text_atomic
    from .benchmark_report import aggregate, figure_dsc_vs_strong, goal_check

    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    cases = load_case_results(out, settings)
    rows = aggregate(records, cases)
    goals = [
        goal_check(rows, name, cases)
        for name in sorted(settings.scenarios, key=settings.scenarios.get)
    ]
    fig = figure_dsc_vs_strong(rows, report / "dsc_vs_strong.png")
    wall = _wall_seconds(out)
    write_result_files(report, settings, records, cases, rows, goals, wall)
    lines = [
        "# nnts benchmark: teacher-student vs plain nnU-Net on "
        + (f"the pool of `{settings.pool_from}`" if settings.pool_from else "phantoms"),
        "",
        benchmark_intro(settings, wall),
        "",
        *result_sections(settings, records, cases, rows, goals),
        *teacher_guard_lines(out, settings, records),
    ]
    if fig:
        lines += [
            "## DSC against the number of strong cases",
            "",
            "![DSC vs strong cases](dsc_vs_strong.png)",
            "",
        ]
    lines += incomplete_lines(settings, records)
    lines += reading_lines(settings, records, goals)
    lines += ["## Reproduce", "", "```", _command(out), *exports, "```", ""]
    write_text_atomic("\n".join(lines), report / "report.md")
    return report / "report.md"


def write_result_files(
    report: Path,
    settings,
    records: list[dict],
    cases: dict,
    rows: list[dict],
    goals: list[dict],
    wall: float,
) -> None:
    """results.csv (one row per run and model), per_case.csv and summary.json."""
    from ..core.files import write_text_atomic
    from .benchmark_report import csv_text, per_case_csv

    write_text_atomic(csv_text(records), report / "results.csv")
    write_text_atomic(per_case_csv(cases), report / "per_case.csv")
    write_text_atomic(
        json.dumps(
            {
                "settings": asdict(settings),
                "rows": rows,
                "goals": goals,
                "records": records,
                "wall_seconds_steps": wall,
            },
            indent=1,
            default=str,
        ),
        report / "summary.json",
    )


def benchmark_intro(s, wall: float) -> str:
    """The paragraph on what ran: scenarios, seeds, test cases, budget, configuration, wall time."""
    return (
        f"Scenarios (strong cases of a pool of {s.pool}; the rest are weak, boxes: "
        f"{'annotator ' + repr(s.annotator) if s.annotator else 'the default annotator model'}): "
        + ", ".join(f"**{k}** {v} strong / {s.pool - v} weak" for k, v in s.scenarios.items())
        + f". Seeds {s.seeds} (which pool cases are strong, the box noise, and training: `NNTS_SEED`). "
        "Box teachers train on fold `all` and pass the teacher guard (retrained with the next seed if not; "
        "see each run's `nnts_guard.json`); the classical rule needs no training. "
        f"The same {s.n_test} held-out test cases for every model ("
        + (
            "the pool's own test folder"
            if s.pool_from
            else f"{s.preset} phantom preset, data seed {s.data_seed}"
        )
        + f"). Budget per model: {s.epochs} epoch(s) x {s.iterations} iterations "
        f"({s.val_iterations} validation iterations), configuration "
        f"`{s.small['name'] if s.small else s.configuration}`"
        + (
            f" (patch {s.small['patch_size']}, features {s.small['features']}, batch {s.small['batch_size']})"
            if s.small
            else ""
        )
        + f", fold {s.folds}, device {s.device}, {'no ' if s.no_mirroring else ''}mirroring. "
        f"Wall time of all steps: {wall / 60:.1f} min."
    )


def result_sections(
    s, records: list[dict], cases: dict, rows: list[dict], goals: list[dict]
) -> list[str]:
    """How to read the cells, the goal, the test-set tables, the paired comparisons, the teachers' table."""
    from ..experiments.benchmark import TEACHERS, TEST_MODELS
    from .benchmark_report import (
        goal_text,
        markdown_table,
        paired_table,
        per_seed_table,
    )

    return [
        "Cells: case-level means over the **tumour cases** (each case's value averaged over the seeds first; "
        "DSC with the bootstrap 95 % CI over cases; n = cases); the spread of the per-run means across seeds "
        "beside; tumour-free cases apart: the (case, seed) pairs with any false positive and their mean "
        "false-positive volume. Baseline, ignore label and upper bound train `nnUNetTrainerNNTS` (nnU-Net's "
        "default trainer with our budget variables); the students train on the box teacher's pseudo-labels. "
        "Every table is rebuilt from `per_case.csv`.",
        "",
        "## Goal",
        "",
        "\n\n".join(goal_text(g) for g in goals),
        "",
        "## Test set: students and nnU-Net",
        "",
        markdown_table(rows, TEST_MODELS),
        "",
        "Per seed (test-set DSC, %):",
        "",
        per_seed_table(records, [m for m in TEST_MODELS if m in s.models]),
        "",
        "## Paired comparisons (case level)",
        "",
        "ΔDSC in points: the first model minus the second on the same tumour test case, each case's difference "
        "averaged over the seeds first; the CI is the bootstrap interval of the mean over cases, p the Wilcoxon "
        "signed-rank test over the cases (n = cases, not case x seed pairs); the per-seed means show the spread.",
        "",
        paired_table(cases, list(s.scenarios)),
        "",
        "## Teachers: pseudo-labels of the weak cases vs their true masks (cf. the paper's Tables 2 and 4)",
        "",
        markdown_table(rows, TEACHERS),
        "",
    ]


def teacher_guard_lines(out: Path, settings, records: list[dict]) -> list[str]:
    """Per run: the teachers' pseudo-label DSC and recall, and the box teacher's guard (none without teachers)."""
    from ..experiments.benchmark import TEACHERS, run_config
    from ..teacher.guard import load_guard
    from ..workflow.layout import model_folder
    from .benchmark_report import per_run_teacher_table

    if not any(r["model"] in TEACHERS for r in records):
        return []
    guards = {
        f"{sc}:{sd}": load_guard(model_folder(run_config(settings, out, k, sc, sd), "teacher"))
        for k, (sc, sd) in enumerate(settings.runs())
    }
    return [
        "Per run: pseudo-label DSC and lesion recall on the weak cases; the box teacher's guard (DSC on "
        "its strong cases with fresh boxes, per training seed; retrained below 80 % or with a box left "
        "empty over a real cross-section of its lesion).",
        "",
        per_run_teacher_table(records, guards),
        "",
    ]


def incomplete_lines(s, records: list[dict]) -> list[str]:
    """A warning naming the (run, model) results missing, if any."""
    missing = [
        (r, m)
        for r in s.runs()
        for m in s.models
        if not any(x["scenario"] == r[0] and x["seed"] == r[1] and x["model"] == m for x in records)
    ]
    if not missing:
        return []
    return [
        f"**Incomplete**: {len(missing)} (run, model) result(s) missing, e.g. {missing[:3]}; rerun the "
        "same command to resume.",
        "",
    ]


def reading_lines(s, records: list[dict], goals: list[dict]) -> list[str]:
    """How to read the results: failed teachers, the spread, the students compared and the best one."""
    from ..experiments.benchmark import STUDENTS
    from .benchmark_report import failed_teachers

    best = goals[0].get("best_student") or {}
    failed = failed_teachers(records)
    lines = ["## Reading it", ""]
    if failed:
        lines += [
            f"**The box teacher failed** in run(s) {', '.join(failed)}: it found no lesion on the weak set, "
            "so those runs' students learned from empty pseudo-labels and pull the student means down: read "
            "their figures as the cost of a failed teacher. A fresh output folder trains new teachers.",
            "",
        ]
    return lines + [
        "Phantom tumours, tiny budgets and few test cases: differences of a few DSC points are within the "
        "seed-to-seed spread shown by the confidence intervals. "
        f"Students compared: {', '.join(m for m in STUDENTS if m in s.models)}"
        + (f"; the best was {best.get('name')}." if best else "."),
        "",
    ]
