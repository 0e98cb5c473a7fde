"""One module per ``nnts`` subcommand; each defines ``register(subparsers)``. Shared option sets live here."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.defaults import BOX_MARGIN_MM

ANNOTATOR_HELP = (
    "box noise model: default (edges +/-10 %% of the box extent, 0.5-5 mm, 25 %% exact), exact, "
    "or key=value pairs (edge_fraction, floor_mm, cap_mm, exact_share, skip_ends, voxels)"
)
# formats.boxes.BoxMode, not imported here to keep `nnts` start-up light
BOX_MODES = ("lesion", "component2d", "lesion3d")
BOX_MARGIN_HELP = "in-plane dilation of the boxes that bounds the mask (default 2 mm)"


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


def add_box_margin_argument(p: argparse.ArgumentParser, help: str = BOX_MARGIN_HELP) -> None:
    """``--box-margin-mm``: how far (in-plane) the teacher's mask may reach beyond the boxes."""
    p.add_argument("--box-margin-mm", type=float, default=BOX_MARGIN_MM, help=help)


def add_teacher_mode_argument(p: argparse.ArgumentParser) -> None:
    """``--mode``: a box or a point teacher (default: read from the model folder's trainer name)."""
    p.add_argument(
        "--mode",
        choices=("box", "point"),
        default=None,
        help="teacher kind (default: from the trainer name in the model folder)",
    )


def add_part_arguments(
    p: argparse.ArgumentParser, cases: str = "the cases", does: str = "does"
) -> None:
    """``--num-parts`` and ``--part-id``: the part of ``cases`` this run ``does`` (:func:`shard_from_args`)."""
    p.add_argument(
        "--num-parts",
        type=int,
        default=None,
        help=f"split {cases} into this many parts (default: the SLURM array's task count, else 1)",
    )
    p.add_argument(
        "--part-id",
        type=int,
        default=None,
        help=f"which part this run {does}: 0..num-parts-1 (default: the SLURM array task, else 0)",
    )


def shard_from_args(args: argparse.Namespace) -> tuple[int, int]:
    """``(num_parts, part_id)`` of :func:`add_part_arguments` (else the SLURM array's); says which part this
    run does when there are several."""
    from ..core.sharding import resolve_shard

    num_parts, part_id, where = resolve_shard(args.num_parts, args.part_id)
    if num_parts > 1:
        print(f"part {part_id} of {num_parts} ({where})", flush=True)
    return num_parts, part_id


def add_annotator_arguments(
    p: argparse.ArgumentParser, help: str = ANNOTATOR_HELP, metavar: str | None = "SPEC"
) -> None:
    """``--annotator`` (the boxes' noise model) and the removed ``--jitter`` it replaces (hidden, kept only
    to say so: :func:`annotator_from_args`)."""
    p.add_argument("--jitter", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--annotator", default=None, metavar=metavar, help=help)


def add_box_drawing_arguments(
    p: argparse.ArgumentParser,
    seed_help: str | None,
    manifest_help: str,
    manifest_type: type | None = None,
) -> None:
    """``--seed``, ``--box-mode`` and ``--manifest`` of the commands that draw boxes from masks."""
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--box-mode", choices=BOX_MODES, default="lesion")
    p.add_argument("--manifest", type=manifest_type, help=manifest_help)


def check_removed(args: argparse.Namespace) -> None:
    """An :class:`InputError` for a removed flag that was given with a value that changes results."""
    from ..formats.annotator import refuse_jitter

    refuse_jitter(getattr(args, "jitter", None), "--jitter")


def annotator_from_args(args: argparse.Namespace) -> str | None:
    """``--annotator``, after :func:`check_removed` (the removed ``--jitter`` it replaces)."""
    check_removed(args)
    return args.annotator


def box_drawing_settings(args: argparse.Namespace) -> dict:
    """The settings of :func:`add_box_drawing_arguments` and :func:`add_annotator_arguments`, by name."""
    return dict(
        seed=args.seed,
        box_mode=args.box_mode,
        manifest=args.manifest,
        annotator=annotator_from_args(args),
    )
