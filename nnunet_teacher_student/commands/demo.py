"""``nnts demo``: the whole teacher-student method on synthetic phantoms, in one command (see
:mod:`..experiments.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..experiments.demo import DEFAULT_MINUTES, DemoRequest, run_demo
from . import add_phantom_run_arguments


def run(args: argparse.Namespace) -> int:
    return run_demo(
        DemoRequest(
            output=args.output,
            quick=args.quick,
            device=args.device,
            seed=args.seed,
            epochs=args.epochs,
            iterations=args.iterations,
            minutes=args.minutes,
            preset=args.preset,
            overwrite=args.overwrite,
        )
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the whole method on synthetic phantoms, with a report",
        description="Generate phantom data (few strong, more weak cases, a test set), plan and preprocess, train "
        "the box teacher, pseudo-label the weak set (with QC), build and train the SO and DO students "
        "and the strong-only baseline, predict and evaluate the test set, and write OUT/report/report.md "
        "with tables and figures. Default: about 20 minutes on a 2-core CPU (a GPU is used when present); "
        "--quick: a smoke run of a few minutes. Everything stays under OUT (its own nnU-Net folders); "
        "a rerun with the same settings resumes where it stopped.",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("nnts_demo"),
        help="output folder (default: ./nnts_demo)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke run (a few minutes): checks every step, measures nothing",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs per model (default: 10 on a CPU, 50 on a GPU)",
    )
    p.add_argument(
        "--minutes",
        "--budget",  # its earlier name
        type=float,
        default=None,
        metavar="MINUTES",
        help=f"scale the training epochs to about this many minutes in all (default run: "
        f"{DEFAULT_MINUTES:g}; an estimate, the report states the measured times)",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="training iterations per epoch (default: 100 on a CPU and on a GPU)",
    )
    p.add_argument("--seed", type=int, default=0, help="phantom and split seed (default 0)")
    add_phantom_run_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo run in OUT")
    p.set_defaults(func=run)
