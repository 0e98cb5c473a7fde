"""``nnts predict``: binary tumour masks (and a JSON report per case) for CTs, with any trained model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from . import add_model_arguments, add_part_arguments, shard_from_args

if TYPE_CHECKING:
    from ..prediction.settings import PredictSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="tumour masks for CTs (lung crop -> nnU-Net -> paste back)",
        description="Predict lung tumours: lung mask -> crop to the lungs -> nnU-Net's predictor -> paste back "
        "into the CT's geometry -> drop lesions outside the dilated lung mask. Writes a binary uint8 "
        "tumour mask with exactly the CT's geometry and a JSON report (lesions with volume in mL and "
        "centroid, lung-mask method, timings). Works with every nnts trainer and plain nnU-Net models. "
        "A folder input is a batch: cases whose outputs exist are skipped (resumable).",
    )
    add_io_arguments(p)
    add_model_arguments(
        p, "trained model", None, "folds to ensemble (default: every fold_X with the checkpoint)"
    )
    add_region_arguments(p)
    add_mask_arguments(p)
    add_run_arguments(p)
    p.set_defaults(func=run)


def add_io_arguments(p: argparse.ArgumentParser) -> None:
    """``-i`` and ``-o``: the CTs and where their masks go."""
    p.add_argument(
        "-i",
        "--input",
        required=True,
        type=Path,
        help="CT: a NIfTI/NRRD/MHA file, a DICOM series folder, or a folder of either (batch)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="a mask file name (.nii.gz, .nrrd, ...; one case) or a folder receiving <case>.nii.gz "
        "and <case>.json",
    )


def add_region_arguments(p: argparse.ArgumentParser) -> None:
    """The regions predicted: the lung crop, its boxes, where they are cut, the tiles run."""
    p.add_argument(
        "--no-lung-crop",
        action="store_true",
        help="predict the whole volume instead of the lung box(es)",
    )
    boxes = p.add_mutually_exclusive_group()
    boxes.add_argument(
        "--per-lung",
        action="store_true",
        help="one crop per lung (as the paper), each cut from the CT before resampling; overlaps "
        "merged by maximum probability (default: one per lung or one around both, whichever needs "
        "fewer network passes)",
    )
    boxes.add_argument("--one-box", action="store_true", help="always one crop around both lungs")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--crop-after-resampling",
        dest="crop_after_resampling",
        action="store_const",
        const=True,
        help="cut the lung box from nnU-Net's resampled whole CT: the same voxel grid as "
        "full-volume prediction (no sub-voxel shift), at the cost of resampling the whole CT; one box",
    )
    where.add_argument(
        "--crop-before-resampling",
        dest="crop_after_resampling",
        action="store_const",
        const=False,
        help="cut the lung box(es) from the CT, then let nnU-Net resample only the box(es) (default: "
        "fastest; the mask can differ from full-volume prediction at lesion boundaries)",
    )
    p.add_argument(
        "--all-tiles",
        action="store_true",
        help="predict every sliding-window tile of a crop (default: skip the tiles farther than "
        "--margin-mm from the lungs; the result inside that margin is the same)",
    )


def add_mask_arguments(p: argparse.ArgumentParser) -> None:
    """The probability file, the lung mask, the crop margin, the lesions kept and the tumour label."""
    p.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write <case>_probability.nii.gz (float32 tumour probability, 0 outside the crops)",
    )
    p.add_argument(
        "--lungmask-weights",
        type=Path,
        default=None,
        help="lungmask R231 state dict (.pth); default: $NNTS_LUNGMASK_WEIGHTS, else classical lung mask",
    )
    p.add_argument("--lung-method", choices=("auto", "lungmask", "classical"), default="auto")
    p.add_argument(
        "--margin-mm",
        type=float,
        default=10.0,
        help="margin around the lungs of the crop (default 10)",
    )
    p.add_argument(
        "--lung-dilation-mm",
        type=float,
        default=5.0,
        help="keep lesions with a voxel within this distance of the lung region (default 5)",
    )
    p.add_argument(
        "--keep-outside-lungs", action="store_true", help="do not drop lesions outside the lungs"
    )
    p.add_argument(
        "--label",
        type=int,
        default=None,
        help="tumour label of a label model (default: the label named tumour, else the highest)",
    )


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The sliding window's step, overwriting, and the part of a folder's cases this run predicts."""
    p.add_argument(
        "--step-size",
        type=float,
        default=0.5,
        help="sliding-window step as a fraction of the patch",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="predict cases whose outputs exist again"
    )
    add_part_arguments(p, "a folder's cases", "predicts")


def predict_settings_from_args(args: argparse.Namespace) -> PredictSettings:
    """The :class:`PredictSettings` of parsed ``nnts predict`` arguments (checked: an :class:`InputError`)."""
    from ..core.errors import InputError
    from ..prediction.settings import CROP_AFTER_RESAMPLING, PredictSettings

    if args.margin_mm < 0 or args.lung_dilation_mm < 0:
        raise InputError("--margin-mm and --lung-dilation-mm must be >= 0")
    if not 0 < args.step_size <= 1:
        raise InputError(f"--step-size must be in (0, 1], got {args.step_size}")
    return PredictSettings(
        folds=None if args.folds is None else tuple(args.folds),
        checkpoint=args.checkpoint,
        device=args.device,
        tta=args.tta,
        step_size=args.step_size,
        lung_crop=not args.no_lung_crop,
        per_lung=True if args.per_lung else False if args.one_box else None,
        crop_after_resampling=CROP_AFTER_RESAMPLING
        if args.crop_after_resampling is None
        else args.crop_after_resampling,
        skip_tiles=not args.all_tiles,
        margin_mm=args.margin_mm,
        lung_weights=args.lungmask_weights,
        lung_method=args.lung_method,
        lung_dilation_mm=None if args.keep_outside_lungs else args.lung_dilation_mm,
        label=args.label,
        save_probabilities=args.save_probabilities,
        overwrite=args.overwrite,
    )


def run(args: argparse.Namespace) -> int:
    from ..prediction.batch import predict_path

    settings = predict_settings_from_args(args)
    num_parts, part_id = shard_from_args(args)
    summary = predict_path(
        args.input, args.output, args.model, settings, num_parts=num_parts, part_id=part_id
    )
    skipped = f", skipped {len(summary.skipped)} already done" if summary.skipped else ""
    print(f"predicted {len(summary.predicted)} case(s){skipped}; output: {args.output}")
    return 0
