"""MSD Task06 lung patches (shizoda/data, msd/lung_2mm) -> a benchmark pool for ``nnts benchmark --pool-from``.

The repository ships two of its three patch files: ``val_patches.h5`` and ``test_patches.h5``, 130 axial
48 x 48 patches each at 2 mm (intensities already scaled to [0, 1]), 10 patches per patient in the order its
README lists the patients (13 per file). The val file becomes the pool (strong or weak in a run), the test file
the held-out test set: a split drawn by the data's authors, never by us. Each patch is one case, a 1-slice
volume; ``manifest.json`` names its patient, so scenarios choose whole patients and statistics can be taken per
patient.

    python benchmarks/real_ct/msd_pool.py /work/realdata/msd /work/realdata/msd_pool
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

PATCHES_PER_PATIENT = 10
SPACING_MM = 2.0


def patients(readme: str, split: str) -> list[str]:
    """The patient ids the README lists for ``split`` (Val / Test), in order."""
    block = re.search(rf"#### {split}: \d+[^\n]*\n[^\[]*\[([^\]]*)\]", readme)
    if not block:
        sys.exit(f"README.md: no patient list for {split}")
    return [p.strip(" '").removesuffix(".nii.gz") for p in block.group(1).split(",")]


def read_patches(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        images, labels = (
            f["images"][:, 0].astype(np.float32),
            (f["labels"][:, 0] > 0.5).astype(np.uint8),
        )
    return images, labels


def write_case(image: np.ndarray, label: np.ndarray, image_path: Path, label_path: Path) -> None:
    for array, path in ((image, image_path), (label, label_path)):
        img = sitk.GetImageFromArray(array[None])
        img.SetSpacing((SPACING_MM,) * 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(img, str(path), useCompression=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "src", type=Path, help="folder with val_patches.h5, test_patches.h5 and README.md"
    )
    ap.add_argument("out", type=Path, help="the pool folder to write (refused when it exists)")
    a = ap.parse_args()
    if a.out.exists():
        sys.exit(f"{a.out}: exists; remove it to write the pool anew")
    readme = (a.src / "README.md").read_text()
    tmp = a.out.with_name(a.out.name + ".part")
    cases = {}
    for split, file, where in (
        ("train", "val_patches.h5", "dataset"),
        ("test", "test_patches.h5", "test"),
    ):
        images, labels = read_patches(a.src / file)
        ids = patients(readme, "Val" if split == "train" else "Test")
        if len(images) != PATCHES_PER_PATIENT * len(ids):
            sys.exit(f"{a.src / file}: {len(images)} patches for {len(ids)} patients")
        for k, (image, label) in enumerate(zip(images, labels)):
            patient = ids[k // PATCHES_PER_PATIENT]
            case = f"{patient}_p{k % PATCHES_PER_PATIENT}"
            if split == "train":
                write_case(
                    image,
                    label,
                    tmp / where / "imagesTr" / f"{case}_0000.nii.gz",
                    tmp / where / "labelsTr" / f"{case}.nii.gz",
                )
            else:
                write_case(
                    image,
                    label,
                    tmp / where / "images" / f"{case}.nii.gz",
                    tmp / where / "labels" / f"{case}.nii.gz",
                )
            cases[case] = {
                "patient": patient,
                "site": "msd",
                "dataset": "msd-lung-2mm-patches",
                "split": split,
                "tumour_pixels": int(label.sum()),
            }
    n_train = sum(c["split"] == "train" for c in cases.values())
    (tmp / "dataset" / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "CT"},
                "labels": {"background": 0, "tumour": 1},
                "numTraining": n_train,
                "file_ending": ".nii.gz",
                "name": "MSDLungPatches",
            },
            indent=1,
        )
    )
    (tmp / "manifest.json").write_text(json.dumps({"cases": cases}, indent=1))
    tmp.rename(a.out)
    print(
        f"wrote {a.out}: {n_train} pool patches, {len(cases) - n_train} test patches "
        f"({sum(c['tumour_pixels'] == 0 for c in cases.values())} tumour-free)"
    )


if __name__ == "__main__":
    main()
