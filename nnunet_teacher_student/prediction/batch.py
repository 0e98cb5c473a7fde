"""``nnts predict`` on files: the CTs of a path (image files, DICOM series, folders of either), where each
case's outputs go, and the resumable batch loop."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from ..core.errors import InputError
from ..core.files import write_text_atomic
from ..core.geometry import read_image, write_image_atomic
from ..formats.images import IMAGE_SUFFIXES, case_name, image_suffix
from .case import CasePrediction, predict_case
from .region import RegionPredictor
from .settings import PredictSettings


# --------------------------------------------------------------------------- inputs
@dataclass
class CaseInput:
    """One CT to predict: an image file or a DICOM series."""

    name: str
    path: Path
    series: Any = field(default=None, repr=False)  # dataset_conversion.dicom_series.SeriesFiles

    def read(self) -> sitk.Image:
        if self.series is None:
            image = read_image(self.path)
            if image.GetNumberOfComponentsPerPixel() != 1:
                raise InputError(
                    f"{self.path}: expected a single-channel CT, got "
                    f"{image.GetNumberOfComponentsPerPixel()} components per voxel"
                )
            return image
        from ..dataset_conversion.dicom_series import read_ct_series

        return read_ct_series(self.series).image


def find_cases(root: str | os.PathLike) -> list[CaseInput]:
    """The CTs under ``root``: the file itself; or the image files directly in the folder plus every CT
    DICOM series below it (case name: the series folder's path, ``/`` -> ``__``). Names are unique."""
    root = Path(root)
    if root.is_file():
        if image_suffix(root) is None:
            raise InputError(
                f"{root}: not an image file ({', '.join(IMAGE_SUFFIXES)}) or a DICOM series folder"
            )
        return [CaseInput(case_name(root), root)]
    if not root.is_dir():
        raise InputError(f"{root}: no such file or folder")
    from ..dataset_conversion.dicom_series import scan_dicom_tree

    cases = [
        CaseInput(case_name(p), p)
        for p in sorted(root.iterdir())
        if p.is_file() and not p.name.startswith(".") and image_suffix(p)
    ]
    series, problems = scan_dicom_tree(root)
    ct_series = [s for s in series.values() if s.modality in ("CT", "")]
    by_folder: dict[Path, list] = {}
    for s in ct_series:
        by_folder.setdefault(s.folder, []).append(s)
    for folder, group in sorted(by_folder.items()):
        rel = folder.relative_to(root)
        base = "__".join(rel.parts) if rel.parts else root.resolve().name
        for s in sorted(group, key=lambda s: (s.number, s.uid)):
            name = base if len(group) == 1 else f"{base}_s{s.number or s.uid[-8:]}"
            cases.append(CaseInput(name, folder, s))
    if not cases:
        found = sorted({s.modality or "?" for s in series.values()})
        raise InputError(
            f"{root}: no CT found (image files {', '.join(IMAGE_SUFFIXES)} or CT DICOM series)"
            + (f"; DICOM series of modality {found}" if found else "")
            + (f"; {problems[0]}" if problems else "")
        )
    names = [c.name for c in cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(
            f"{root}: several inputs map to the same case name(s) {dupes[:5]}; rename them"
        )
    return cases


# --------------------------------------------------------------------------- files
@dataclass
class CaseOutput:
    mask: Path
    report: Path
    probability: Path

    def done(self, save_probabilities: bool) -> bool:
        return (
            self.mask.is_file()
            and self.report.is_file()
            and (self.probability.is_file() or not save_probabilities)
        )


def case_output(output: Path, name: str, single_file: bool) -> CaseOutput:
    """Where a case's files go: ``output`` itself (a file name with an image suffix) or
    ``output/<case>.nii.gz``; the report and probability map lie beside the mask."""
    if single_file:
        suffix = image_suffix(output) or ""
        stem = output.name[: -len(suffix)]
        return CaseOutput(
            output,
            output.with_name(stem + ".json"),
            output.with_name(stem + "_probability" + suffix),
        )
    return CaseOutput(
        output / f"{name}.nii.gz", output / f"{name}.json", output / f"{name}_probability.nii.gz"
    )


@dataclass
class PredictSummary:
    predicted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def predict_path(
    input: str | os.PathLike,
    output: str | os.PathLike,
    model_folder: str | os.PathLike,
    settings: PredictSettings | None = None,
    progress: bool = True,
    num_parts: int = 1,
    part_id: int = 0,
) -> PredictSummary:
    """Predict a CT file, a DICOM series folder, or a folder of either, with ``settings`` (default
    :class:`PredictSettings`).

    ``output``: a file name with an image suffix (one case), or a folder receiving ``<case>.nii.gz`` and
    ``<case>.json`` (and ``<case>_probability.nii.gz``). ``num_parts``/``part_id``: only this part of a folder's
    cases (see :mod:`.sharding`). Cases whose outputs exist are skipped unless
    ``overwrite``; files are written atomically, the report last. A case that fails with bad input is
    reported and the others go on; :class:`InputError` at the end names the failures.
    """
    from tqdm import tqdm

    s = settings if settings is not None else PredictSettings()
    output = Path(output)
    cases = select_cases(input, num_parts, part_id)
    single_file = image_suffix(output) is not None
    if single_file and len(cases) > 1:
        raise InputError(f"{input}: holds {len(cases)} CTs; give a folder as output, not {output}")
    summary = PredictSummary()
    remove_stale_temp_files(output, single_file)
    todo = []
    for case in cases:
        out = case_output(output, case.name, single_file)
        if not s.overwrite and out.done(s.save_probabilities):
            summary.skipped.append(case.name)
        else:
            todo.append((case, out))
    predictor = None
    bar = tqdm(todo, desc="nnts predict", unit="case", disable=not progress or not todo)
    for case, out in bar:
        bar.set_postfix_str(case.name)
        try:
            t0 = time.perf_counter()
            ct = case.read()
            t_read = time.perf_counter() - t0
            if predictor is None:  # only load the model when there is work
                predictor = load_predictor(model_folder, s, progress)
            result = predict_case(predictor, ct, s, what=str(case.path), announce=progress)
        except InputError as e:
            if len(cases) == 1:
                raise
            summary.failed[case.name] = str(e)
            bar.write(f"nnts predict: {case.name}: {e}")
            continue
        report = write_case(case, out, ct, result, t_read, s.save_probabilities)
        for w in report["warnings"]:
            bar.write(f"nnts predict: {case.name}: warning: {w}")
        summary.predicted.append(case.name)
    if summary.failed:
        names = ", ".join(f"{k} ({v})" for k, v in list(summary.failed.items())[:5])
        raise InputError(
            f"{len(summary.failed)} of {len(cases)} case(s) failed: {names}; the others are in "
            f"{output} (rerun to retry only the failed ones)"
        )
    return summary


def select_cases(input: str | os.PathLike, num_parts: int, part_id: int) -> list[CaseInput]:
    """The CTs of ``input`` (:func:`find_cases`), only part ``part_id`` of ``num_parts``: every
    ``num_parts``-th case by name, as nnts pseudo-label and nnUNetv2_predict share."""
    from ..core.sharding import part_cases

    cases = find_cases(input)
    if num_parts > 1:
        mine = set(part_cases([c.name for c in cases], num_parts, part_id))
        cases = [c for c in cases if c.name in mine]
    return cases


def remove_stale_temp_files(output: Path, single_file: bool) -> None:
    """Delete our temporary files in the output folder: atomic writes cut off by a kill."""
    folder, ours = (
        (output.parent, f".{output.name.split('.')[0]}.*.tmp*")
        if single_file
        else (output, ".*.tmp*")
    )
    for stale in folder.glob(ours) if folder.is_dir() else []:
        stale.unlink()


def load_predictor(
    model_folder: str | os.PathLike, settings: PredictSettings, progress: bool
) -> RegionPredictor:
    """The model with ``settings``' folds, checkpoint, device, mirroring and step size (``progress``: nnU-Net's
    bar over the sliding window's tiles)."""
    s = settings
    return RegionPredictor(
        model_folder, s.folds, s.checkpoint, s.device, s.tta, s.step_size, progress=progress
    )


def write_case(
    case: CaseInput,
    out: CaseOutput,
    ct: sitk.Image,
    result: CasePrediction,
    t_read: float,
    save_probabilities: bool,
) -> dict[str, Any]:
    """Write a predicted case's mask (and probability), then its report last; returns the report."""
    t1 = time.perf_counter()
    out.report.unlink(missing_ok=True)  # a report marks a finished case: remove a stale one first
    write_image_atomic(result.mask_image(ct), out.mask)
    if save_probabilities:
        write_image_atomic(result.probability_image(ct), out.probability)
    report = {
        "case": case.name,
        "input": str(case.path),
        "output": str(out.mask),
        "probability": str(out.probability) if save_probabilities else None,
        **result.report,
    }
    report["timings_s"] = {
        "read": round(t_read, 3),
        **report["timings_s"],
        "write": round(time.perf_counter() - t1, 3),
    }
    write_text_atomic(json.dumps(report, indent=1) + "\n", out.report)
    return report
