"""Teacher datasets: CT (``_0000``) + box mask (``_0001``) derived from each strong case's own mask.

Weak cases (CT + boxes) go to ``imagesWeak/`` of the same dataset in the same two-channel form:
the input folder for ``nnUNetv2_predict`` / ``nnts pseudo-label``. Test cases never enter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from ..core import dataset_keys as keys
from ..core.defaults import case_seed
from ..core.errors import InputError
from ..core.geometry import read_image, read_label, spacing_zyx
from ..formats.annotator import Annotator, annotator_from
from ..formats.box_channel import (
    BOX_CHANNEL,
    BOX_MODE_KEY,
    CT_CHANNEL,
    channel_file,
    channel_suffix,
)
from ..formats.boxes import boxes_from_mask, box_mask
from ..formats.images import IMAGE_SUFFIX
from ..formats.weak_set import WeakSet
from ..nnunet.raw_dataset import (
    find_raw_dataset,
    link_or_copy,
    staged_dataset,
    training_cases,
    write_dataset_json,
    write_mask,
)
from .settings import TeacherDatasetSettings

TEACHER_CHANNELS = {"0": "CT", "1": "noNorm"}
WEAK_FOLDER = "imagesWeak"


def make_teacher_dataset(settings: TeacherDatasetSettings) -> Path:
    """Write ``Dataset{dataset_id}_{name}`` from the strong raw dataset ``strong``; returns its folder.

    Each strong case's ``_0001`` boxes are drawn from its mask by ``annotator`` (default: the default
    annotator model), which is recorded in
    ``dataset.json`` so the box teacher draws its online boxes the same way. Strong cases without
    tumour are left out (a box teacher has nothing to learn from them). The manifest's test cases are
    left out and its patients keep the folds (``splits_final.json``)."""
    from ..nnunet.folds import install_splits, load_manifest_cases, make_splits, write_splits

    s = settings
    annotator = annotator_from(s.annotator)
    src = find_raw_dataset(s.strong)
    meta = load_manifest_cases(s.manifest)
    exclude = set(s.exclude) | {c for c, v in meta.items() if v.get("split") == "test"}
    cases = [c for c in training_cases(src) if c not in exclude]
    weak = WeakSet(Path(s.weak_dir)) if s.weak_dir else None
    weak_cases = weak.case_ids() if weak else []
    with staged_dataset(s.dataset_id, s.name, s.overwrite) as out:
        kept, without_tumour = _write_strong_cases(s, src, out, cases, annotator)
        for case in tqdm(weak_cases, desc="teacher dataset (weak)", unit="case"):
            if case in exclude:
                continue
            ct, boxset = weak.read_case(case)
            link_or_copy(weak.image_path(case), out / WEAK_FOLDER / channel_file(case, CT_CHANNEL))
            write_mask(boxset.mask(), ct, out / WEAK_FOLDER / channel_file(case, BOX_CHANNEL))
        if not kept:
            raise InputError(f"{src}: no training case with tumour left to build a teacher dataset")
        patients = {c: str(v.get("patient", c)) for c, v in meta.items()}
        write_splits(out, make_splits(kept, [], patients, s.n_folds, s.seed))
        write_dataset_json(
            out,
            TEACHER_CHANNELS,
            {"background": 0, "tumor": 1},
            len(kept),
            name=s.name,
            description=f"teacher dataset from {src.name}: CT + box mask "
            f"(mode {s.box_mode}, {annotator.describe()}, seed {s.seed})",
            **{
                keys.SOURCE: src.name,
                keys.ANNOTATOR: annotator.to_dict(),
                BOX_MODE_KEY: s.box_mode,
                keys.WITHOUT_TUMOUR: without_tumour,
            },
        )
    return install_splits(s.dataset_id)


def _write_strong_cases(
    s: TeacherDatasetSettings, src: Path, out: Path, cases: list[str], annotator: Annotator
) -> tuple[list[str], list[str]]:
    """Write each strong case with tumour (CT, boxes drawn from its mask as ``_0001``, label); returns the
    cases kept and those left out without tumour."""
    kept, without_tumour = [], []
    for i, case in enumerate(tqdm(cases, desc="teacher dataset (strong)", unit="case")):
        ct_path = src / "imagesTr" / f"{case}_0000{IMAGE_SUFFIX}"
        ct = read_image(ct_path)
        label = read_label(src / "labelsTr" / f"{case}{IMAGE_SUFFIX}", ct)
        if not label.any():
            without_tumour.append(case)
            continue
        kept.append(case)
        boxes = boxes_from_mask(
            label,
            mode=s.box_mode,
            seed=case_seed(s.seed, i),
            annotator=annotator,
            spacing_zyx=spacing_zyx(ct),
        )
        link_or_copy(ct_path, out / "imagesTr" / channel_file(case, CT_CHANNEL))
        write_mask(
            box_mask(boxes, label.shape), ct, out / "imagesTr" / channel_file(case, BOX_CHANNEL)
        )
        link_or_copy(
            src / "labelsTr" / f"{case}{IMAGE_SUFFIX}",
            out / "labelsTr" / f"{case}{IMAGE_SUFFIX}",
        )
    return kept, without_tumour


#: voxels sampled per case for the box window, with nnU-Net's fingerprint seed (as its foreground sampling)
BOX_WINDOW_SAMPLES, BOX_WINDOW_SEED = 10000, 1234
BOX_WINDOW_KEY = keys.BOX_WINDOW


def box_intensity_properties(dataset_folder: Path) -> dict:
    """CT statistics, with the keys of nnU-Net's fingerprint, of the voxels inside the boxes of every case
    of a teacher dataset (strong cases in ``imagesTr``, weak ones in ``imagesWeak``).

    nnU-Net fits its CT window (clip to the 0.5-99.5 percentiles, then z-score) to the tumour voxels of the
    training cases. When those few strong cases hold no ground-glass tumour (one site, solid tumours), the
    window starts near -230 HU: lung and ground-glass come out identical, and the teacher cannot see the
    part-solid lesions its boxes frame on the weak cases of other sites. The box voxels (tumour and the lung
    around it, on every case the teacher will see) give a window that keeps both."""
    rng = np.random.default_rng(BOX_WINDOW_SEED)
    samples = []
    for folder in (dataset_folder / "imagesTr", dataset_folder / WEAK_FOLDER):
        for box_file in sorted(folder.glob(f"*{channel_suffix(BOX_CHANNEL)}{IMAGE_SUFFIX}")):
            ct_file = box_file.with_name(
                box_file.name.replace(
                    channel_suffix(BOX_CHANNEL) + IMAGE_SUFFIX,
                    channel_suffix(CT_CHANNEL) + IMAGE_SUFFIX,
                )
            )
            values = sitk.GetArrayFromImage(read_image(ct_file))[
                sitk.GetArrayFromImage(read_image(box_file)) > 0
            ]
            if values.size:
                samples.append(
                    rng.choice(values, min(BOX_WINDOW_SAMPLES, values.size), replace=False)
                )
    if not samples:
        raise InputError(
            f"{dataset_folder}: no box voxels in imagesTr/{WEAK_FOLDER} to fit the CT window to"
        )
    v = np.concatenate(samples).astype(np.float64)
    return {
        "max": float(v.max()),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "min": float(v.min()),
        "percentile_00_5": float(np.percentile(v, 0.5)),
        "percentile_99_5": float(np.percentile(v, 99.5)),
        "std": float(v.std()),
    }


def use_box_window(dataset_id: int) -> dict:
    """Set the CT channel's intensity properties in the teacher dataset's ``dataset_fingerprint.json``
    (written by ``nnUNetv2_extract_fingerprint``) to :func:`box_intensity_properties`, before
    ``nnUNetv2_plan_experiment`` copies them into the plans; returns them. nnU-Net's own fingerprint is kept
    beside it as ``dataset_fingerprint.nnunet.json``."""
    import json

    from ..core.files import write_text_atomic
    from ..nnunet.plans import nnunet_dir

    raw = find_raw_dataset(dataset_id)
    path = nnunet_dir("nnUNet_preprocessed") / raw.name / "dataset_fingerprint.json"
    if not path.is_file():
        raise InputError(
            f"{path}: no fingerprint (run nnUNetv2_extract_fingerprint -d {dataset_id} first)"
        )
    doc = json.loads(path.read_text())
    if not doc.get(BOX_WINDOW_KEY):  # nnU-Net's own, freshly extracted: keep a copy
        write_text_atomic(
            json.dumps(doc, indent=1), path.with_name("dataset_fingerprint.nnunet.json")
        )
    props = box_intensity_properties(raw)
    doc["foreground_intensity_properties_per_channel"]["0"] = props
    doc[BOX_WINDOW_KEY] = True
    write_text_atomic(json.dumps(doc, indent=1), path)
    return props
