"""The ``nnts`` console command. Each subcommand lives in ``commands/<name>.py`` and defines
``register(subparsers)``, which adds its parser and sets ``func`` (returns an exit code)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from .core.env import DEBUG
from .core.errors import InputError

COMMAND_MODULES = [
    "env",
    "synth",
    "convert",
    "make_teacher_dataset",
    "teacher_predict",
    "pseudo_label",
    "calibrate_band",
    "make_scenario",
    "make_student_dataset",
    "lungs",
    "predict",
    "evaluate",
    "demo",
    "pipeline",
    "benchmark",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnts",
        description="Teacher-student lung tumour segmentation from mixed supervision (an nnU-Net v2 plugin).",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, print the full traceback too (for bug reports; also NNTS_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get(DEBUG, "") not in ("", "0")
    try:
        return int(args.func(args) or 0)
    except (
        InputError,
        OSError,
    ) as e:  # bad input, a full disk, a missing permission: the message says which file
        if debug:
            traceback.print_exc()
        print(f"nnts {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nnts {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
