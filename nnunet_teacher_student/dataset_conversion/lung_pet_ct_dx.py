"""Lung-PET-CT-Dx (TCIA) with its PASCAL-VOC boxes -> weak set (CT + axial boxes).

Layout: ``SRC/Lung_Dx-<A|B|E|G>NNNN/<study>/<series>/1-NN.dcm`` and
``ANNOTATIONS/<A|B|E|G>NNNN/<SOPInstanceUID>.xml`` (one file per annotated slice, boxes in pixel
column/row of that slice; class letters A, B, E, G kept as ``Box.label``).

Selection as in the paper (1295 images, 665 kept): only CT series (PET and fused PET/CT are
dropped), whose z-extent (slices x spacing) lies in [16, 60] cm and whose slices form one regular
stack (no duplicated positions from stacked scans, no gaps). Each kept series with at least one
matching annotation becomes a case ``<patient>_<SeriesNumber>``. Annotation files that match no
slice of a kept series, and malformed ones, are reported per patient.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.geometry import Geometry
from ..formats.boxes import Box, BoxError, BoxSet, boxes_3d as to_3d_boxes
from .dicom_series import (
    SECONDARY_CAPTURE,
    SeriesFiles,
    SliceError,
    find_patients,
    read_ct_series,
    scan_dicom_tree,
    z_extent_mm,
)
from .outputs import WeakOutput, prepare_weak_output
from .runner import CaseResult, Summary, TaskReport, run_tasks
from .settings import ConversionSettings
from .voc_xml import VocError, VocFile, parse_voc

DATASET = "lung-pet-ct-dx"
FUSED_WORDS = re.compile(r"fus(ed|ion)", re.IGNORECASE)
PATIENT_RX = re.compile(r"^Lung_Dx-(?P<short>.+)$")

NOT_CT, FUSED, NOT_AXIAL, STACKED, EXTENT = (
    "not CT",
    "fused PET/CT",
    "not an axial volume",
    "stacked scans or missing slices",
    "z-extent out of range",
)


def classify_series(
    s: SeriesFiles, min_cm: float = 16.0, max_cm: float = 60.0
) -> tuple[str, str] | None:
    """Why the paper's selection drops this series, as (reason, detail); None when kept."""
    h = s.first
    if s.modality != "CT":
        return NOT_CT, f"modality {s.modality or '?'}"
    image_type = [str(v).upper() for v in (h.get("ImageType") or [])]
    if (
        str(h.get("SOPClassUID", "")) == SECONDARY_CAPTURE
        or int(h.get("SamplesPerPixel", 1) or 1) > 1
        or str(h.get("PhotometricInterpretation", "")).upper().startswith(("RGB", "YBR", "PALETTE"))
        or any("FUS" in t for t in image_type)
        or FUSED_WORDS.search(s.description)
    ):
        return FUSED, f"'{s.description}' ({'/'.join(image_type)})"
    if "LOCALIZER" in image_type:
        return NOT_AXIAL, "localizer"
    try:
        iop = np.asarray(h.ImageOrientationPatient, float)
    except (AttributeError, TypeError, ValueError):
        return NOT_AXIAL, "no ImageOrientationPatient"
    if abs(np.cross(iop[:3], iop[3:])[2]) < 0.9:
        return NOT_AXIAL, f"slice orientation {iop.tolist()}"
    try:
        extent = z_extent_mm(s)
    except SliceError as e:
        return STACKED, str(e)
    if not min_cm * 10 <= extent <= max_cm * 10:
        return EXTENT, f"{extent / 10:.1f} cm outside [{min_cm:g}, {max_cm:g}] cm"
    return None


def patient_short_id(folder_name: str) -> str:
    """``Lung_Dx-A0002`` -> ``A0002`` (the annotation folder's name)."""
    m = PATIENT_RX.match(folder_name)
    return m.group("short") if m else folder_name


def _case_ids(patient: str, kept: list[SeriesFiles]) -> dict[str, str]:
    """series uid -> case id ``<patient>_<SeriesNumber>``; duplicates get a suffix from the UID."""
    by_name: dict[str, list[SeriesFiles]] = {}
    for s in sorted(kept, key=lambda s: s.uid):
        number = re.sub(r"[^A-Za-z0-9]+", "-", s.number).strip("-") or "x"
        by_name.setdefault(f"{patient}_{number}", []).append(s)
    out = {}
    for name, group in by_name.items():
        for s in group:
            out[s.uid] = name if len(group) == 1 else f"{name}_{s.uid.split('.')[-1][-8:]}"
    return out


def _read_annotations(ann_dir: Path | None) -> tuple[dict[str, VocFile], list[str]]:
    """uid -> parsed file, and the malformed files (with reasons)."""
    parsed, bad = {}, []
    if ann_dir is None:
        return parsed, bad
    for xml in sorted(ann_dir.glob("*.xml")):
        if xml.name.startswith("."):
            continue
        try:
            parsed[xml.stem] = parse_voc(xml)
        except VocError as e:
            bad.append(str(e))
    return parsed, bad


def _boxes_for(ct, matched: dict[str, VocFile]) -> tuple[list[Box], list[str]]:
    """Boxes on the CT grid (slice = z index of the annotated SOPInstanceUID), and rejected ones."""
    boxes, rejected = [], []
    shape = ct.image.GetSize()[::-1]
    z_of = ct.z_index
    for uid, vf in sorted(matched.items()):
        z = z_of[uid]
        h = ct.headers[z]
        given = [
            (a, int(b)) for a, b in ((vf.width, h.Columns), (vf.height, h.Rows)) if a is not None
        ]
        if any(a != b for a, b in given):
            rejected.append(
                f"{vf.path.name}: annotated image size {vf.width}x{vf.height} differs from the slice "
                f"({h.Columns}x{h.Rows})"
            )
            continue
        for b in vf.boxes:
            box = Box(z, b.xmin, b.ymin, b.xmax, b.ymax, label=b.label or None)
            try:
                box.validate(shape, vf.path.name)
            except BoxError as e:
                rejected.append(str(e))
                continue
            boxes.append(box)
    return boxes, rejected


def _annotation_folder(annotations: Path, patient: str, rep: TaskReport) -> Path | None:
    """``ANNOTATIONS/<short id>`` (or ``ANNOTATIONS/<patient>``); None, with a note, when there is neither."""
    ann_dir = next(
        (d for d in (annotations / patient_short_id(patient), annotations / patient) if d.is_dir()),
        None,
    )
    if ann_dir is None:
        rep.notes.append(
            f"{patient}: no annotation folder {annotations / patient_short_id(patient)}"
        )
    return ann_dir


def _select_series(
    series: dict[str, SeriesFiles], min_cm: float, max_cm: float, counts: Counter
) -> tuple[list[SeriesFiles], dict[str, str]]:
    """The series the paper keeps, and for each slice of a dropped series why it was dropped (counted)."""
    kept, dropped = [], {}
    for s in sorted(series.values(), key=lambda s: s.uid):
        why = classify_series(s, min_cm, max_cm)
        if why is None:
            kept.append(s)
        else:
            counts[f"dropped: {why[0]}"] += 1
            for uid in s.sop_uids:
                dropped[uid] = f"series '{s.description}' ({why[0]}: {why[1]})"
    counts["kept (CT in range)"] = len(kept)
    return kept, dropped


def _convert_series(
    s: SeriesFiles,
    case: str,
    patient: str,
    matched: dict[str, VocFile],
    out: WeakOutput,
    boxes_3d: bool,
) -> tuple[CaseResult, list[str] | None]:
    """One kept series with matching annotations -> its weak case (or resumed, or skipped with why), and
    the rejected boxes (None when the boxes were not read)."""
    record = out.done(case)
    if record is not None:
        return CaseResult(case, "resumed", info=record), None
    rejected = None
    try:
        ct = read_ct_series(s)
        boxes, rejected = _boxes_for(ct, matched)
        if not boxes:
            raise InputError(f"all {len(matched)} matching annotation file(s) were rejected")
        if boxes_3d:
            boxes = to_3d_boxes(boxes, Geometry.of(ct.image).array_shape)
        info = {
            "patient": patient,
            "dataset": DATASET,
            "source": str(s.folder),
            "series_uid": s.uid,
            "series_description": s.description,
            "n_boxes": len(boxes),
            "classes": sorted({b.label for b in boxes if b.label}),
            "annotation_files": len(matched),
            "z_extent_cm": round(z_extent_mm(s) / 10, 2),
        }
        out.write(case, ct.image, BoxSet(Geometry.of(ct.image), boxes), info)
        return CaseResult(case, "converted", info=info), rejected
    except InputError as e:
        return CaseResult(case, "skipped", str(e)), rejected


def _report_unmatched(
    patient: str, parsed: dict[str, VocFile], unmatched: list[str], dropped: dict[str, str]
) -> TaskReport:
    """A note and the details naming the annotation files that match no slice of a kept series."""
    rep = TaskReport()
    if not unmatched:
        return rep
    reasons = {u: dropped.get(u, "no slice with this SOPInstanceUID found") for u in unmatched}
    where = Counter(reasons[u] for u in unmatched)
    rep.notes.append(
        f"{patient}: {len(unmatched)} annotation file(s) match no slice of a kept series: "
        + "; ".join(f"{n} -> {w}" for w, n in where.items())
    )
    rep.details["unmatched_annotations"] = {
        patient: [{"file": str(parsed[u].path), "reason": reasons[u]} for u in unmatched]
    }
    return rep


def convert_patient(
    patient_dir: str,
    annotations: str,
    out: WeakOutput,
    min_cm: float = 16.0,
    max_cm: float = 60.0,
    boxes_3d: bool = False,
) -> TaskReport:
    """Select the series of one patient, match its annotations, write one weak case per series (``boxes_3d``:
    each lesion's axial boxes merged into one 3-D box)."""
    patient = Path(patient_dir).name
    rep = TaskReport()
    series, problems = scan_dicom_tree(patient_dir)
    rep.notes.extend(f"{patient}: {p}" for p in problems)
    parsed, malformed = _read_annotations(_annotation_folder(Path(annotations), patient, rep))
    rep.notes.extend(f"{patient}: malformed annotation skipped: {m}" for m in malformed)
    counts: Counter = Counter(
        {
            "series found": len(series),
            "annotation files": len(parsed) + len(malformed),
            "annotation files malformed": len(malformed),
        }
    )
    kept, dropped = _select_series(series, min_cm, max_cm, counts)
    cases = _case_ids(patient, kept)
    matched_uids: set[str] = set()
    for s in kept:
        case = cases[s.uid]
        matched = {u: parsed[u] for u in s.sop_uids if u in parsed}
        matched_uids.update(matched)
        if not matched:
            counts["kept without annotations"] += 1
            rep.results.append(
                CaseResult(case, "skipped", f"no annotation matches a slice of series {s.folder}")
            )
            continue
        result, rejected = _convert_series(s, case, patient, matched, out, boxes_3d)
        if rejected is not None:
            rep.notes.extend(f"{case}: box rejected: {r}" for r in rejected)
            counts["boxes rejected"] += len(rejected)
        rep.results.append(result)
    unmatched = sorted(set(parsed) - matched_uids)
    counts["annotation files matched"] = len(parsed) - len(unmatched)
    counts["annotation files unmatched"] = len(unmatched)
    missed = _report_unmatched(patient, parsed, unmatched, dropped)
    rep.notes.extend(missed.notes)
    rep.details.update(missed.details)
    if malformed:
        rep.details["malformed_annotations"] = {patient: malformed}
    rep.counts = dict(counts)
    return rep


def convert_lung_pet_ct_dx(
    src: str | Path,
    annotations: str | Path,
    settings: ConversionSettings,
    min_cm: float = 16.0,
    max_cm: float = 60.0,
    boxes_3d: bool = False,
) -> tuple[Summary, WeakOutput]:
    """Convert every patient of ``src`` into the weak set ``settings.out``; returns the summary and the output."""
    src, annotations = Path(src), Path(annotations)
    if not annotations.is_dir():
        raise InputError(f"{annotations}: no such annotation folder")
    if not 0 < min_cm < max_cm:
        raise InputError(f"z-extent range [{min_cm}, {max_cm}] cm is empty")
    patients = find_patients(src, "SRC/Lung_Dx-XNNNN/<study>/<series>/*.dcm")
    options = {
        "converter": DATASET,
        "source": str(src.resolve()),
        "annotations": str(annotations.resolve()),
        "min_cm": min_cm,
        "max_cm": max_cm,
        **({"boxes_3d": True} if boxes_3d else {}),
    }
    out = prepare_weak_output(settings, options)
    tasks = [
        (
            p.name,
            {
                "patient_dir": str(p),
                "annotations": str(annotations),
                "out": out,
                "min_cm": min_cm,
                "max_cm": max_cm,
                "boxes_3d": boxes_3d,
            },
        )
        for p in patients
    ]
    reports = run_tasks(convert_patient, tasks, settings.num_processes, desc=DATASET)
    summary = Summary(DATASET, str(src), str(out.root), reports)
    c = summary.counts
    summary.headline.append(
        f"selection: {c.get('series found', 0)} images (series) found, "
        f"{c.get('kept (CT in range)', 0)} kept (CT, one regular stack, z-extent in "
        f"[{min_cm:g}, {max_cm:g}] cm); the paper kept 665 of 1295"
    )
    out.finish(summary)
    return summary, out
