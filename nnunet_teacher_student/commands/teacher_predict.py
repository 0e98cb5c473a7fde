"""``nnts teacher-predict``: one CT + its boxes through a trained teacher (box-region inference)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from . import add_box_margin_argument, add_model_arguments, add_teacher_mode_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "teacher-predict",
        help="tumour mask of one CT from its boxes with a trained teacher",
        description="Run a trained box (or point) teacher on one CT and its axial boxes: only the neighbourhood "
        "of the boxes is predicted, the mask is kept inside the boxed slices and the boxes dilated "
        "in-plane by --box-margin-mm (box teacher), and written on the CT's own grid.",
    )
    p.add_argument("-i", "--input", required=True, type=Path, help="CT image (NIfTI/NRRD/MHA)")
    p.add_argument(
        "-b",
        "--boxes",
        required=True,
        type=Path,
        help="boxes of this CT: an nnts box file (.json) or a box-mask image (0/1, CT geometry)",
    )
    p.add_argument(
        "-o", "--output", required=True, type=Path, help="output mask file (.nii.gz, ...)"
    )
    add_model_arguments(p, "trained teacher model", [0])
    add_box_margin_argument(p)
    p.add_argument(
        "--full-volume",
        action="store_true",
        help="run the network on the whole CT instead of the box regions (same constraint after)",
    )
    p.add_argument(
        "--save-probability",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the tumour probability (float32, 0 outside the predicted regions)",
    )
    add_teacher_mode_argument(p)
    p.set_defaults(func=run)


def load_boxes(path: Path, ct):
    """A BoxSet from a box JSON file or a box-mask image, checked against the CT."""
    from ..formats.boxes import BoxSet, boxes_from_box_mask, load_box_mask
    from ..core.errors import InputError
    from ..core.geometry import Geometry

    if not path.is_file():
        raise InputError(f"{path}: no such box file")
    if path.suffix.lower() == ".json":
        boxset = BoxSet.load(path)
        boxset.check_against(ct, str(path))
        return boxset
    mask, geometry = load_box_mask(path, Geometry.of(ct))
    return BoxSet(geometry, boxes_from_box_mask(mask))


def run(args: argparse.Namespace) -> int:
    from ..core.errors import InputError
    from ..core.geometry import Geometry, array_to_image, read_image, write_image_atomic
    from ..prediction.region import RegionPredictor
    from ..teacher.inference import teacher_predict_case

    if args.box_margin_mm < 0:
        raise InputError(f"--box-margin-mm must be >= 0, got {args.box_margin_mm}")
    ct = read_image(args.input)
    boxset = load_boxes(args.boxes, ct)
    t0 = time.perf_counter()
    predictor = RegionPredictor(args.model, args.folds, args.checkpoint, args.device, args.tta)
    t1 = time.perf_counter()
    pred = teacher_predict_case(
        predictor, ct, boxset, args.mode, args.box_margin_mm, args.full_volume
    )
    t2 = time.perf_counter()
    geometry = Geometry.of(ct)
    write_image_atomic(array_to_image(pred.mask, geometry), args.output)
    if args.save_probability:
        write_image_atomic(array_to_image(pred.probability, geometry), args.save_probability)
    ml = (
        float(pred.mask.sum())
        * float(geometry.spacing[0] * geometry.spacing[1] * geometry.spacing[2])
        / 1000
    )
    print(
        json.dumps(
            {
                "output": str(args.output),
                "boxes": len(boxset.boxes),
                "regions": len(pred.regions),
                "tumour_ml": round(ml, 3),
                "seconds_load": round(t1 - t0, 2),
                "seconds_predict": round(t2 - t1, 2),
            }
        )
    )
    return 0
