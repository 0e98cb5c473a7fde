"""``nnts lungs``: write the lung region that cropping uses, in the CT's geometry, for checking."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.errors import InputError
from ..core.files import write_text_atomic
from ..core.geometry import Geometry, array_to_image, read_image, spacing_zyx, write_image_atomic


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lungs",
        help="lung region (for cropping) of a CT",
        description="Write the lung region that cropping uses (1 = right lung, 2 = left lung; each lung closed "
        "by its 3-D convex hull and completed with the other lung's mirror image, so tumours at the "
        "pleura stay inside), on the CT's voxel grid. "
        "Uses lungmask R231 when local weights are given (--lungmask-weights or "
        "NNTS_LUNGMASK_WEIGHTS), else a classical HU-threshold method; says which.",
    )
    p.add_argument(
        "-i",
        "--input",
        required=True,
        type=Path,
        help="CT image in Hounsfield units (e.g. .nii.gz)",
    )
    p.add_argument(
        "-o", "--output", required=True, type=Path, help="output label image (e.g. lungs.nii.gz)"
    )
    p.add_argument(
        "--lungmask-weights",
        type=Path,
        default=None,
        help="lungmask R231 state dict (.pth); default: $NNTS_LUNGMASK_WEIGHTS. Never downloaded.",
    )
    p.add_argument(
        "--method",
        choices=("auto", "lungmask", "classical"),
        default="auto",
        help="auto: lungmask if weights are available, else classical (default)",
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help="write the lung segmentation before hull/mirror/growth instead of the cropping region",
    )
    p.add_argument("--binary", action="store_true", help="write 0/1 instead of right/left labels")
    p.add_argument(
        "--margin-mm",
        type=float,
        default=10.0,
        help="margin of the reported crop boxes (default 10)",
    )
    p.add_argument(
        "--boxes-json",
        type=Path,
        default=None,
        help="also write the crop boxes (both lungs, and each lung) as JSON",
    )
    p.add_argument(
        "--cpu", action="store_true", help="run lungmask on the CPU even if a GPU is present"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..lungs.cropping import lung_crop_boxes
    from ..lungs.mask import lung_mask

    ct = read_image(args.input)
    result = lung_mask(
        ct,
        weights=args.lungmask_weights,
        method=args.method,
        force_cpu=args.cpu,
        progress=True,
        what=str(args.input),
    )
    print(f"method: {result.method}\n{result.message}")
    if not result.found:
        raise InputError(f"{args.input}: no lung found ({result.message}); is it a chest CT in HU?")
    array = result.raw_labels if args.raw else result.labels
    if args.binary:
        array = (array > 0).astype("uint8")
    image = array_to_image(array, Geometry.of(ct))
    write_image_atomic(image, args.output)
    spacing = spacing_zyx(Geometry.of(ct))
    boxes = {
        "both": lung_crop_boxes(result.labels, spacing, args.margin_mm),
        "per_lung": lung_crop_boxes(result.labels, spacing, args.margin_mm, per_lung=True),
    }
    for box in boxes["both"] + boxes["per_lung"]:
        print(
            f"crop {box.name}: z {box.start[0]}:{box.stop[0]}, y {box.start[1]}:{box.stop[1]}, "
            f"x {box.start[2]}:{box.stop[2]} (margin {args.margin_mm:g} mm)"
        )
    if args.boxes_json:
        payload = {
            "method": result.method,
            "message": result.message,
            "margin_mm": args.margin_mm,
            "geometry": Geometry.of(ct).to_dict(),
            **{k: [b.to_dict() for b in v] for k, v in boxes.items()},
        }
        write_text_atomic(json.dumps(payload, indent=2) + "\n", args.boxes_json)
    print(f"wrote {args.output}")
    return 0
