"""``nnts env``: the export lines that make nnU-Net's own commands find our trainers."""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from ..nnunet.plans import ext_trainer_dir

NNUNET_DIRS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def export_lines(base: Path | None = None) -> list[str]:
    """``export`` lines: nnU-Net folders under ``base`` where unset, and nnUNet_extTrainer."""
    base = Path(base or Path.cwd() / "nnUNet_data").resolve()
    lines = []
    for name in NNUNET_DIRS:
        if not os.environ.get(name):
            lines.append(f"export {name}={shlex.quote(str(base / name))}")
    ext = str(ext_trainer_dir())
    current = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    value = os.pathsep.join(current + [ext]) if ext not in current else os.pathsep.join(current)
    lines.append(f"export nnUNet_extTrainer={shlex.quote(value)}")
    return lines


def run(args: argparse.Namespace) -> int:
    print("\n".join(export_lines(args.base)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("env", help="print the export lines for nnU-Net's folders and our trainers",
                       description="Print shell export lines: nnUNet_raw/_preprocessed/_results (only those "
                                   "not set yet, under --base) and nnUNet_extTrainer pointing at our trainers. "
                                   "Use: eval \"$(nnts env)\"")
    p.add_argument("--base", type=Path, default=None,
                   help="folder for the nnU-Net data folders that are not set yet (default: ./nnUNet_data)")
    p.set_defaults(func=run)
