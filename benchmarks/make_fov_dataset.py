"""A clinical-field-of-view copy of a phantom nnU-Net raw dataset and its test folder, to train a model that works
where ``nnts predict`` crops (issue 18: the agreement of the lung crop with full-volume prediction needs a model
that is in distribution on CTs with air and a table around the body)::

    python benchmarks/make_fov_dataset.py --raw-id 918 --id 919 --name FovLung --factor 2 \\
        --test DIR/test --test-out DIR/test_fov

Every case is centred on a square in-plane grid ``factor`` times its larger in-plane side, with air around the body
and a patient table under it (``bench_predict.clinical_fov``); slices are kept. Cases already written are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_predict import clinical_fov  # noqa: E402
from nnunet_teacher_student.core.files import write_text_atomic  # noqa: E402
from nnunet_teacher_student.core.geometry import read_image, write_image_atomic  # noqa: E402


def fov_copy(image: Path, label: Path, image_out: Path, label_out: Path, factor: float) -> None:
    """Write the clinical-FOV copy of one (CT, label) pair, each file atomically and the label last (its presence
    marks the pair done)."""
    if label_out.is_file():
        return
    ct, lab = read_image(image), read_image(label)
    inplane = 2 * int(round(factor * max(ct.GetSize()[:2]) / 2))
    img, arr = clinical_fov(ct, sitk.GetArrayFromImage(lab), inplane)
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(img)
    write_image_atomic(img, image_out)
    write_image_atomic(out, label_out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw-id", type=int, required=True, help="source nnU-Net raw dataset id")
    ap.add_argument("--id", type=int, required=True, help="id of the copy")
    ap.add_argument("--name", default="FovLung")
    ap.add_argument(
        "--factor", type=float, default=2.0, help="in-plane grid / the case's larger in-plane side"
    )
    ap.add_argument("--test", type=Path, help="a test folder with images/ and labels/")
    ap.add_argument("--test-out", type=Path, help="where its clinical-FOV copy goes")
    args = ap.parse_args()
    if not os.environ.get("nnUNet_raw"):
        sys.exit("make_fov_dataset.py: set nnUNet_raw")
    raw = Path(os.environ["nnUNet_raw"])
    src = next(iter(sorted(raw.glob(f"Dataset{args.raw_id:03d}_*"))), None)
    if src is None:
        sys.exit(f"make_fov_dataset.py: no dataset {args.raw_id} in {raw}")
    dst = raw / f"Dataset{args.id:03d}_{args.name}"
    for label in sorted((src / "labelsTr").glob("*.nii.gz")):
        case = label.name[: -len(".nii.gz")]
        fov_copy(
            src / "imagesTr" / f"{case}_0000.nii.gz",
            label,
            dst / "imagesTr" / f"{case}_0000.nii.gz",
            dst / "labelsTr" / label.name,
            args.factor,
        )
    meta = json.loads((src / "dataset.json").read_text())
    meta["name"] = args.name
    meta["description"] = (
        f"{meta.get('description', '')} (clinical field of view x{args.factor:g})".strip()
    )
    write_text_atomic(json.dumps(meta, indent=2), dst / "dataset.json")
    if args.test:
        for label in sorted((args.test / "labels").glob("*.nii.gz")):
            case = label.name[: -len(".nii.gz")]
            image = args.test / "images" / f"{case}_0000.nii.gz"
            if not image.is_file():  # nnts test folders name the CT as its label
                image = image.with_name(label.name)
            fov_copy(
                image,
                label,
                args.test_out / "images" / image.name,
                args.test_out / "labels" / label.name,
                args.factor,
            )
    print(f"{dst}: {meta['numTraining']} cases; test: {args.test_out}")


if __name__ == "__main__":
    main()
