"""Scenarios like the paper's: few strong cases, the rest of the pool as weak (boxed) cases.

From the training cases of a strong raw dataset, ``strong_count`` are kept as a new strong dataset
(seeded choice of whole patients; test cases of the manifest never enter) and the others become a
weak set whose boxes are derived from their masks with seeded jitter; their true masks are kept in
``labels/`` so that pseudo-label quality can be measured. ``scenario.json`` (in the weak set and in
the new dataset's ``dataset.json`` as ``nnts_scenario``) records every choice. Size balancing is not
applied here: it is recorded and passed on to ``make-student-dataset --size-balance``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from ..core import dataset_keys as keys
from ..core.defaults import case_seed
from ..core.errors import InputError
from ..core.files import write_text_atomic
from ..core.geometry import Geometry, read_image, write_image_atomic, read_label, spacing_zyx
from ..formats.annotator import Annotator, annotator_from
from ..formats.boxes import BoxMode, BoxSet, boxes_from_mask
from ..formats.images import IMAGE_SUFFIX
from ..formats.weak_set import WeakSet
from ..nnunet.raw_dataset import find_raw_dataset, link_or_copy, staged_dataset, training_cases

SCENARIO_FILE = "scenario.json"


def choose_strong(
    cases: list[str], strong_count: int, patients: dict[str, str], seed: int = 0
) -> list[str]:
    """Seeded choice of ``strong_count`` cases made of whole patients: patients are taken in a shuffled
    order, skipping any that would overshoot; fewer cases come back only when no combination fits."""
    groups: dict[str, list[str]] = {}
    for c in cases:
        groups.setdefault(patients.get(c, c), []).append(c)
    order = sorted(groups)
    np.random.default_rng(seed).shuffle(order)
    chosen: list[str] = []
    for patient in order:
        if len(chosen) + len(groups[patient]) <= strong_count:
            chosen.extend(groups[patient])
        if len(chosen) == strong_count:
            break
    return sorted(chosen)


def _image_files(folder: Path, case: str) -> list[Path]:
    """``imagesTr/<case>_XXXX.nii.gz`` channel files of a case."""
    return sorted(
        p for p in (folder / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9]{IMAGE_SUFFIX}")
    )


def _volume_ml(mask: np.ndarray, geometry: Geometry) -> float:
    return float(mask.sum() * np.prod(geometry.spacing) / 1000.0)


def make_scenario(
    strong: int | str,
    out_dir: str | Path,
    strong_count: int,
    new_strong_id: int,
    name: str,
    seed: int = 0,
    jitter: int = 0,
    box_mode: BoxMode = "lesion",
    manifest: str | Path | None = None,
    size_balance: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    annotator: Annotator | str | dict | None = None,
    strong_sites: list[str] | None = None,
) -> dict:
    """Write the new strong dataset ``Dataset{new_strong_id}_{name}`` and the weak set ``out_dir``;
    returns the scenario record (also written to ``out_dir/scenario.json``). The weak boxes are drawn by
    ``annotator`` (default model; ``jitter > 0`` without one: the absolute stress setting). ``strong_sites``
    (the manifest's ``site`` of each case): the strong cases come from these sites only, as in the paper,
    where the few strong cases came from fewer sites than the weak ones."""
    from ..nnunet.folds import load_manifest_cases

    src = find_raw_dataset(strong)
    meta = load_manifest_cases(manifest)
    test_cases = sorted(c for c, v in meta.items() if v.get("split") == "test")
    pool = [c for c in training_cases(src) if c not in set(test_cases)]
    if not 1 <= strong_count < len(pool):
        raise InputError(
            f"--strong-count must be in 1..{len(pool) - 1} ({src.name} has {len(pool)} training "
            f"case(s) outside the test set), got {strong_count}"
        )
    if jitter < 0:
        raise InputError(f"--jitter must be >= 0, got {jitter}")
    annotator = annotator_from(jitter, annotator)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out}: exists and is not empty; pass --overwrite to replace it")
    patients = {c: str(v.get("patient", c)) for c, v in meta.items()}
    candidates = pool
    if strong_sites:
        candidates = [c for c in pool if meta.get(c, {}).get("site") in set(strong_sites)]
        if len(candidates) < strong_count:
            raise InputError(
                f"{manifest or 'no manifest'}: {len(candidates)} pool case(s) from site(s) "
                f"{sorted(strong_sites)}, fewer than the {strong_count} strong cases asked"
            )
    chosen = choose_strong(candidates, strong_count, patients, seed)
    weak_cases = [c for c in pool if c not in set(chosen)]
    volumes: dict[str, float] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging.", dir=out.parent))
    try:
        with staged_dataset(
            new_strong_id, name, overwrite
        ) as ds:  # refuses an existing dataset first
            weak = WeakSet(stage)
            n_boxes = {}
            for i, case in enumerate(
                tqdm(weak_cases, desc="scenario (weak cases)", unit="case", disable=not progress)
            ):
                files = _image_files(src, case)
                if len(files) != 1:
                    raise InputError(
                        f"{src / 'imagesTr'}: case {case} needs exactly one CT channel, "
                        f"found {len(files)}"
                    )
                ct = read_image(files[0])
                label_path = src / "labelsTr" / f"{case}{IMAGE_SUFFIX}"
                label = read_label(label_path, ct)
                boxset = BoxSet(
                    Geometry.of(ct),
                    boxes_from_mask(
                        label,
                        box_mode,
                        seed=case_seed(seed, i),
                        annotator=annotator,
                        spacing_zyx=spacing_zyx(ct),
                    ),
                )
                link_or_copy(label_path, weak.label_path(case))
                boxset.save(weak.boxes_path(case))
                write_image_atomic(boxset.mask_image(), weak.boxmask_path(case))
                link_or_copy(
                    files[0], weak.image_path(case)
                )  # last: the case exists once its image does
                n_boxes[case] = len(boxset.boxes)
                volumes[case] = _volume_ml(label, Geometry.of(ct))
            weak.write_metadata(
                {
                    c: {
                        "site": meta.get(c, {}).get("site", src.name),
                        "patient": patients.get(c, c),
                        "source": src.name,
                        "n_boxes": n_boxes[c],
                    }
                    for c in weak_cases
                }
            )
            for case in chosen:
                label_path = src / "labelsTr" / f"{case}{IMAGE_SUFFIX}"
                label = read_image(label_path)
                volumes[case] = _volume_ml(sitk.GetArrayFromImage(label) > 0, Geometry.of(label))
                for f in _image_files(src, case):
                    link_or_copy(f, ds / "imagesTr" / f.name)
                link_or_copy(label_path, ds / "labelsTr" / f"{case}{IMAGE_SUFFIX}")
            record = {
                "source_dataset": src.name,
                "strong_dataset": f"Dataset{new_strong_id:03d}_{name}",
                "weak_dir": str(out.resolve()),
                "strong_count_requested": strong_count,
                "strong_count": len(chosen),
                "strong_cases": chosen,
                "weak_cases": weak_cases,
                "test_cases_excluded": test_cases,
                "patients_grouped": bool(meta),
                "seed": seed,
                "jitter": jitter,
                "annotator": annotator.to_dict(),
                "box_mode": box_mode,
                "manifest": str(Path(manifest).resolve()) if manifest else None,
                "size_balance": size_balance,
                "strong_sites": sorted(strong_sites) if strong_sites else None,
                "tumour_volume_ml": {c: round(v, 4) for c, v in sorted(volumes.items())},
            }
            write_text_atomic(json.dumps(record, indent=1), stage / SCENARIO_FILE)
            src_json = json.loads((src / "dataset.json").read_text())
            dataset_json = {
                **src_json,
                "name": name,
                "numTraining": len(chosen),
                keys.SCENARIO: record,
                "description": f"scenario from {src.name}: {len(chosen)} strong cases "
                f"(seed {seed}); the other {len(weak_cases)} are weak in {out}",
            }
            (ds / "dataset.json").write_text(json.dumps(dataset_json, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return record
