"""Where converters write: an nnU-Net raw dataset (strong) or a weak set (CT + boxes).

Resume rule (the same for both outputs). The output folder holds a hidden ``.nnts_convert/``
folder with ``run.json`` (the options of the run that created it) and one record per finished
case, written after the case's files. The completion marker is written last: ``dataset.json``
for a raw dataset, ``cases.json`` for a weak set.

* folder absent or empty: a fresh conversion;
* folder with ``.nnts_convert/`` but no completion marker (an interrupted run): the run resumes,
  cases with a record and their files are kept and reported as "resumed"; the options must be
  the ones of the interrupted run; when no case was finished (a run that converted nothing, say
  for a wrong option), the folder is replaced, whatever its options;
* a finished output (completion marker present), a raw dataset with the same id under another
  name, or a folder that is not ours: refused unless ``--overwrite``, which deletes it first
  (a non-empty folder that is not a conversion output is never deleted).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.files import write_text_atomic
from ..core.geometry import Geometry, array_to_image, write_image_atomic
from ..formats.boxes import BoxSet
from ..formats.images import IMAGE_SUFFIX
from ..formats.weak_set import WeakSet
from .runner import SUMMARY_NAME, CaseResult, Summary, TaskReport
from .settings import ConversionSettings
from .splits import build_manifest, check_test_fraction, write_manifest

RECORDS = ".nnts_convert"
SUMMARY = SUMMARY_NAME
MANIFEST = "manifest.json"


def _check_case_id(case: str) -> None:
    if not case or case.startswith(".") or "/" in case or "\\" in case or case.strip() != case:
        raise InputError(f"invalid case id {case!r} (must be a plain file name)")


@dataclass(frozen=True)
class _Output:
    """Common part: per-case records and the run's options."""

    root: Path
    created: Path | None = (
        None  # the topmost folder this run created (removed again if nothing is converted)
    )
    settings: ConversionSettings = ConversionSettings()  # the split's seed and test fraction

    @property
    def records_dir(self) -> Path:
        return self.root / RECORDS

    def record_path(self, case: str) -> Path:
        return self.records_dir / f"{case}.json"

    def case_files(self, case: str) -> list[Path]:
        raise NotImplementedError

    def done(self, case: str) -> dict | None:
        """The record of a finished case (its files all present), else None."""
        rec = self.record_path(case)
        if rec.is_file() and all(p.is_file() for p in self.case_files(case)):
            try:
                return json.loads(rec.read_text())
            except json.JSONDecodeError:
                return None
        return None

    def resumed(self, case: str) -> TaskReport | None:
        """A finished case's report ("resumed", with its record), or None when it is still to convert."""
        record = self.done(case)
        return None if record is None else TaskReport([CaseResult(case, "resumed", info=record)])

    def _write_record(self, case: str, info: dict[str, Any]) -> None:
        write_text_atomic(json.dumps(info, indent=1, sort_keys=True), self.record_path(case))

    def records(self) -> dict[str, dict]:
        """Records of all finished cases, from this run and from interrupted earlier runs."""
        out = {}
        for rec in sorted(self.records_dir.glob("*.json")):
            case = rec.name[: -len(".json")]
            info = self.done(case)
            if info is not None:
                out[case] = info
        return out

    def discard_if_empty(self) -> bool:
        """No finished case: remove the output folder (it holds only this run's bookkeeping and empty
        sub-folders), so that a failed conversion leaves nothing behind; True if removed."""
        if self.records() or any(
            p.is_file() and RECORDS not in p.relative_to(self.root).parts
            for p in self.root.rglob("*")
        ):
            return False
        if self.created:
            shutil.rmtree(self.created)
        else:  # the folder was there (empty) before this run: empty it again
            for child in self.root.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        return True

    def write_manifest_and_summary(self, summary: Summary) -> dict:
        """Patient-stratified split over all finished cases; manifest + summary JSON."""
        recs = self.records()
        split = self.settings
        manifest = build_manifest(recs, seed=split.seed, test_fraction=split.test_fraction)
        write_manifest(manifest, self.root / MANIFEST)
        n_test = sum(1 for c in manifest["cases"].values() if c["split"] == "test")
        summary.extra.update({"cases_in_output": len(recs), "test_cases": n_test})
        summary.write(self.root / SUMMARY)
        return manifest


def _start(root: Path, marker: Path, options: dict, settings: ConversionSettings) -> Path | None:
    """Apply the resume rule of the module docstring to ``root`` (``options``: the converter's own, the
    split's are added); returns the topmost folder it creates."""
    check_test_fraction(settings.test_fraction)
    options = {**options, "seed": settings.seed, "test_fraction": settings.test_fraction}
    overwrite = settings.overwrite
    run_file = root / RECORDS / "run.json"
    ours = run_file.is_file()
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not ours:
            raise InputError(
                f"{root}: folder exists, is not empty and was not written by 'nnts convert'; "
                "choose another output (it is never deleted)"
            )
        if marker.is_file() and not overwrite:
            raise InputError(
                f"{root}: a finished conversion is already there ({marker.name} exists); "
                "pass --overwrite to replace it"
            )
        finished = [r for r in (root / RECORDS).glob("*.json") if r.name != "run.json"]
        if overwrite:
            print(f"--overwrite: deleting {root}")
            shutil.rmtree(root)
        elif (
            not finished and not marker.is_file()
        ):  # an earlier run that converted nothing: nothing to keep
            print(f"{root}: an earlier run converted no case; starting afresh")
            shutil.rmtree(root)
        else:
            previous = json.loads(run_file.read_text())
            if previous != options:
                raise InputError(
                    f"{root}: an interrupted conversion with other options is there "
                    f"({previous} != {options}); rerun with its options or pass --overwrite"
                )
            stale = [
                p for p in root.rglob(".*.tmp*") if p.is_file()
            ]  # atomic writes cut off by a kill
            for p in stale:
                p.unlink()
            print(
                f"resuming the interrupted conversion in {root}"
                + (f" ({len(stale)} unfinished temporary file(s) removed)" if stale else "")
            )
    created = None
    for folder in (root, *root.parents):
        if folder.exists():
            break
        created = folder
    (root / RECORDS).mkdir(parents=True, exist_ok=True)
    write_text_atomic(json.dumps(options, indent=1, sort_keys=True), run_file)
    return created


def to_hu_int16(image: sitk.Image, what: str) -> sitk.Image:
    """CT as int16 Hounsfield units (rounded; values beyond int16 are an error, not clipped)."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{what}: expected a grey-level CT, got {image.GetNumberOfComponentsPerPixel()} "
            "components per voxel (a fused or colour image?)"
        )
    if image.GetPixelID() == sitk.sitkInt16:
        return image
    arr = sitk.GetArrayViewFromImage(image)
    if arr.size and (np.nanmin(arr) < -32768 or np.nanmax(arr) > 32767 or np.isnan(arr).any()):
        raise InputError(
            f"{what}: intensities {np.nanmin(arr)}..{np.nanmax(arr)} do not fit int16 HU"
        )
    out = sitk.GetImageFromArray(np.rint(arr).astype(np.int16))
    out.CopyInformation(image)
    return out


@dataclass(frozen=True)
class StrongOutput(_Output):
    """nnU-Net raw dataset ``Dataset{ID:03d}_{Name}`` (imagesTr, labelsTr, dataset.json)."""

    name: str = ""  # the dataset's name (dataset.json)

    def image_path(self, case: str) -> Path:
        return self.root / "imagesTr" / f"{case}_0000{IMAGE_SUFFIX}"

    def label_path(self, case: str) -> Path:
        return self.root / "labelsTr" / f"{case}{IMAGE_SUFFIX}"

    def case_files(self, case: str) -> list[Path]:
        return [self.image_path(case), self.label_path(case)]

    def write(self, case: str, image: sitk.Image, label: np.ndarray, info: dict[str, Any]) -> None:
        """CT (int16 HU) + binary tumour mask on the CT grid, then the case record."""
        _check_case_id(case)
        label = np.asarray(label)
        if not np.isin(np.unique(label), (0, 1)).all():
            raise InputError(f"case {case}: label must hold only 0 and 1")
        if not label.any():
            raise InputError(f"case {case}: the tumour mask is empty")
        image = to_hu_int16(image, f"case {case}")
        write_image_atomic(
            array_to_image(label.astype(np.uint8), Geometry.of(image)), self.label_path(case)
        )
        write_image_atomic(image, self.image_path(case))
        self._write_record(case, info)

    def finish(self, summary: Summary) -> int:
        """Manifest, summary, and ``dataset.json`` last; returns the number of cases in the dataset (none:
        the folder is removed)."""
        if self.discard_if_empty():
            return 0
        manifest = self.write_manifest_and_summary(summary)
        n = len(manifest["cases"])
        if n:
            # hand-written rather than nnunetv2's generate_dataset_json: this file must be written atomically
            dataset = {
                "channel_names": {"0": "CT"},
                "labels": {"background": 0, "tumor": 1},
                "numTraining": n,
                "file_ending": IMAGE_SUFFIX,
                "name": self.name,
                "description": f"converted by 'nnts convert {summary.converter}' from {summary.source}",
            }
            write_text_atomic(json.dumps(dataset, indent=1), self.root / "dataset.json")
        return n


def raw_root(path: str | None) -> Path:
    """``path`` or ``$nnUNet_raw``."""
    root = path or os.environ.get("nnUNet_raw")
    if not root:
        raise InputError(
            "no nnU-Net raw folder: pass -o/--raw or set the nnUNet_raw environment variable"
        )
    return Path(root)


def prepare_strong_output(settings: ConversionSettings, name: str, options: dict) -> StrongOutput:
    """Folder of dataset ``settings.dataset_id`` named ``name`` under the raw root ``settings.out``,
    after applying the resume rule."""
    dataset_id, overwrite = settings.dataset_id, settings.overwrite
    if dataset_id is None:
        raise InputError("a raw dataset needs a dataset id (-d ID)")
    if not 1 <= dataset_id <= 999:
        raise InputError(f"dataset id must be 1..999, got {dataset_id}")
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise InputError(f"dataset name {name!r}: use letters, digits, '-' and '_' only")
    root = raw_root(settings.out)
    target = root / f"Dataset{dataset_id:03d}_{name}"
    others = [p for p in root.glob(f"Dataset{dataset_id:03d}_*") if p != target and p.is_dir()]
    if others:
        if not overwrite:
            raise InputError(
                f"dataset id {dataset_id} is already used by {others[0]}; "
                "choose another id or pass --overwrite to replace it"
            )
        for p in others:
            if not (p / "dataset.json").is_file() and not (p / RECORDS).is_dir():
                raise InputError(f"{p}: not an nnU-Net dataset; refusing to delete it")
            print(f"--overwrite: deleting {p}")
            shutil.rmtree(p)
    if target.is_dir() and (target / "dataset.json").is_file() and not (target / RECORDS).is_dir():
        if not overwrite:
            raise InputError(
                f"{target}: an nnU-Net dataset is already there; pass --overwrite to replace it"
            )
        print(f"--overwrite: deleting {target}")
        shutil.rmtree(target)
    created = _start(target, target / "dataset.json", options, settings)
    return StrongOutput(target, created, settings, name)


@dataclass(frozen=True)
class WeakOutput(_Output):
    """A weak set (see :mod:`nnunet_teacher_student.formats.weak_set`) written case by case."""

    @property
    def weak(self) -> WeakSet:
        return WeakSet(self.root)

    def case_files(self, case: str) -> list[Path]:
        w = self.weak
        return [w.image_path(case), w.boxes_path(case), w.boxmask_path(case)]

    def write(self, case: str, image: sitk.Image, boxset: BoxSet, info: dict[str, Any]) -> None:
        _check_case_id(case)
        if not boxset.boxes:
            raise InputError(f"case {case}: no boxes")
        image = to_hu_int16(image, f"case {case}")
        self.weak.write_case(case, image, boxset)
        self._write_record(case, info)

    def finish(self, summary: Summary) -> int:
        """Manifest, summary, and ``cases.json`` (per-case metadata with its split) last (no case: the folder
        is removed)."""
        if self.discard_if_empty():
            return 0
        manifest = self.write_manifest_and_summary(summary)
        recs = self.records()
        if manifest["cases"]:
            meta = {
                case: {**recs[case], "split": entry["split"]}
                for case, entry in manifest["cases"].items()
            }
            self.weak.write_metadata(meta)
        return len(manifest["cases"])


def prepare_weak_output(settings: ConversionSettings, options: dict) -> WeakOutput:
    """The weak set folder ``settings.out``, after applying the resume rule."""
    if settings.out is None:
        raise InputError("a weak set needs an output folder (-o WEAK_DIR)")
    root = Path(settings.out)
    return WeakOutput(root, _start(root, root / "cases.json", options, settings), settings)
