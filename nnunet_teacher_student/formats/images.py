"""Image file names: the suffix every file we write has, and the suffixes we read."""
from __future__ import annotations

from pathlib import Path

#: the suffix of every image nnts writes (and nnU-Net's ``file_ending`` of our datasets)
IMAGE_SUFFIX = ".nii.gz"
#: the image files nnts reads (``nnts predict``, ``nnts convert folder``)
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def image_cases(folder: Path) -> list[str]:
    """Case names of the CT files in a folder (``_0000`` channel suffix dropped, as ``nnts predict`` does).
    Written out here so that checking a step does not import torch (as ``predict`` does)."""
    names = []
    for p in folder.iterdir():
        suffix = next((s for s in IMAGE_SUFFIXES if p.name.lower().endswith(s)), None)
        if p.is_file() and not p.name.startswith(".") and suffix:
            stem = p.name[: -len(suffix)]
            names.append(stem[:-5] if stem.endswith("_0000") else stem)
    return sorted(names)
