"""``nnts convert``: public datasets or your own folders -> nnU-Net raw data (masks) or a weak set (boxes)."""

from __future__ import annotations

import argparse
import textwrap

DESCRIPTION = (
    "Public datasets or your own folders -> nnU-Net raw data (masks) or a weak set (boxes)."
)
RESUME_HELP = """\
Output and resuming: masks go to an nnU-Net raw dataset $nnUNet_raw/DatasetIII_Name (or under -o),
boxes to a weak set folder (images/, boxes/, boxmasks/). Each finished case leaves a record in
OUT/.nnts_convert/. An output without its completion marker (dataset.json for a raw dataset,
cases.json for a weak set) is an interrupted run: running the same command again resumes it
(finished cases are kept and reported as "resumed"). A finished output, or another dataset with
the same id, is refused unless --overwrite, which deletes it first. Every run ends with a summary
(printed, and in OUT/conversion_summary.json) and a patient-stratified train/test split in
OUT/manifest.json (each case's patient, source dataset and split).
"""


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=95)


def _common(p: argparse.ArgumentParser, strong: bool) -> None:
    if strong:
        p.add_argument(
            "-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999)"
        )
        p.add_argument(
            "-o",
            "--raw",
            dest="out",
            metavar="RAW",
            default=None,
            help="nnU-Net raw folder (default: $nnUNet_raw)",
        )
    p.add_argument(
        "-np", "--num-processes", type=int, default=1, help="parallel worker processes (default 1)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished output / a dataset with this id",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the patient-stratified split (default 0)"
    )
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.15,
        help="fraction of cases in the test split (0.15)",
    )


MSD_DESC = "Task06_Lung folder (imagesTr/, labelsTr/, dataset.json) -> nnU-Net raw dataset."
NSCLC_DESC = (
    "SRC/LUNG1-xxx/<study>/<series>/*.dcm (CT + RTSTRUCT and/or DICOM-SEG) -> nnU-Net raw dataset. The tumour is "
    "the union of the RTSTRUCT ROIs (or SEG segments) whose name fully matches --roi-pattern (case-insensitive); "
    "SEG segments of type 'Neoplasm, Primary' are taken when no label matches. Patients without one are reported "
    "and skipped."
)
LPCD_DESC = (
    "SRC/Lung_Dx-XNNNN/<study>/<series>/*.dcm with ANNOTATIONS/XNNNN/<SOPInstanceUID>.xml -> weak set. Keeps CT "
    "series (no PET, no fused PET/CT) forming one regular stack whose z-extent lies in [--min-cm, --max-cm], as "
    "the paper did; reports the counts, unmatched and malformed annotation files."
)
FOLDER_DESC = (
    "SRC holds CTs (<case>.nii.gz/.nii/.nrrd/.mha or <case>/ DICOM series folders). With --masks DIR "
    "(<case>.nii.gz..., 0/1 on the CT's voxels) it writes nnU-Net raw dataset -d ID (under -o or $nnUNet_raw); "
    "with --boxes DIR (<case>.json in our box format, or <case>.csv with header slice,xmin,ymin,xmax,ymax[,label], "
    "voxel indices, bounds inclusive) it writes the weak set -o OUT."
)


def _subcommand(sub, name: str, help_: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_,
        description=_wrap(description),
        epilog=RESUME_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_msd_lung(sub) -> None:
    p = _subcommand(sub, "msd-lung", "MSD Task06_Lung -> raw dataset", MSD_DESC)
    p.add_argument("src", help="the Task06_Lung folder")
    p.add_argument("--name", default="MSDLung", help="dataset name (default MSDLung)")
    _common(p, strong=True)
    p.set_defaults(func=_msd)


def _add_nsclc_radiomics(sub) -> None:
    p = _subcommand(sub, "nsclc-radiomics", "NSCLC-Radiomics (TCIA) -> raw dataset", NSCLC_DESC)
    p.add_argument("src", help="the collection folder holding the LUNG1-xxx patient folders")
    p.add_argument("--name", default="NSCLCRadiomics", help="dataset name (default NSCLCRadiomics)")
    p.add_argument(
        "--label-source",
        choices=["auto", "rtstruct", "seg"],
        default="auto",
        help="auto: RTSTRUCT first, then SEG (default)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--roi-pattern",
        default=None,
        help="regular expression for tumour ROI/segment names (default 'GTV-1'; e.g. 'GTV-1|gtv-pre-op')",
    )
    g.add_argument(
        "--all-gtv", action="store_true", help="merge every ROI whose name starts with GTV"
    )
    _common(p, strong=True)
    p.set_defaults(func=_nsclc)


def _add_lung_pet_ct_dx(sub) -> None:
    p = _subcommand(
        sub, "lung-pet-ct-dx", "Lung-PET-CT-Dx (TCIA) + VOC boxes -> weak set", LPCD_DESC
    )
    p.add_argument("src", help="the collection folder holding the Lung_Dx-XNNNN patient folders")
    p.add_argument("annotations", help="the Annotation folder (one sub-folder per patient)")
    p.add_argument("-o", "--out", required=True, help="weak set folder to write")
    p.add_argument(
        "--min-cm", type=float, default=16.0, help="shortest z-extent kept (default 16 cm)"
    )
    p.add_argument(
        "--max-cm", type=float, default=60.0, help="longest z-extent kept (default 60 cm)"
    )
    p.add_argument(
        "--boxes-3d",
        action="store_true",
        help="3-D box weak labels: each lesion's axial boxes (a 26-connected group) become its full "
        "in-plane extent on every slice it spans",
    )
    _common(p, strong=False)
    p.set_defaults(func=_lung_pet_ct_dx)


def _add_folder(sub) -> None:
    p = _subcommand(
        sub,
        "folder",
        "your own CTs with masks (-> raw dataset) or boxes (-> weak set)",
        FOLDER_DESC,
    )
    p.add_argument("src", help="folder of CTs")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--masks", help="folder of tumour masks, matched by case id")
    g.add_argument("--boxes", help="folder of box files (.json / .csv), matched by case id")
    p.add_argument(
        "-o",
        "--out",
        default=None,
        help="weak set folder (--boxes) or nnU-Net raw folder (--masks)",
    )
    p.add_argument(
        "-d",
        "--dataset-id",
        type=int,
        default=None,
        help="nnU-Net dataset id (needed with --masks)",
    )
    p.add_argument("--name", default=None, help="dataset name (default: SRC's folder name)")
    p.add_argument(
        "--source-name",
        default=None,
        help="dataset name recorded in the manifest (default folder:SRC)",
    )
    p.add_argument(
        "--patient-map", default=None, help="CSV 'case,patient' for patients with several scans"
    )
    p.add_argument(
        "--any-nonzero", action="store_true", help="take every non-zero mask voxel as tumour"
    )
    _common(p, strong=False)
    p.set_defaults(func=_folder)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert public datasets or folders of CTs",
        description=DESCRIPTION,
        epilog=RESUME_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for add in (_add_msd_lung, _add_nsclc_radiomics, _add_lung_pet_ct_dx, _add_folder):
        add(sub)


def _settings(args: argparse.Namespace):
    """The options every converter shares (lung-pet-ct-dx has no -d and no --name)."""
    from ..dataset_conversion.settings import ConversionSettings

    return ConversionSettings(
        out=args.out,
        dataset_id=getattr(args, "dataset_id", None),
        name=getattr(args, "name", None),
        overwrite=args.overwrite,
        num_processes=args.num_processes,
        seed=args.seed,
        test_fraction=args.test_fraction,
    )


def _report(summary) -> int:
    print(summary.text())
    done = summary.cases("converted") + summary.cases("resumed")
    return 0 if done else 1


def _msd(args) -> int:
    from ..dataset_conversion.msd_lung import convert_msd_lung

    summary, _ = convert_msd_lung(args.src, _settings(args))
    return _report(summary)


def _nsclc(args) -> int:
    from ..dataset_conversion.dicom_labels import ALL_GTV_PATTERN, DEFAULT_ROI_PATTERN
    from ..dataset_conversion.nsclc_radiomics import convert_nsclc_radiomics

    pattern = ALL_GTV_PATTERN if args.all_gtv else (args.roi_pattern or DEFAULT_ROI_PATTERN)
    summary, _ = convert_nsclc_radiomics(args.src, _settings(args), args.label_source, pattern)
    return _report(summary)


def _lung_pet_ct_dx(args) -> int:
    from ..dataset_conversion.lung_pet_ct_dx import convert_lung_pet_ct_dx

    summary, _ = convert_lung_pet_ct_dx(
        args.src, args.annotations, _settings(args), args.min_cm, args.max_cm, args.boxes_3d
    )
    return _report(summary)


def _folder(args) -> int:
    from ..dataset_conversion.own_folder import convert_folder

    summary, _ = convert_folder(
        args.src,
        _settings(args),
        masks=args.masks,
        boxes=args.boxes,
        source_name=args.source_name,
        patient_map=args.patient_map,
        any_nonzero=args.any_nonzero,
    )
    return _report(summary)
