"""Image file names: the suffix every file we write has, and the suffixes we read."""

from __future__ import annotations

from pathlib import Path

#: the suffix of every image nnts writes (and nnU-Net's ``file_ending`` of our datasets)
IMAGE_SUFFIX = ".nii.gz"
#: the image files nnts reads (``nnts predict``, ``nnts convert folder``)
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def image_suffix(path: Path) -> str | None:
    """The image suffix of ``path`` that nnts reads (case-insensitive), or None."""
    name = path.name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def case_name(path: Path) -> str:
    """The case name of an image file: its name without the suffix and nnU-Net's ``_0000`` channel suffix."""
    stem = path.name[: -len(image_suffix(path) or "")]
    return stem[:-5] if stem.endswith("_0000") else stem


def image_cases(folder: Path) -> list[str]:
    """Case names of the CT files in a folder (as ``nnts predict`` names them). Kept here, not in ``prediction``,
    so that checking a step does not import torch."""
    return sorted(
        case_name(p)
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and image_suffix(p)
    )
