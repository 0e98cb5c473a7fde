"""``nnts calibrate-band``: the probability band in which the box teacher is unsure, from its strong cases."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_box_margin_argument, add_model_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibrate-band",
        help="the teacher's unsure probability band, calibrated on the strong cases",
        description="Segment the strong cases of the teacher dataset from fresh annotator boxes, bin the tumour "
        "probabilities inside the boxes against the true masks and write the band around 0.5 in "
        "which thresholding is wrong for more than --max-error of the voxels. With fold numbers "
        "each case is predicted by the fold that held it out; with fold all (the default teacher) "
        "the cases are the teacher's own training cases. Use the band file with "
        "make-student-dataset --band-from (never calibrate on a test set).",
    )
    p.add_argument(
        "--teacher-dataset", required=True, help="the teacher's raw dataset (id or folder name)"
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="band file to write (.json)")
    add_model_arguments(
        p, "trained teacher model", ["all"], folds_help="teacher folds (default all)"
    )
    p.add_argument(
        "--max-error",
        type=float,
        default=0.2,
        help="a probability bin is unsure when the 0.5 threshold is wrong for more than this share of "
        "its voxels (default 0.2)",
    )
    add_box_margin_argument(p, "in-plane box dilation (default 2 mm)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh boxes (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..nnunet.raw_dataset import find_raw_dataset
    from ..teacher.calibration import calibrate_band, write_band

    doc = calibrate_band(
        args.model,
        args.folds,
        find_raw_dataset(args.teacher_dataset),
        args.seed,
        args.device,
        args.box_margin_mm,
        args.max_error,
    )
    write_band(doc, args.output)
    lo, hi = doc["band"]
    where = "held-out" if doc["held_out"] else "training (fold all: over-confident)"
    print(
        f"unsure band [{lo:.2f}, {hi:.2f}) from {len(doc['cases'])} {where} strong case(s); wrote {args.output}"
    )
    return 0
