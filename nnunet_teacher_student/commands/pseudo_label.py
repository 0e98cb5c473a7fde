"""``nnts pseudo-label``: a trained teacher over a weak set -> one pseudo mask per case + QC table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from . import (
    add_box_margin_argument,
    add_model_arguments,
    add_part_arguments,
    add_teacher_mode_argument,
    shard_from_args,
)

if TYPE_CHECKING:
    from ..pseudo_labels.settings import PseudoLabelSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pseudo-label",
        help="pseudo masks for a weak set with a trained teacher (+ QC table)",
        description="Run a trained teacher (box-region inference) over every case of a weak set and write "
        "OUT/<case>.nii.gz on the CT's grid, OUT/provenance.json (teacher checkpoint hashes), a QC "
        "table OUT/qc.csv + qc.json (volume, lesions, box fill, probability and entropy in the boxes, "
        "empty boxed slices, DSC against true masks where the weak set has labels/; with several -f "
        "folds the folds' mean probability and their disagreement) and "
        "OUT/excluded.json. Resumable (finished cases are skipped; files are renamed into place "
        "when complete) and shardable with --num-parts/--part-id like nnUNetv2_predict.",
        epilog="SLURM array (sbatch --array=0-7): without --num-parts/--part-id each array task does its part "
        "(SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT); rerun any part afterwards to refresh the QC table.",
    )
    p.add_argument(
        "-i", "--input", required=True, type=Path, help="weak set folder (images/, boxes/)"
    )
    p.add_argument(
        "-o", "--output", required=True, type=Path, help="output folder of the pseudo masks"
    )
    add_teacher_arguments(p)
    add_part_arguments(p)
    add_box_arguments(p)
    add_qc_arguments(p)
    add_output_arguments(p)
    p.set_defaults(func=run)


def add_teacher_arguments(p: argparse.ArgumentParser) -> None:
    """The teacher: ``-m``, ``-f``, ``-chk``, ``-device``, TTA and ``--teacher``."""
    add_model_arguments(
        p,
        "trained teacher model (or a student's, for a noisy-student round)",
        [0],
        model_required=False,
        folds_help="teacher folds (default 0); several: an ensemble, the folds' probabilities averaged "
        "and their disagreement per case in the QC",
    )
    p.add_argument(
        "--teacher",
        choices=("model", "classical"),
        default="model",
        help="model: the trained teacher of -m (default); classical: no training, inside each box "
        "HU > -400 and the lung region, the components the box frames (a reference floor)",
    )


def add_box_arguments(p: argparse.ArgumentParser) -> None:
    """How the teacher reads the boxes: ``--box-margin-mm`` and ``--mode`` (box or point)."""
    add_box_margin_argument(p)
    add_teacher_mode_argument(p)


def add_qc_arguments(p: argparse.ArgumentParser) -> None:
    """The QC filters (each option named as its filter), ``--previous`` and ``--filter-mode``."""
    p.add_argument(
        "--min-box-fill",
        type=float,
        default=None,
        metavar="F",
        help="QC filter: mean fraction of the boxes covered by the mask must be >= F",
    )
    p.add_argument(
        "--min-box-iou",
        type=float,
        default=None,
        metavar="I",
        help="QC filter: mean IoU of each given box and the mask's own tight box there must be >= I",
    )
    p.add_argument(
        "--max-entropy",
        type=float,
        default=None,
        metavar="H",
        help="QC filter: mean binary entropy (bits) of the teacher inside the boxes must be <= H",
    )
    p.add_argument(
        "--max-empty-slices",
        type=int,
        default=None,
        metavar="N",
        help="QC filter: at most N boxed slices without tumour",
    )
    p.add_argument(
        "--min-volume-ml",
        type=float,
        default=None,
        metavar="ML",
        help="QC filter: pseudo-mask volume must be >= ML",
    )
    p.add_argument(
        "--max-disagreement",
        type=float,
        default=None,
        metavar="D",
        help="QC filter (teacher ensembles, several -f folds): 1 - the members' mean pairwise DSC must be <= D",
    )
    p.add_argument(
        "--previous",
        type=Path,
        default=None,
        metavar="DIR",
        help="noisy-student rounds: the previous round's pseudo-label folder; the QC gets each case's "
        "label_change (1 - DSC against its label there)",
    )
    p.add_argument(
        "--max-label-change",
        type=float,
        default=None,
        metavar="C",
        help="QC filter (with --previous): label_change must be <= C (drop mode: leave out the cases "
        "whose label changed most since the previous round)",
    )
    p.add_argument(
        "--filter-mode",
        choices=("flag", "drop"),
        default="flag",
        help="flag: mark failing cases in the QC table; drop: also list them in excluded.json so "
        "that make-student-dataset leaves them out (default flag)",
    )


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """The QC's true masks, the probability files, ``--overwrite`` and ``--quiet``."""
    p.add_argument(
        "--labels",
        type=Path,
        default=None,
        metavar="DIR",
        help="the weak cases' true masks, for the QC's DSC vs truth (default: INPUT/labels/ when there)",
    )
    p.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write the teacher's tumour probability per case to OUT/probabilities/ (float32; for "
        "make-student-dataset --uncertain-band)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="predict this part's cases again; replaces the outputs of another teacher",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def pseudo_label_settings_from_args(args: argparse.Namespace) -> PseudoLabelSettings:
    """The :class:`PseudoLabelSettings` of parsed ``nnts pseudo-label`` arguments (checked: an
    :class:`InputError`)."""
    from ..core.errors import InputError
    from ..pseudo_labels.qc import FILTERS
    from ..pseudo_labels.settings import PseudoLabelSettings

    if args.box_margin_mm < 0:
        raise InputError(f"--box-margin-mm must be >= 0, got {args.box_margin_mm}")
    if args.max_label_change is not None and args.previous is None:
        raise InputError(
            "--max-label-change needs --previous (the previous round's pseudo-label folder)"
        )
    if args.teacher == "model" and args.model is None:
        raise InputError(
            "-m/--model is required (the trained teacher's folder), or pass --teacher classical"
        )
    return PseudoLabelSettings(
        teacher=args.teacher,
        model_folder=args.model,
        folds=tuple(args.folds),
        checkpoint=args.checkpoint,
        mode=args.mode,
        device=args.device,
        tta=args.tta,
        box_margin_mm=args.box_margin_mm,
        **{name: getattr(args, name) for name in FILTERS},  # each filter's option has its name
        filter_mode=args.filter_mode,
        labels_dir=args.labels,
        previous=args.previous,
        save_probabilities=args.save_probabilities,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )


def run(args: argparse.Namespace) -> int:
    from ..pseudo_labels.run import pseudo_label

    settings = pseudo_label_settings_from_args(args)
    num_parts, part_id = shard_from_args(args)
    s = pseudo_label(args.input, args.output, settings, num_parts, part_id)
    _print_summary(s, args)
    return 0


def _print_summary(s: dict, args: argparse.Namespace) -> None:
    """The run's counts, timings, QC means and filter results."""
    qc = s["qc"]
    print(
        f"part {s['part_id']}/{s['num_parts']}: {s['cases_in_part']} case(s), predicted {s['predicted']}, "
        f"skipped {s['skipped']} finished; {_fmt(s['seconds_per_case'], 2)} s/case, "
        f"{s['seconds_total']:.1f} s in all"
    )
    state = "complete" if s["complete"] else f"{s['missing']} case(s) still missing (other parts?)"
    print(
        f"QC over {qc['cases']}/{s['cases_total']} case(s) ({state}): mean volume {_fmt(qc['mean_volume_ml'])} mL, "
        f"box fill {_fmt(qc['mean_box_fill_mean'])}, probability in boxes {_fmt(qc['mean_probability_in_boxes'])}, "
        f"entropy {_fmt(qc['mean_entropy_in_boxes'])} bits, empty boxed slices "
        f"{_fmt(qc['mean_empty_boxed_slices'], 1)}, DSC vs truth {_fmt(qc['mean_dice_vs_truth'])} "
        f"({qc['cases_with_truth']} case(s) with truth)"
    )
    if qc.get("mean_disagreement") is not None:
        print(
            f"teacher ensemble of {len(args.folds)} folds: mean disagreement {_fmt(qc['mean_disagreement'])} "
            "(1 - the members' mean pairwise DSC)"
        )
    if qc.get("mean_label_change") is not None:
        print(f"label change since {args.previous}: mean {_fmt(qc['mean_label_change'])} (1 - DSC)")
    for name, n in s["removed_by_filter"].items():
        verb = "dropped" if s["filter_mode"] == "drop" else "flagged"
        print(f"filter {name}: {verb} {n} case(s)")
    if s["removed_by_filter"]:
        print(
            f"{s['failing_any_filter']} case(s) fail some filter; excluded from student datasets: {s['excluded']}"
        )
    print(f"wrote {args.output}/<case>.nii.gz, qc.csv, qc.json, excluded.json, provenance.json")
