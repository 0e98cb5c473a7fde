"""``nnts synth``: write the synthetic chest-CT phantom datasets (strong nnU-Net set, weak set, test set)."""

from __future__ import annotations

import argparse
from pathlib import Path

from typing import TYPE_CHECKING

from . import add_annotator_arguments, annotator_from_args

if TYPE_CHECKING:
    from ..phantom.settings import PhantomSettings

PRESET_NAMES = (
    "default",
    "tiny",
)  # phantom.PRESETS; not imported here to keep `nnts` start-up light
FAMILY_NAMES = ("standard", "copd")  # phantom.families.FAMILIES (a test checks they agree)


def phantom_settings_from_args(args: argparse.Namespace) -> PhantomSettings:
    """The phantom settings of an ``nnts synth`` command line."""
    from ..phantom.settings import PhantomSettings

    return PhantomSettings(
        args.out_dir,
        args.dataset_id,
        n_strong=args.strong,
        n_weak=args.weak,
        n_test=args.test,
        seed=args.seed,
        preset=args.preset,
        scale=args.scale,
        raw_dir=args.raw,
        dataset_name=args.name,
        annotator=annotator_from_args(args),
        num_processes=args.num_processes,
        overwrite=args.overwrite,
        sites=args.sites,
        tumour_free=args.tumour_free,
        family=args.family,
    )


def run(args: argparse.Namespace) -> int:
    from ..phantom.datasets import write_phantom_datasets

    summary = write_phantom_datasets(phantom_settings_from_args(args))
    c, cfg = summary["counts"], summary["config"]
    print(f"strong dataset : {summary['dataset_dir']} ({c['strong']} cases)")
    print(
        f"weak set       : {summary['weak_dir']} ({c['weak']} cases, boxes: {summary['annotator']})"
    )
    print(f"test set       : {summary['test_dir']} ({c['test']} cases)")
    print(f"lung masks     : {summary['lungs_dir']}")
    print(f"manifest       : {summary['manifest']}")
    print(
        f"{summary['n_cases']} cases, {summary['n_tumours']} tumours, preset {args.preset}, anatomy scale "
        f"{cfg['scale']}, seed {args.seed}"
    )
    print(
        f"seconds per case: {summary['seconds_per_case_generate']:.3f} generating, "
        f"{summary['seconds_per_case']:.3f} in all ({summary['seconds_total']:.1f} s total)"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="generate synthetic chest-CT phantoms (strong, weak and test sets)",
        description="Generate deterministic synthetic chest CTs with lung tumours and write: the strong "
        "nnU-Net raw dataset ($nnUNet_raw/DatasetXXX_NAME), OUT_DIR/weak (CT + axial boxes, true "
        "labels kept in labels/), OUT_DIR/test, OUT_DIR/lungs (true lung masks) and "
        "OUT_DIR/manifest.json. Defaults give the 'scarce' scenario: 8 strong, 24 weak, 8 test.",
    )
    p.add_argument(
        "-o", "--output", dest="out_dir", type=Path, required=True, help="output folder (OUT_DIR)"
    )
    p.add_argument("-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999)")
    p.add_argument("--name", default="PhantomLung", help="dataset name (default: PhantomLung)")
    p.add_argument("--strong", type=int, default=8, help="cases with tumour masks (default: 8)")
    p.add_argument("--weak", type=int, default=24, help="cases with boxes only (default: 24)")
    p.add_argument("--test", type=int, default=8, help="held-out test cases (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="default",
        help="size preset: default (~64-112 px, 16-48 slices) or tiny (~32-48 px, 16-24 slices)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=None,
        help="anatomy scale factor (default: the preset's; size limits follow it)",
    )
    p.add_argument(
        "--sites",
        default="mixed",
        help="site per case: mixed (round-robin), scarce (strong msd only, weak and test mixed), paper "
        "(strong msd+nsclc, weak lpcd), or one of msd, nsclc, lpcd (default: mixed)",
    )
    p.add_argument(
        "--family",
        choices=FAMILY_NAMES,
        default="standard",
        help="phantom population: standard, or copd (emphysema, nodule/mass sizes, spiculated "
        "heterogeneous tumours mostly on the pleura, unlabelled consolidation beside half of them)",
    )
    p.add_argument(
        "--tumour-free",
        type=float,
        default=None,
        metavar="FRACTION",
        help="exactly this share of every split is tumour-free and the rest has >= 1 tumour each "
        "(default: strong and weak cases all with tumour, test cases drawn per site)",
    )
    add_annotator_arguments(p)
    p.add_argument(
        "-np", "--num-processes", type=int, default=1, help="worker processes (default: 1)"
    )
    p.add_argument(
        "--raw", type=Path, default=None, help="nnU-Net raw folder (default: $nnUNet_raw)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing dataset and outputs"
    )
    p.set_defaults(func=run)
