"""One module per ``nnts`` subcommand; each defines ``register(subparsers)``. Shared option sets live here."""

from __future__ import annotations

import argparse
from pathlib import Path


def fold(value: str) -> int | str:
    """An nnU-Net fold: an integer or ``all``."""
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"fold must be an integer or 'all', got {value!r}"
        ) from None


def add_model_arguments(
    p: argparse.ArgumentParser,
    what: str = "trained model",
    default_folds: list | None = None,
    folds_help: str = "folds to ensemble (default 0)",
    model_required: bool = True,
    tta: bool = True,
) -> None:
    """``-m``, ``-f``, ``-chk``, ``-device`` and the test-time mirroring switch as nnU-Net's predict spells them;
    ``args.tta`` is on unless ``--disable-tta`` (``tta=False``: off unless ``--tta``, the benchmarks' default)."""
    p.add_argument(
        "-m",
        "--model",
        required=model_required,
        type=Path,
        help=f"{what} folder (.../TRAINER__PLANS__CONFIG with plans.json and fold_X/)",
    )
    p.add_argument("-f", "--folds", nargs="+", type=fold, default=default_folds, help=folds_help)
    p.add_argument(
        "-chk", "--checkpoint", default="checkpoint_final.pth", help="checkpoint file name"
    )
    p.add_argument(
        "-device",
        "--device",
        choices=("cpu", "cuda", "mps", "auto"),
        default="auto",
        help="auto: cuda if available, else cpu (default)",
    )
    if tta:
        p.add_argument(
            "--disable-tta",
            dest="tta",
            action="store_false",
            help="no test-time mirroring (faster)",
        )
    else:
        p.add_argument("--tta", action="store_true", help="test-time mirroring (off by default)")


def add_phantom_run_arguments(p: argparse.ArgumentParser) -> None:
    """``--preset`` and ``-device`` of the phantom experiments (``nnts demo``, ``nnts benchmark``)."""
    from ..experiments.presets import CPU_SMALL

    p.add_argument(
        "--preset",
        choices=tuple(CPU_SMALL),
        default=None,
        help="phantom size preset (CPU default: tiny, with a 16x32x32 patch; default: larger phantoms, "
        "a 16x48x48 patch, about 3x slower per iteration; GPU default: default)",
    )
    p.add_argument(
        "-device",
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: cuda if available, else cpu (default)",
    )


def print_next_steps(dataset_id: int, fold: str, trainer: str) -> None:
    """The nnU-Net commands that plan and train a dataset just written (``make-*-dataset``)."""
    print(
        f"next: nnUNetv2_plan_and_preprocess -d {dataset_id} -c 3d_fullres && "
        f"nnUNetv2_train {dataset_id} 3d_fullres {fold} -tr {trainer}"
    )


def add_removed_jitter(p: argparse.ArgumentParser) -> None:
    """``--jitter``, removed: hidden, kept only to say what replaces it (:func:`check_removed`)."""
    p.add_argument("--jitter", type=int, default=None, help=argparse.SUPPRESS)


def check_removed(args: argparse.Namespace) -> None:
    """An :class:`InputError` for a removed flag that was given with a value that changes results."""
    from ..formats.annotator import refuse_jitter

    refuse_jitter(getattr(args, "jitter", None), "--jitter")
