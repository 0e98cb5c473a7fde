"""``nnts env``: the export lines that make nnU-Net's own commands find our trainers."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..nnunet.workspace import env_export_lines


def run(args: argparse.Namespace) -> int:
    print("\n".join(env_export_lines(args.base)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "env",
        help="print the export lines for nnU-Net's folders and our trainers",
        description="Print shell export lines: nnUNet_raw/_preprocessed/_results (only those "
        "not set yet, under --base) and nnUNet_extTrainer pointing at our trainers. "
        'Use: eval "$(nnts env)"',
    )
    p.add_argument(
        "--base",
        type=Path,
        default=None,
        help="folder for the nnU-Net data folders that are not set yet (default: ./nnUNet_data)",
    )
    p.set_defaults(func=run)
