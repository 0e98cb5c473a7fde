"""The ``nnts`` console command. Each subcommand lives in ``commands/<name>.py`` and defines
``register(subparsers)``, which adds its parser and sets ``func`` (returns an exit code)."""
from __future__ import annotations

import argparse
import importlib
import sys

from .geometry import InputError

COMMAND_MODULES = [
    "env", "synth", "boxes", "convert", "make_teacher_dataset", "teacher_predict", "pseudo_label",
    "make_scenario", "make_student_dataset", "lungs", "predict", "evaluate", "benchmark", "demo", "pipeline",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnts", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module_name = f"{__package__}.commands.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:  # command not implemented yet
            if e.name == module_name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"nnts {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
