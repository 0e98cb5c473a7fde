"""Any folder of CTs with masks (-> nnU-Net raw dataset) or with boxes (-> weak set).

CTs: ``SRC/<case>.nii.gz|.nii|.nrrd|.nhdr|.mha|.mhd`` or ``SRC/<case>/`` holding one DICOM series.
Masks: ``MASKS/<case>.<same suffixes>`` (0/1), on the CT's voxels (the same grid, possibly stored
with permuted/flipped axes). Boxes: ``BOXES/<case>.json`` (our BoxSet format, on the CT's grid)
or ``BOXES/<case>.csv`` with a header ``slice,xmin,ymin,xmax,ymax[,label][,lesion_id]`` (voxel indices of
the CT as read, bounds inclusive), or ``BOXES/<case>.nii.gz`` (any image suffix): a box mask (0/1 on the CT's
grid, 1 inside any box, as a weak set's ``boxmasks/``), read back as one box per lesion and slice. CTs may be
named ``<case>_0000.<suffix>`` (nnU-Net's layout). Files are matched by case id; unmatched CTs are reported.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.geometry import Geometry, read_image
from ..formats.boxes import Box, BoxError, BoxSet, boxes_from_mask
from ..formats.images import IMAGE_SUFFIXES
from .dicom_series import read_ct_series, scan_dicom_tree
from .masks import binary_mask, mask_on_ct
from .outputs import StrongOutput, WeakOutput, prepare_strong_output, prepare_weak_output
from .runner import CaseResult, Summary, TaskReport, run_tasks
from .settings import ConversionSettings


BOX_SUFFIXES = (".json", ".csv")
CSV_COLUMNS = ("slice", "xmin", "ymin", "xmax", "ymax")


def _case_of(path: Path, suffixes: tuple[str, ...]) -> str | None:
    for suffix in suffixes:
        if path.name.lower().endswith(suffix):
            return path.name[: -len(suffix)]
    return None


CHANNEL_SUFFIX = "_0000"  # nnU-Net's name of a case's first (CT) channel: <case>_0000.nii.gz


def _index(
    folder: Path, suffixes: tuple[str, ...], dirs: bool = False, channel: bool = False
) -> dict[str, Path]:
    """case id -> file (or DICOM folder when ``dirs``) in ``folder``; two files for one case is an error.
    ``channel``: a file named ``<case>_0000.<suffix>`` (nnU-Net's layout) is case ``<case>``."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        case = p.name if (dirs and p.is_dir()) else (_case_of(p, suffixes) if p.is_file() else None)
        if case is None:
            continue
        if (
            channel
            and p.is_file()
            and case.endswith(CHANNEL_SUFFIX)
            and len(case) > len(CHANNEL_SUFFIX)
        ):
            case = case[: -len(CHANNEL_SUFFIX)]
        if case in found:
            raise InputError(
                f"{folder}: two inputs for case {case!r}: {found[case].name} and {p.name}"
            )
        found[case] = p
    return found


def read_ct(path: Path) -> sitk.Image:
    """A CT file, or the one DICOM series of a folder."""
    if path.is_file():
        return read_image(path)
    series, problems = scan_dicom_tree(path)
    images = [
        s for s in series.values() if s.modality not in ("RTSTRUCT", "SEG", "SR", "PR", "REG", "KO")
    ]
    if len(images) != 1:
        extra = f"; unreadable: {problems[:3]}" if problems else ""
        raise InputError(f"{path}: expected one DICOM image series, found {len(images)}{extra}")
    if problems:
        raise InputError(f"{path}: {problems[0]}")
    return read_ct_series(images[0]).image


def read_csv_boxes(path: Path, shape_zyx: tuple[int, int, int]) -> list[Box]:
    """Boxes of a CSV with a header ``slice,xmin,ymin,xmax,ymax[,label]``, validated against the CT."""
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise BoxError(f"{path}: CSV header {reader.fieldnames} lacks column(s) {missing}")
            boxes = []
            for line, row in enumerate(reader, start=2):
                row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                try:
                    lesion = row.get("lesion_id") or None
                    box = Box(
                        *(int(row[c]) for c in CSV_COLUMNS),
                        label=row.get("label") or None,
                        lesion_id=None if lesion is None else int(lesion),
                    )
                except ValueError as e:
                    raise BoxError(f"{path}, line {line}: not whole numbers: {row}") from e
                box.validate(shape_zyx, f"{path}, line {line}")
                boxes.append(box)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BoxError(f"{path}: unreadable CSV ({e})") from e
    return boxes


def read_boxes(path: Path, ct: sitk.Image) -> BoxSet:
    """A BoxSet on ``ct``'s grid from our JSON, a CSV or a box-mask image."""
    if _case_of(path, IMAGE_SUFFIXES) is not None:
        mask = binary_mask(mask_on_ct(read_image(path), ct, f"box mask {path}"), f"box mask {path}")
        if not mask.any():
            raise BoxError(f"{path}: the box mask is empty")
        return BoxSet(Geometry.of(ct), boxes_from_mask(mask, "lesion"))
    if path.suffix.lower() == ".csv":
        return BoxSet(Geometry.of(ct), read_csv_boxes(path, ct.GetSize()[::-1]))
    boxset = BoxSet.load(path)
    boxset.check_against(ct, f"{path} (boxes) vs its CT")
    return boxset


def _read_labels(
    label_file: str, ct: sitk.Image, out: StrongOutput | WeakOutput, any_nonzero: bool
) -> tuple[np.ndarray | BoxSet, str, dict]:
    """A case's mask (raw dataset) or boxes (weak set) on ``ct``'s grid, why they are empty ("" when they are
    not), and what the case's record says of them."""
    if isinstance(out, StrongOutput):
        what = f"mask {label_file}"
        mask = binary_mask(mask_on_ct(read_image(label_file), ct, what), label_file, any_nonzero)
        info = {"label_file": label_file, "tumour_voxels": int(mask.sum())}
        return mask, "" if mask.any() else f"{label_file}: empty mask", info
    boxset = read_boxes(Path(label_file), ct)
    info = {
        "box_file": label_file,
        "n_boxes": len(boxset.boxes),
        "classes": sorted({b.label for b in boxset.boxes if b.label}),
    }
    return boxset, "" if boxset.boxes else f"{label_file}: no boxes", info


def convert_folder_case(
    case: str,
    image: str,
    label_file: str,
    out: StrongOutput | WeakOutput,
    dataset: str,
    patient: str,
    any_nonzero: bool = False,
) -> TaskReport:
    """One CT with its mask (-> raw dataset) or its boxes (-> weak set): resumed, skipped (no tumour, no
    boxes) or converted."""
    resumed = out.resumed(case)
    if resumed is not None:
        return resumed
    ct = read_ct(Path(image))
    labels, empty, label_info = _read_labels(label_file, ct, out, any_nonzero)
    if empty:
        return TaskReport([CaseResult(case, "skipped", empty)])
    info = {"patient": patient, "dataset": dataset, "source": image, **label_info}
    out.write(case, ct, labels, info)
    return TaskReport([CaseResult(case, "converted", info=info)])


def read_patient_map(path: str | os.PathLike | None) -> dict[str, str]:
    """``case,patient`` CSV (header required) -> mapping; without a file every case is its own patient."""
    if path is None:
        return {}
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: unreadable patient map ({e})") from e
    if rows and not {"case", "patient"} <= set(rows[0]):
        raise InputError(f"{path}: the patient map needs a header 'case,patient'")
    return {r["case"].strip(): r["patient"].strip() for r in rows}


def _prepare_output(
    src: Path, settings: ConversionSettings, strong: bool, options: dict
) -> StrongOutput | WeakOutput:
    """The raw dataset (masks; its name defaults to SRC's folder name) or the weak set (boxes)."""
    if strong:
        if settings.dataset_id is None:
            raise InputError("--masks needs a dataset id (-d ID)")
        default = "".join(c if c.isalnum() or c in "-_" else "_" for c in src.resolve().name)
        return prepare_strong_output(settings, settings.name or default, options)
    if settings.out is None:
        raise InputError("--boxes needs an output folder (-o WEAK_DIR)")
    return prepare_weak_output(settings, options)


def convert_folder(
    src: str | Path,
    settings: ConversionSettings,
    *,
    masks: str | Path | None = None,
    boxes: str | Path | None = None,
    source_name: str | None = None,
    patient_map: str | None = None,
    any_nonzero: bool = False,
) -> tuple[Summary, StrongOutput | WeakOutput]:
    """Masks -> raw dataset ``settings.dataset_id`` (under ``settings.out`` or $nnUNet_raw); boxes -> weak set
    ``settings.out``. ``source_name``: the dataset recorded in the manifest (default ``folder:SRC``);
    ``patient_map``: a ``case,patient`` CSV; ``any_nonzero``: every non-zero mask voxel is tumour."""
    if (masks is None) == (boxes is None):
        raise InputError("give either --masks (strong output) or --boxes (weak output)")
    src = Path(src)
    images = _index(src, IMAGE_SUFFIXES, dirs=True, channel=True)
    if not images:
        raise InputError(
            f"{src}: no CT files ({', '.join(IMAGE_SUFFIXES)}) or DICOM series folders"
        )
    given = masks if masks is not None else boxes
    label_dir = Path(given)
    labels = _index(
        label_dir, IMAGE_SUFFIXES if masks is not None else BOX_SUFFIXES + IMAGE_SUFFIXES
    )
    dataset = source_name or f"folder:{src.resolve().name}"
    patients = read_patient_map(patient_map)
    options = {
        "converter": "folder",
        "source": str(src.resolve()),
        "labels": str(label_dir.resolve()),
        "dataset": dataset,
        "any_nonzero": any_nonzero,
    }
    output = _prepare_output(src, settings, masks is not None, options)
    what = "mask" if masks is not None else "box file"
    reports = [
        TaskReport([CaseResult(case, "skipped", f"no {what} named {case}.* in {given}")])
        for case in sorted(images)
        if case not in labels
    ]
    shared = {"out": output, "dataset": dataset, "any_nonzero": any_nonzero}
    tasks = [
        (
            case,
            {
                "case": case,
                "image": str(image),
                "label_file": str(labels[case]),
                "patient": patients.get(case, case),
                **shared,
            },
        )
        for case, image in sorted(images.items())
        if case in labels
    ]
    reports += run_tasks(convert_folder_case, tasks, settings.num_processes, desc="folder")
    orphans = sorted(set(labels) - set(images))
    unknown = sorted(set(patients) - set(images))
    notes = [f"label file(s) without a CT: {orphans[:20]}"] if orphans else []
    if unknown:
        notes.append(f"patient map names unknown case(s): {unknown[:20]}")
    reports.append(TaskReport(notes=notes))
    summary = Summary("folder", str(src), str(output.root), reports)
    output.finish(summary)
    return summary, output
