"""``nnts evaluate``: score predicted tumour masks against ground truth (DSC, lesion-wise F1/recall/
precision at >= 25 % overlap, DSC-TP, HD95, NSD, volumes) per source dataset and overall."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score predicted masks against ground-truth masks",
        description=" ".join(__doc__.split()).split(": ", 1)[1],
        epilog="Writes OUT/per_case.csv, OUT/lesions.csv, OUT/summary.json and OUT/summary.md; "
        "the matching and empty-mask rules are stated in summary.md.",
    )
    p.add_argument(
        "--pred",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder of predicted masks (.nii.gz)",
    )
    p.add_argument(
        "--gt",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder of ground-truth masks (.nii.gz)",
    )
    p.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help='JSON {case: {"dataset" or "site": name}} (or {"cases": {...}}) to group by source dataset',
    )
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output folder")
    p.add_argument(
        "--label",
        type=int,
        default=None,
        metavar="N",
        help="tumour label value in the predictions (default: any value > 0)",
    )
    p.add_argument(
        "--gt-label",
        type=int,
        default=None,
        metavar="N",
        help="tumour label value in the ground truth (default: same as --label)",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="score ground-truth cases without a prediction as empty predictions instead of failing",
    )
    p.add_argument(
        "--overlap",
        type=float,
        default=0.25,
        help="fraction of a lesion that must be covered to count as detected (default 0.25)",
    )
    p.add_argument(
        "--nsd-tolerance",
        type=float,
        default=2.0,
        metavar="MM",
        help="surface Dice tolerance in mm (default 2)",
    )
    p.add_argument(
        "--name", default=None, help="model name in the tables (default: prediction folder name)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import EvaluationSettings, evaluate_folders, markdown_table, write_outputs

    settings = EvaluationSettings(
        label=args.label,
        gt_label=args.gt_label,
        overlap=args.overlap,
        nsd_tolerance_mm=args.nsd_tolerance,
        allow_missing=args.allow_missing,
    )
    result = evaluate_folders(args.pred, args.gt, args.manifest, settings, progress=not args.quiet)
    name = args.name or args.pred.resolve().name
    write_outputs(result, args.output, name)
    print(markdown_table({name: result}, bold_best=False))
    if result["unmatched_predictions"]:
        print(
            f"note: {len(result['unmatched_predictions'])} prediction(s) without ground truth were ignored"
        )
    print(f"wrote {args.output}/per_case.csv, lesions.csv, summary.json, summary.md")
    return 0
