"""``nnts make-teacher-dataset``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from . import (
    add_annotator_arguments,
    add_box_drawing_arguments,
    box_drawing_settings,
    print_next_steps,
)

if TYPE_CHECKING:
    from ..teacher.settings import TeacherDatasetSettings


def teacher_dataset_settings_from_args(args: argparse.Namespace) -> TeacherDatasetSettings:
    """The teacher dataset settings of an ``nnts make-teacher-dataset`` command line."""
    from ..teacher.settings import TeacherDatasetSettings

    return TeacherDatasetSettings(
        args.strong,
        args.d,
        args.name,
        **box_drawing_settings(args),
        weak_dir=args.weak,
        overwrite=args.overwrite,
        n_folds=args.folds,
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
    add_annotator_arguments(p)
    add_box_drawing_arguments(
        p, None, "manifest: split=test cases are excluded, patients keep folds together"
    )
    p.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds (fewer when fewer patients)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing dataset with this id/name"
    )
    p.set_defaults(func=run)
