"""``nnts make-teacher-dataset``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from . import add_removed_jitter, check_removed, print_next_steps

if TYPE_CHECKING:
    from ..teacher.settings import TeacherDatasetSettings


def teacher_dataset_settings_from_args(args: argparse.Namespace) -> TeacherDatasetSettings:
    """The teacher dataset settings of an ``nnts make-teacher-dataset`` command line."""
    from ..teacher.settings import TeacherDatasetSettings

    check_removed(args)
    return TeacherDatasetSettings(
        args.strong,
        args.d,
        args.name,
        seed=args.seed,
        box_mode=args.box_mode,
        weak_dir=args.weak,
        overwrite=args.overwrite,
        manifest=args.manifest,
        n_folds=args.folds,
        annotator=args.annotator,
    )


def run(args: argparse.Namespace) -> int:
    from ..nnunet.folds import load_manifest_cases
    from ..teacher.teacher_dataset import make_teacher_dataset

    n_test = sum(v.get("split") == "test" for v in load_manifest_cases(args.manifest).values())
    out = make_teacher_dataset(teacher_dataset_settings_from_args(args))
    print(f"wrote {out} (test cases excluded: {n_test}; folds: {out / 'splits_final.json'})")
    print_next_steps(args.d, "all", "nnUNetTrainerBoxTeacher")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-teacher-dataset",
        help="CT + box-mask teacher dataset from a strong dataset",
        description="Write an nnU-Net raw dataset with channels CT (_0000) and box mask (_0001, "
        "boxes derived from each case's own mask), and the weak cases in imagesWeak/.",
    )
    p.add_argument("--strong", required=True, help="strong raw dataset id or folder name")
    p.add_argument("-d", type=int, required=True, help="id of the new teacher dataset")
    p.add_argument("--name", default="Teacher", help="name of the new dataset (default: Teacher)")
    p.add_argument("--weak", help="weak set folder (images/, boxes/) to add as imagesWeak/")
    add_removed_jitter(p)
    p.add_argument(
        "--annotator",
        default=None,
        metavar="SPEC",
        help="box noise model: default (edges +/-10 %% of the box extent, 0.5-5 mm, 25 %% exact), exact, "
        "or key=value pairs (edge_fraction, floor_mm, cap_mm, exact_share, skip_ends, voxels)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--box-mode", choices=("lesion", "component2d", "lesion3d"), default="lesion")
    p.add_argument(
        "--manifest", help="manifest: split=test cases are excluded, patients keep folds together"
    )
    p.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds (fewer when fewer patients)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing dataset with this id/name"
    )
    p.set_defaults(func=run)
