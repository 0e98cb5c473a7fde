"""Checks of a pipeline's inputs that can be made before anything trains (``nnts pipeline``, also ``--dry-run``).

A clash that the student-dataset step would find after the teacher has trained (hours at a real budget), a
label that is not 0/1, a box file for another grid: each is found here, in seconds, with the file named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.files import read_json_file
from ..core.geometry import read_header, read_image
from ..formats.images import IMAGE_SUFFIX
from ..formats.weak_set import WeakSet
from ..nnunet.raw_dataset import find_raw_dataset, training_cases


def check_strong_dataset(dataset: int | str) -> list[str]:
    """The strong raw dataset: one CT channel, labels background/tumor, every case's CT and 0/1 label on one
    grid; returns its case ids."""
    folder = find_raw_dataset(dataset)
    meta = read_json_file(folder / "dataset.json", "dataset.json", InputError)
    channels = meta.get("channel_names", {})
    if len(channels) != 1:
        raise InputError(
            f"{folder / 'dataset.json'}: the strong dataset needs one input channel (the CT), "
            f"has {channels}"
        )
    labels = meta.get("labels", {})
    if sorted(labels.values()) != [0, 1]:
        raise InputError(
            f"{folder / 'dataset.json'}: labels must be background 0 and tumor 1, got {labels}"
        )
    cases = training_cases(folder)
    if not cases:
        raise InputError(f"{folder / 'labelsTr'}: no training case")
    for case in cases:
        ct = folder / "imagesTr" / f"{case}_0000{IMAGE_SUFFIX}"
        label = folder / "labelsTr" / f"{case}{IMAGE_SUFFIX}"
        read_header(ct).require_match(read_header(label), str(label))
        values = np.unique(sitk.GetArrayFromImage(read_image(label)))
        if not np.isin(values, (0, 1)).all():
            raise InputError(
                f"{label}: tumour labels must be 0/1, found values {values[:10].tolist()}"
            )
    return cases


def check_weak_set(weak_dir: Path) -> list[str]:
    """Every weak case's image header and box file (same grid); returns the case ids."""
    weak = WeakSet(weak_dir)
    cases = weak.case_ids()
    if not cases:
        raise InputError(f"{weak.images}: the weak set holds no case")
    for case in cases:
        weak.check_case(case)
    return cases


def check_dataset_ids(dataset_ids: dict[str, int], dataset_names: dict[str, str]) -> None:
    """Each new dataset id is free or already holds this pipeline's dataset (same name: a resumed run)."""
    from ..nnunet.plans import nnunet_dir
    from .config import DATASET_OF

    root = nnunet_dir("nnUNet_raw")
    for role, did in dataset_ids.items():
        name = dataset_names.get(DATASET_OF.get(role, role))
        for other in sorted(root.glob(f"Dataset{did:03d}_*")) if root.is_dir() else []:
            if other.is_dir() and other.name != f"Dataset{did:03d}_{name}":
                raise InputError(
                    f"{other}: dataset id {did} ([datasets] {role}) is taken by another dataset; "
                    "choose a free id"
                )


def preflight(cfg) -> str:
    """All checks of a :class:`~..workflow.config.PipelineConfig`; returns a one-line summary or raises."""
    strong = check_strong_dataset(cfg.strong)
    weak = check_weak_set(cfg.weak_dir)
    both = sorted(set(strong) & set(weak))
    if both:
        raise InputError(
            f"{cfg.weak_dir}: case id(s) {both[:5]} are also strong cases of dataset {cfg.strong}; "
            "a case is strong or weak, not both (rename or drop one)"
        )
    rounds = [cfg.round_role(m, k) for k in range(2, cfg.rounds + 1) for m in cfg.round_models()]
    check_dataset_ids(
        {r: i for r, i in cfg.dataset_ids.items() if r in ("teacher", *cfg.train, *rounds)},
        cfg.dataset_names,
    )
    n_test = 0
    if cfg.test_images:
        from ..prediction.batch import find_cases

        tests = find_cases(cfg.test_images)
        n_test = len(tests)
        if cfg.test_labels:
            labelled = {
                p.name[: -len(IMAGE_SUFFIX)] for p in Path(cfg.test_labels).glob(f"*{IMAGE_SUFFIX}")
            }
            missing = sorted(c.name for c in tests if c.name not in labelled)
            if missing:
                raise InputError(f"{cfg.test_labels}: no label for test case(s) {missing[:5]}")
    return (
        f"checks passed: {len(strong)} strong case(s), {len(weak)} weak case(s), no id shared, "
        f"{n_test} test case(s), dataset ids free"
    )
