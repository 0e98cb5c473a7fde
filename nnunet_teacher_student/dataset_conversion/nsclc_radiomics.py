"""NSCLC-Radiomics (TCIA) -> nnU-Net raw dataset.

Layout: ``SRC/LUNG1-xxx/<study>/<series>/*.dcm`` with a CT series, an RTSTRUCT and often a
DICOM-SEG per patient. The CT is read with SimpleITK; the tumour comes from the RTSTRUCT
(ROIs whose name matches a pattern, ``GTV-1`` by default, merged) or from the SEG (segments
labelled so, or of type "Neoplasm, Primary"). With ``label_source="auto"`` the RTSTRUCT is tried
first, then the SEG. Patients without a matching tumour are reported and skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..core.errors import InputError
from .dicom_labels import (
    DEFAULT_ROI_PATTERN,
    read_rtstruct,
    read_seg_info,
    roi_matcher,
    rtstruct_mask,
    select_segments,
    seg_mask,
)
from .dicom_series import CTSeries, SeriesFiles, find_patients, read_ct_series, scan_dicom_tree
from .outputs import StrongOutput, prepare_strong_output
from .runner import CaseResult, Summary, TaskReport, run_tasks
from .settings import ConversionSettings

DATASET = "nsclc-radiomics"
DEFAULT_NAME = "NSCLCRadiomics"
LabelSource = Literal["auto", "rtstruct", "seg"]


def _pick_ct(cts: dict[str, SeriesFiles], refs: set[str], label_file: Path) -> SeriesFiles:
    """The CT series a label file refers to (or the only CT series when it names none)."""
    hits = [cts[u] for u in sorted(refs) if u in cts]
    if len(hits) == 1:
        return hits[0]
    if refs and not hits:
        raise InputError(
            f"{label_file}: refers to series {sorted(refs)}, none of which is a CT series found "
            f"beside it ({len(cts)} CT series)"
        )
    if len(cts) == 1:
        return next(iter(cts.values()))
    raise InputError(f"{label_file}: cannot tell which of {len(cts)} CT series it belongs to")


def convert_patient(
    patient_dir: str,
    out: StrongOutput,
    label_source: LabelSource = "auto",
    pattern: str = DEFAULT_ROI_PATTERN,
) -> TaskReport:
    """Convert one patient into one case named after its folder."""
    case = Path(patient_dir).name
    resumed = out.resumed(case)
    if resumed is not None:
        return resumed
    series, problems = scan_dicom_tree(patient_dir)
    notes = [f"{case}: {p}" for p in problems]
    cts = {u: s for u, s in series.items() if s.modality == "CT"}
    files = {
        "rtstruct": [f for s in series.values() if s.modality == "RTSTRUCT" for f in s.files],
        "seg": [f for s in series.values() if s.modality == "SEG" for f in s.files],
    }
    if not cts:
        return TaskReport([CaseResult(case, "skipped", "no CT series")], notes)
    match = roi_matcher(pattern)
    loaded: dict[str, CTSeries] = {}
    failures: list[str] = []
    for kind in ["rtstruct", "seg"] if label_source == "auto" else [label_source]:
        if not files[kind]:
            failures.append(f"no {'RTSTRUCT' if kind == 'rtstruct' else 'DICOM-SEG'}")
        for f in files[kind]:
            try:
                if kind == "rtstruct":
                    info = read_rtstruct(f)
                    if not any(match(n) for n in info.roi_names):
                        raise InputError(
                            f"{f.name}: no ROI matching {pattern!r} (ROIs: {info.roi_names})"
                        )
                else:
                    info = read_seg_info(f)
                    if not select_segments(info, pattern):
                        raise InputError(
                            f"{f.name}: no segment labelled {pattern!r} nor 'Neoplasm, Primary' "
                            f"(segments: {[s[1] for s in info.segments]})"
                        )
                ct_files = _pick_ct(cts, info.series_uids, f)
                if ct_files.uid not in loaded:
                    loaded[ct_files.uid] = read_ct_series(ct_files)
                ct = loaded[ct_files.uid]
                mask, names = (
                    rtstruct_mask(info, ct, pattern)
                    if kind == "rtstruct"
                    else seg_mask(info, ct, pattern)
                )
                if not mask.any():
                    raise InputError(f"{f}: {names} give an empty mask on the CT")
            except InputError as e:
                failures.append(str(e))
                continue
            meta = {
                "patient": case,
                "dataset": DATASET,
                "source": str(ct.files[0].parent),
                "label_file": str(f),
                "label_source": kind,
                "rois": names,
                "tumour_voxels": int(mask.sum()),
            }
            out.write(case, ct.image, mask, meta)
            return TaskReport([CaseResult(case, "converted", info=meta)], notes)
    return TaskReport([CaseResult(case, "skipped", "; ".join(failures))], notes)


def convert_nsclc_radiomics(
    src: str | Path,
    settings: ConversionSettings,
    label_source: LabelSource = "auto",
    pattern: str = DEFAULT_ROI_PATTERN,
) -> tuple[Summary, StrongOutput]:
    """Convert every patient folder of ``src`` into a raw dataset (name default ``NSCLCRadiomics``); returns
    the summary and the output."""
    src = Path(src)
    roi_matcher(pattern)  # fail early on a bad pattern
    patients = find_patients(src, "SRC/LUNG1-xxx/<study>/<series>/*.dcm")
    options = {
        "converter": DATASET,
        "source": str(src.resolve()),
        "label_source": label_source,
        "pattern": pattern,
    }
    out = prepare_strong_output(settings, settings.dataset_name(DEFAULT_NAME), options)
    tasks = [
        (
            p.name,
            {"patient_dir": str(p), "out": out, "label_source": label_source, "pattern": pattern},
        )
        for p in patients
    ]
    reports = run_tasks(convert_patient, tasks, settings.num_processes, desc=DATASET)
    summary = Summary(DATASET, str(src), str(out.root), reports)
    out.finish(summary)
    return summary, out
