"""``nnts pipeline CONFIG``: the teacher-student method on your converted data, step by step.

The TOML config names the strong nnU-Net dataset, the weak set, the new dataset ids, trainers,
folds, device and budgets (see ``examples/pipeline.toml``). Each step prints its equivalent
nnU-Net / ``nnts`` command and is skipped when its outputs exist and are complete, so an interrupted
pipeline resumes where it stopped. ``--dry-run`` lists the steps and their state without running them.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from ..geometry import InputError
    from ..orchestration import Layout, calm_openmp, load_config, method_steps, run_steps, stop_children_on_sigterm
    from ..plans import ensure_ext_trainer_path
    from ..workspace import NNUNET_DIRS, export_lines
    from ..weak_set import is_weak_set

    calm_openmp()
    cfg, folders = load_config(args.config)
    os.environ.update(folders)
    missing = [k for k in NNUNET_DIRS if not os.environ.get(k)]
    if missing:
        raise InputError(f"{args.config}: {', '.join(missing)} not set: export them (eval \"$(nnts env)\") or "
                         "name them in the config's [paths] section")
    if not is_weak_set(cfg.weak_dir):
        raise InputError(f"{cfg.weak_dir}: not a weak set (needs images/ and boxes/; see nnts convert)")
    for name in ("test_images", "test_labels", "manifest", "weak_labels"):
        value = getattr(cfg, name)
        if value is not None and not value.exists():
            raise InputError(f"{args.config}: {name} {value} does not exist")
    if cfg.test_labels and not cfg.test_images:
        raise InputError(f"{args.config}: test_labels given without test_images")
    from ..preflight import preflight

    print(f"nnts pipeline: {preflight(cfg)}", flush=True)   # before anything trains, also in --dry-run
    ensure_ext_trainer_path()
    layout = Layout(cfg.work_dir)
    steps = method_steps(cfg, layout)
    exports = export_lines()
    if args.dry_run:
        print("\n".join(exports))
        for k, step in enumerate(steps, 1):
            print(f"[stage {k}/{len(steps)}] {step.name}: {'done' if step.done() else 'to do'}")
            print(f"  $ {step.command}")
        return 0
    stop_children_on_sigterm()
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    print("nnts pipeline: nnU-Net folders (to run steps by hand):")
    print("\n".join(f"  {line}" for line in exports), flush=True)
    t0 = time.perf_counter()
    timings = run_steps(steps, layout.timings)
    if not args.no_report:
        from ..report import write_run_report

        print("[report] tables and figures", flush=True)
        intro = (f"`nnts pipeline {args.config}`: strong dataset {cfg.strong}, weak set `{cfg.weak_dir}`, device "
                 f"{cfg.device}, configuration `{cfg.train_configuration}`, folds {list(cfg.folds)}, trainers "
                 f"{cfg.trainers}.")
        report = write_run_report(cfg, layout, title="nnts pipeline report", intro=intro,
                                  settings={"config": str(Path(args.config).resolve()), "pipeline": cfg.summary()},
                                  timings=timings, commands=[s.command for s in steps], continue_lines=exports,
                                  caveat=_caveat(cfg))
        print(f"nnts pipeline: report: {report}")
    print(f"nnts pipeline: done in {(time.perf_counter() - t0) / 60:.1f} min; outputs in {cfg.work_dir} and "
          "nnU-Net's folders")
    return 0


def _caveat(cfg) -> str:
    """What the pipeline's numbers are: one run of these settings."""
    budget = cfg.budget.env() or {"budget": "nnU-Net's default (1000 epochs x 250 iterations)"}
    return (f"One run: folds {list(cfg.folds)}, seed {cfg.seed}, training budget {budget}. Differences between models "
            "smaller than the case-to-case spread, or on few test cases, are not evidence either way; several "
            "folds/seeds tell how much a difference varies.")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pipeline", help="the whole method on your data, from a TOML config (resumable)",
        description="Run the teacher-student method on converted data: teacher dataset, plan and preprocess, box "
                    "teacher, pseudo-labels with QC, SO/DO student and strong-only baseline datasets, plan, train, "
                    "predict and evaluate the test set, report. Each step prints its equivalent nnU-Net/nnts "
                    "command and is skipped when its outputs are complete (an interrupted run resumes). "
                    "Config format: examples/pipeline.toml.")
    p.add_argument("config", type=Path, help="pipeline TOML file")
    p.add_argument("--dry-run", action="store_true", help="list the steps, their commands and state; run nothing")
    p.add_argument("--no-report", action="store_true", help="skip report.md and the figures")
    p.set_defaults(func=run)

