"""Scenarios like the paper's: few strong cases, the rest of the pool as weak (boxed) cases.

From the training cases of a strong raw dataset, ``strong_count`` are kept as a new strong dataset
(seeded choice of whole patients; test cases of the manifest never enter) and the others become a
weak set whose boxes are derived from their masks by the seeded annotator model; their true masks are kept in
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
from ..formats.boxes import BoxSet, boxes_from_mask
from ..formats.images import IMAGE_SUFFIX
from ..formats.weak_set import WeakSet
from ..nnunet.raw_dataset import find_raw_dataset, link_or_copy, staged_dataset, training_cases
from .settings import ScenarioSettings

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


def make_scenario(settings: ScenarioSettings) -> dict:
    """Write the new strong dataset ``Dataset{new_strong_id}_{name}`` and the weak set ``out_dir``;
    returns the scenario record (also written to ``out_dir/scenario.json``). The weak boxes are drawn by
    ``annotator`` (default: the default annotator model). ``strong_sites``
    (the manifest's ``site`` of each case): the strong cases come from these sites only, as in the paper,
    where the few strong cases came from fewer sites than the weak ones."""
    from ..nnunet.folds import load_manifest_cases

    s = settings
    src = find_raw_dataset(s.strong)
    meta = load_manifest_cases(s.manifest)
    test_cases = sorted(c for c, v in meta.items() if v.get("split") == "test")
    pool = [c for c in training_cases(src) if c not in set(test_cases)]
    if not 1 <= s.strong_count < len(pool):
        raise InputError(
            f"--strong-count must be in 1..{len(pool) - 1} ({src.name} has {len(pool)} training "
            f"case(s) outside the test set), got {s.strong_count}"
        )
    annotator = annotator_from(s.annotator)
    out = Path(s.out_dir)
    if out.exists() and any(out.iterdir()) and not s.overwrite:
        raise InputError(f"{out}: exists and is not empty; pass --overwrite to replace it")
    patients = {c: str(v.get("patient", c)) for c, v in meta.items()}
    chosen = _choose_strong_cases(s, pool, meta, patients)
    weak_cases = [c for c in pool if c not in set(chosen)]
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging.", dir=out.parent))
    try:
        with staged_dataset(
            s.new_strong_id, s.name, s.overwrite
        ) as ds:  # refuses an existing dataset first
            weak = WeakSet(stage)
            n_boxes, volumes = _write_weak_cases(s, src, weak, weak_cases, annotator)
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
            volumes.update(_link_strong_cases(src, ds, chosen))
            record = {
                "source_dataset": src.name,
                "strong_dataset": f"Dataset{s.new_strong_id:03d}_{s.name}",
                "weak_dir": str(out.resolve()),
                "strong_count_requested": s.strong_count,
                "strong_count": len(chosen),
                "strong_cases": chosen,
                "weak_cases": weak_cases,
                "test_cases_excluded": test_cases,
                "patients_grouped": bool(meta),
                "seed": s.seed,
                "annotator": annotator.to_dict(),
                "box_mode": s.box_mode,
                "manifest": str(Path(s.manifest).resolve()) if s.manifest else None,
                "size_balance": s.size_balance,
                "strong_sites": sorted(s.strong_sites) if s.strong_sites else None,
                "tumour_volume_ml": {c: round(v, 4) for c, v in sorted(volumes.items())},
            }
            write_text_atomic(json.dumps(record, indent=1), stage / SCENARIO_FILE)
            _write_dataset_json(s, ds, src, record)
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return record


def _choose_strong_cases(
    s: ScenarioSettings, pool: list[str], meta: dict[str, dict], patients: dict[str, str]
) -> list[str]:
    """:func:`choose_strong` over the pool, or over its cases of ``strong_sites``."""
    candidates = pool
    if s.strong_sites:
        candidates = [c for c in pool if meta.get(c, {}).get("site") in set(s.strong_sites)]
        if len(candidates) < s.strong_count:
            raise InputError(
                f"{s.manifest or 'no manifest'}: {len(candidates)} pool case(s) from site(s) "
                f"{sorted(s.strong_sites)}, fewer than the {s.strong_count} strong cases asked"
            )
    return choose_strong(candidates, s.strong_count, patients, s.seed)


def _write_weak_cases(
    s: ScenarioSettings, src: Path, weak: WeakSet, cases: list[str], annotator: Annotator
) -> tuple[dict[str, int], dict[str, float]]:
    """Write each case as a weak case (CT, true label, boxes drawn from its mask, box mask); returns the
    boxes and the tumour volume (ml) of each."""
    n_boxes, volumes = {}, {}
    for i, case in enumerate(
        tqdm(cases, desc="scenario (weak cases)", unit="case", disable=not s.progress)
    ):
        files = _image_files(src, case)
        if len(files) != 1:
            raise InputError(
                f"{src / 'imagesTr'}: case {case} needs exactly one CT channel, found {len(files)}"
            )
        ct = read_image(files[0])
        label_path = src / "labelsTr" / f"{case}{IMAGE_SUFFIX}"
        label = read_label(label_path, ct)
        boxset = BoxSet(
            Geometry.of(ct),
            boxes_from_mask(
                label,
                s.box_mode,
                seed=case_seed(s.seed, i),
                annotator=annotator,
                spacing_zyx=spacing_zyx(ct),
            ),
        )
        link_or_copy(label_path, weak.label_path(case))
        boxset.save(weak.boxes_path(case))
        write_image_atomic(boxset.mask_image(), weak.boxmask_path(case))
        link_or_copy(files[0], weak.image_path(case))  # last: the case exists once its image does
        n_boxes[case] = len(boxset.boxes)
        volumes[case] = _volume_ml(label, Geometry.of(ct))
    return n_boxes, volumes


def _link_strong_cases(src: Path, ds: Path, cases: list[str]) -> dict[str, float]:
    """Link (or copy) the strong cases into the new dataset; returns their tumour volumes (ml)."""
    volumes = {}
    for case in cases:
        label_path = src / "labelsTr" / f"{case}{IMAGE_SUFFIX}"
        label = read_image(label_path)
        volumes[case] = _volume_ml(sitk.GetArrayFromImage(label) > 0, Geometry.of(label))
        for f in _image_files(src, case):
            link_or_copy(f, ds / "imagesTr" / f.name)
        link_or_copy(label_path, ds / "labelsTr" / f"{case}{IMAGE_SUFFIX}")
    return volumes


def _write_dataset_json(s: ScenarioSettings, ds: Path, src: Path, record: dict) -> None:
    """The source's ``dataset.json`` with the new name, its strong cases and the scenario record."""
    src_json = json.loads((src / "dataset.json").read_text())
    n_strong, n_weak = record["strong_count"], len(record["weak_cases"])
    dataset_json = {
        **src_json,
        "name": s.name,
        "numTraining": n_strong,
        keys.SCENARIO: record,
        "description": f"scenario from {src.name}: {n_strong} strong cases "
        f"(seed {s.seed}); the other {n_weak} are weak in {Path(s.out_dir)}",
    }
    (ds / "dataset.json").write_text(json.dumps(dataset_json, indent=1))
