"""``nnts pipeline CONFIG``: the teacher-student method on your converted data, step by step.

The TOML config names the strong nnU-Net dataset, the weak set, the new dataset ids, trainers,
folds, device and budgets (see ``examples/pipeline.toml``). Each step prints its equivalent
nnU-Net / ``nnts`` command and is skipped when its outputs exist and are complete, so an interrupted
pipeline resumes where it stopped. A step whose outputs were made from other inputs (files of the strong
dataset, weak set, manifest or test set) or other settings is stale and redone, with every step after it;
``--from STEP`` / ``--force STEP`` redo steps on request. ``--dry-run`` lists the steps and their state
(done, stale, to do) without running them; the checks of :mod:`..workflow.preflight` run first, also in a dry run.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def check_inputs(args: argparse.Namespace, cfg) -> None:
    """nnU-Net's folders set, the weak set a weak set, every path the config names there."""
    from ..core.errors import InputError
    from ..formats.weak_set import is_weak_set
    from ..nnunet.workspace import NNUNET_DIRS

    missing = [k for k in NNUNET_DIRS if not os.environ.get(k)]
    if missing:
        raise InputError(
            f'{args.config}: {", ".join(missing)} not set: export them (eval "$(nnts env)") or '
            "name them in the config's [paths] section"
        )
    if not is_weak_set(cfg.weak_dir):
        raise InputError(
            f"{cfg.weak_dir}: not a weak set (needs images/ and boxes/; see nnts convert)"
        )
    for name in ("test_images", "test_labels", "manifest", "weak_labels"):
        value = getattr(cfg, name)
        if value is not None and not value.exists():
            raise InputError(f"{args.config}: {name} {value} does not exist")
    if cfg.test_labels and not cfg.test_images:
        raise InputError(f"{args.config}: test_labels given without test_images")


def print_plan(steps, timings_file: Path, exports: list[str], force: set[int]) -> None:
    """``--dry-run``: the nnU-Net folders and every step with its state and command."""
    from ..workflow.steps import step_states

    print("\n".join(exports))
    for k, (step, state) in enumerate(zip(steps, step_states(steps, timings_file)), 1):
        state = (
            "to do (forced)"
            if k - 1 in force
            else "stale: outputs made from other inputs or settings, to redo"
            if state == "stale"
            else state
        )
        print(f"[stage {k}/{len(steps)}] {step.name}: {state}")
        print(f"  $ {step.command}")


def write_report(args: argparse.Namespace, cfg, layout, steps, timings, exports) -> Path:
    """The run's report (tables and figures) from its result files."""
    from ..reporting.run_report import write_run_report
    from ..reporting.settings import ReportSettings

    print("[report] tables and figures", flush=True)
    intro = (
        f"`nnts pipeline {args.config}`: strong dataset {cfg.strong}, weak set `{cfg.weak_dir}`, device "
        f"{cfg.device}, configuration `{cfg.train_configuration}`, folds {list(cfg.folds)}, trainers "
        f"{cfg.trainers}."
    )
    report_settings = ReportSettings(
        title="nnts pipeline report",
        intro=intro,
        run_settings={"config": str(Path(args.config).resolve()), "pipeline": cfg.summary()},
        commands=tuple(s.command for s in steps),
        continue_lines=tuple(exports),
        caveat=_caveat(cfg),
    )
    return write_run_report(cfg, layout, report_settings, timings)


def run(args: argparse.Namespace) -> int:
    from ..workflow.config import load_config
    from ..workflow.method import method_steps
    from ..workflow.layout import Layout
    from ..workflow.preflight import preflight
    from ..workflow.processes import calm_openmp, stop_children_on_sigterm
    from ..workflow.steps import run_steps
    from ..nnunet.plans import ensure_ext_trainer_path
    from ..nnunet.workspace import export_lines

    calm_openmp()
    cfg, folders = load_config(args.config)
    os.environ.update(folders)
    check_inputs(args, cfg)
    print(
        f"nnts pipeline: {preflight(cfg)}", flush=True
    )  # before anything trains, also in --dry-run
    ensure_ext_trainer_path()
    layout = Layout(cfg.work_dir)
    steps = method_steps(cfg, layout)
    exports = export_lines()
    force = forced_steps(steps, args.from_step, args.force)
    if args.dry_run:
        print_plan(steps, layout.timings, exports, force)
        return 0
    stop_children_on_sigterm()
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    print("nnts pipeline: nnU-Net folders (to run steps by hand):")
    print("\n".join(f"  {line}" for line in exports), flush=True)
    t0 = time.perf_counter()
    timings = run_steps(steps, layout.timings, force=force)
    if not args.no_report:
        print(f"nnts pipeline: report: {write_report(args, cfg, layout, steps, timings, exports)}")
    print(
        f"nnts pipeline: done in {(time.perf_counter() - t0) / 60:.1f} min; outputs in {cfg.work_dir} and "
        "nnU-Net's folders"
    )
    return 0


def forced_steps(steps, from_step: str | None, force: list[str] | None) -> set[int]:
    """0-based indices of the steps to redo: ``--from STEP`` (it and every later step) and each ``--force STEP``;
    a step is its number as listed (1-based) or a unique part of its name."""
    from ..core.errors import InputError

    def index(key: str) -> int:
        if key.isdigit() and 1 <= int(key) <= len(steps):
            return int(key) - 1
        hits = [k for k, s in enumerate(steps) if key.lower() in s.name.lower()]
        if len(hits) != 1:
            names = "; ".join(f"{k + 1}: {s.name}" for k, s in enumerate(steps))
            raise InputError(
                f"step {key!r}: {'no' if not hits else 'more than one'} step matches (steps: {names})"
            )
        return hits[0]

    out = set(range(index(from_step), len(steps))) if from_step else set()
    return out | {index(k) for k in force or []}


def _caveat(cfg) -> str:
    """What the pipeline's numbers are: one run of these settings."""
    budget = cfg.budget.env() or {"budget": "nnU-Net's default (1000 epochs x 250 iterations)"}
    return (
        f"One run: folds {list(cfg.folds)}, seed {cfg.seed}, training budget {budget}. Differences between models "
        "smaller than the case-to-case spread, or on few test cases, are not evidence either way; several "
        "folds/seeds tell how much a difference varies."
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pipeline",
        help="the whole method on your data, from a TOML config (resumable)",
        description="Run the teacher-student method on converted data: teacher dataset, plan and preprocess, box "
        "teacher, pseudo-labels with QC, SO/DO student and strong-only baseline datasets, plan, train, "
        "predict and evaluate the test set, report. Each step prints its equivalent nnU-Net/nnts "
        "command and is skipped when its outputs are complete (an interrupted run resumes). "
        "Config format: examples/pipeline.toml.",
    )
    p.add_argument("config", type=Path, help="pipeline TOML file")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the steps, their commands and state; run nothing",
    )
    p.add_argument("--no-report", action="store_true", help="skip report.md and the figures")
    p.add_argument(
        "--from",
        dest="from_step",
        metavar="STEP",
        help="redo this step and every later one (its number as --dry-run lists it, or part of its name)",
    )
    p.add_argument(
        "--force", nargs="+", metavar="STEP", help="redo these steps (numbers or parts of names)"
    )
    p.set_defaults(func=run)
