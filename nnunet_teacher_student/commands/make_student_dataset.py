"""``nnts make-student-dataset``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from . import print_next_steps

if TYPE_CHECKING:
    from ..students.settings import StudentDatasetSettings


def student_dataset_settings_from_args(args: argparse.Namespace) -> StudentDatasetSettings:
    """The student dataset settings of an ``nnts make-student-dataset`` command line (reads --band-from)."""
    from ..students.settings import StudentDatasetSettings
    from ..teacher.calibration import check_band, read_band

    band = (
        read_band(args.band_from)
        if args.band_from
        else check_band(*args.uncertain_band)
        if args.uncertain_band
        else None
    )
    return StudentDatasetSettings(
        args.strong,
        args.d,
        args.name,
        form=args.form,
        weak_dir=args.weak,
        pseudo_dir=args.pseudo,
        manifest=args.manifest,
        n_folds=args.folds,
        seed=args.seed,
        size_balance=args.size_balance,
        crop=args.crop,
        lung_weights=args.lungmask_weights,
        crop_margin_mm=args.crop_margin_mm,
        overwrite=args.overwrite,
        uncertain_band=band,
    )


def run(args: argparse.Namespace) -> int:
    from ..students.student_dataset import make_student_dataset

    out = make_student_dataset(student_dataset_settings_from_args(args))
    trainer = {
        "do": "nnUNetTrainerDOStudent",
        "so": "nnUNetTrainerSOStudent",
        "ignore": "nnUNetTrainer",
    }[args.form]
    print(f"wrote {out}")
    print_next_steps(args.d, "0", trainer)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-student-dataset",
        help="strong + pseudo-labelled weak cases as a student dataset",
        description="Write an nnU-Net raw dataset for the SO or DO student from the strong dataset "
        "(true masks) and a weak set with its pseudo masks; without --weak/--pseudo, "
        "strong cases only (the baseline). --form ignore needs --weak only: weak cases "
        "are background outside their boxes and nnU-Net's ignore label inside (no "
        "teacher); --pseudo WEAK/labels (true masks) gives the upper bound. Writes "
        "splits_final.json with strong-only validation folds.",
    )
    p.add_argument("--strong", required=True, help="strong raw dataset id or folder name")
    p.add_argument("-d", type=int, required=True, help="id of the new dataset")
    p.add_argument("--name", required=True, help="name of the new dataset")
    p.add_argument(
        "--form",
        choices=("so", "do", "ignore"),
        default="so",
        help="so: tumour labels; do: box/tumour regions; ignore: boxes as nnU-Net's ignore label",
    )
    p.add_argument("--weak", help="weak set folder (images/, boxes/)")
    p.add_argument("--pseudo", help="folder of pseudo masks <case>.nii.gz from nnts pseudo-label")
    p.add_argument(
        "--manifest", help="manifest (patients for the folds; split=test cases are left out)"
    )
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--size-balance",
        action="store_true",
        help="upsample cases with rare tumour sizes in training",
    )
    p.add_argument(
        "--crop", choices=("lungs",), default=None, help="crop every case to its lungs (+ margin)"
    )
    p.add_argument("--crop-margin-mm", type=float, default=10.0)
    p.add_argument(
        "--lungmask-weights", help="lungmask R231 weights file (else the classical lung mask)"
    )
    band = p.add_mutually_exclusive_group()
    band.add_argument(
        "--uncertain-band",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="uncertainty-aware so/do form: inside the boxes, voxels whose teacher probability is in "
        "[LO, HI) get nnU-Net's ignore label (needs pseudo-label --save-probabilities)",
    )
    band.add_argument(
        "--band-from", metavar="FILE", help="the band from a file of nnts calibrate-band"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing dataset with this id/name"
    )
    p.set_defaults(func=run)
