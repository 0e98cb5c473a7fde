"""``nnts make-scenario``: split a strong dataset into a few strong cases and a weak (boxed) set."""

from __future__ import annotations

import argparse
from pathlib import Path

from typing import TYPE_CHECKING

from . import add_annotator_arguments, add_box_drawing_arguments, box_drawing_settings

if TYPE_CHECKING:
    from ..students.settings import ScenarioSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "make-scenario",
        help="keep N strong cases, turn the rest into weak cases (paper-like scenarios)",
        description="From the training cases of a strong raw dataset keep --strong-count as a new strong dataset "
        "(seeded choice of whole patients; the manifest's test cases never enter) and write the "
        "others as a weak set with boxes derived from their masks (the annotator model's seeded noise). Their true masks "
        "stay in WEAK_DIR/labels/ to measure pseudo-label quality; WEAK_DIR/scenario.json records "
        "the choices. The paper's scarce scenario keeps 40 strong cases.",
    )
    p.add_argument("--strong", required=True, help="pool: strong raw dataset id or folder name")
    p.add_argument("-d", type=int, required=True, help="id of the new strong dataset")
    p.add_argument("--name", required=True, help="name of the new strong dataset")
    p.add_argument(
        "--strong-count", type=int, required=True, help="number of cases kept strong (paper: 40)"
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="WEAK_DIR",
        help="weak set folder to write",
    )
    add_annotator_arguments(p)
    p.add_argument(
        "--strong-sites",
        nargs="+",
        metavar="SITE",
        help="draw the strong cases from these sites only (the manifest's 'site'); the weak set keeps all",
    )
    add_box_drawing_arguments(
        p,
        "seed of the strong choice and the boxes",
        "manifest: patients (kept together), split=test cases left out",
        Path,
    )
    p.add_argument(
        "--size-balance",
        action="store_true",
        help="record that students upsample rare tumour sizes (passed on as make-student-dataset "
        "--size-balance)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing dataset / weak set"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def scenario_settings_from_args(args: argparse.Namespace) -> ScenarioSettings:
    """The scenario settings of an ``nnts make-scenario`` command line."""
    from ..students.settings import ScenarioSettings

    return ScenarioSettings(
        args.strong,
        args.output,
        args.strong_count,
        args.d,
        args.name,
        **box_drawing_settings(args),
        size_balance=args.size_balance,
        overwrite=args.overwrite,
        progress=not args.quiet,
        strong_sites=tuple(args.strong_sites) if args.strong_sites else None,
    )


def run(args: argparse.Namespace) -> int:
    from ..students.scenario import make_scenario

    r = make_scenario(scenario_settings_from_args(args))
    short = (
        ""
        if r["strong_count"] == r["strong_count_requested"]
        else f" (asked {r['strong_count_requested']}; whole patients do not add up to it)"
    )
    print(
        f"strong: {r['strong_count']} case(s) in {r['strong_dataset']}{short}; weak: {len(r['weak_cases'])} "
        f"case(s) in {args.output}; test cases left out: {len(r['test_cases_excluded'])}"
    )
    manifest = f" --manifest {args.manifest}" if args.manifest else ""
    balance = " --size-balance" if args.size_balance else ""
    print(
        "next: nnts make-teacher-dataset --strong {d} -d TEACHER_ID --weak {w}{m}; train the teacher; "
        "nnts pseudo-label -i {w} -o PSEUDO -m TEACHER_MODEL; nnts make-student-dataset --strong {d} "
        "-d STUDENT_ID --name NAME --weak {w} --pseudo PSEUDO{m}{b}".format(
            d=args.d, w=args.output, m=manifest, b=balance
        )
    )
    return 0
