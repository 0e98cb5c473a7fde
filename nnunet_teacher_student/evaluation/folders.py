"""Evaluate a folder of predicted masks against a folder of ground-truth masks and write
``per_case.csv``, ``lesions.csv``, ``summary.json`` and ``summary.md``."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.files import write_text_atomic
from ..core.geometry import read_header, read_image, spacing_zyx
from ..formats.manifest import manifest_cases, read_manifest
from .aggregate import (
    COUNT_METRICS,
    OVERALL,
    PAPER_METRICS,
    SURFACE_METRICS,
    VOLUME_METRICS,
    markdown_table,
    summarize,
    summary_rows,
)
from .metrics import case_metrics, rules
from .settings import EvaluationSettings
from .statistics import tumour_free_text

NIFTI_SUFFIXES = (".nii.gz", ".nii")
CASE_COLUMNS = (
    "case",
    "dataset",
    *PAPER_METRICS,
    *SURFACE_METRICS,
    *COUNT_METRICS,
    "tp_pred",
    *VOLUME_METRICS,
    "missing_prediction",
    "pred_file",
    "gt_file",
)
LESION_COLUMNS = (
    "case",
    "dataset",
    "mask",
    "id",
    "voxels",
    "volume_ml",
    "overlap_fraction",
    "positive",
)


def case_files(folder: str | os.PathLike, what: str) -> dict[str, Path]:
    """Map case id (file name minus ``.nii.gz``/``.nii``) to path; hidden files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: {what} folder does not exist")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        suffix = next((s for s in NIFTI_SUFFIXES if p.name.endswith(s)), None)
        if suffix is None or p.name.startswith(".") or not p.is_file():
            continue
        case = p.name[: -len(suffix)]
        if case in out:
            raise InputError(
                f"{p}: case {case!r} appears twice in the {what} folder ({out[case].name})"
            )
        out[case] = p
    if not out:
        raise InputError(f"{folder}: no NIfTI (.nii.gz/.nii) files in the {what} folder")
    return out


def pair_cases(
    pred: Mapping[str, Path], gt: Mapping[str, Path]
) -> tuple[dict[str, Path | None], list[str]]:
    """GT case -> prediction path (None when missing), and the predictions matching no GT case.
    A prediction named ``<case>_0000`` (nnU-Net's channel suffix) is accepted for ``<case>``."""
    pairs: dict[str, Path | None] = {}
    used: set[str] = set()
    for case in gt:
        key = case if case in pred else (f"{case}_0000" if f"{case}_0000" in pred else None)
        pairs[case] = pred[key] if key else None
        if key:
            used.add(key)
    return pairs, sorted(set(pred) - used)


def load_manifest(manifest: str | os.PathLike | Mapping | None) -> dict[str, str]:
    """case -> source-dataset name, from a JSON file or dict: ``{case: {"dataset"|"site": name}}``,
    ``{case: name}``, or either wrapped as ``{"cases": {...}}``."""
    if manifest is None:
        return {}
    where = "manifest"
    if not isinstance(manifest, Mapping):
        where = str(manifest)
        manifest = read_manifest(manifest, "manifest file")
    manifest = manifest_cases(manifest)
    if not isinstance(manifest, Mapping):
        raise InputError(
            f'{where}: manifest must be a JSON object mapping case -> {{"dataset": name}}'
        )
    out = {}
    for case, entry in manifest.items():
        if isinstance(entry, str):
            out[str(case)] = entry
        elif isinstance(entry, Mapping) and isinstance(
            entry.get("dataset", entry.get("site")), str
        ):
            out[str(case)] = entry.get("dataset", entry.get("site"))
        else:
            raise InputError(f'{where}: case {case!r} has no "dataset" or "site" name: {entry!r}')
    return out


def _mask_array(path: Path) -> np.ndarray:
    arr = sitk.GetArrayFromImage(read_image(path))
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise InputError(f"{path}: has non-integer values; expected a label map, not probabilities")
    return arr


def _missing_predictions(
    pairs: Mapping[str, Path | None], pred_dir, allow_missing: bool
) -> list[str]:
    """The ground-truth cases without a prediction; InputError naming them unless ``allow_missing``."""
    missing = [c for c, p in pairs.items() if p is None]
    if missing and not allow_missing:
        raise InputError(
            f"{pred_dir}: no prediction for {len(missing)} ground-truth case(s): "
            f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''} "
            "(use --allow-missing to score them as empty predictions)"
        )
    return missing


def _case_datasets(manifest, cases: Iterable[str]) -> dict[str, str]:
    """case -> source dataset from the manifest (none: {}); InputError for a case it does not name."""
    groups = load_manifest(manifest)
    if manifest is not None:
        absent = [c for c in cases if c not in groups]
        if absent:
            raise InputError(
                f"{manifest if not isinstance(manifest, Mapping) else 'manifest'}: no dataset "
                f"for case(s) {', '.join(absent[:20])}{' ...' if len(absent) > 20 else ''}"
            )
    return groups


def _geometries(pairs: Mapping[str, Path | None], gt_files: Mapping[str, Path]) -> dict:
    """Each case's ground-truth geometry, checked against its prediction's (headers only: fail before any
    long computation)."""
    geometries = {}
    for case, pred_path in pairs.items():
        geometries[case] = read_header(gt_files[case])
        if pred_path is not None:
            geometries[case].require_match(
                read_header(pred_path),
                f"{pred_path} (prediction for ground truth {gt_files[case]})",
            )
    return geometries


def _score_case(
    gt_file: Path, pred_file: Path | None, geometry, settings: EvaluationSettings
) -> dict:
    """One case's metrics (no prediction: an empty one) and the files it compared."""
    gt = _mask_array(gt_file)
    pred = _mask_array(pred_file) if pred_file is not None else np.zeros_like(gt)
    metrics = case_metrics(
        pred,
        gt,
        spacing_zyx(geometry),
        label=settings.label,
        gt_label=settings.gt_label,
        overlap=settings.overlap,
        nsd_tolerance_mm=settings.nsd_tolerance_mm,
    )
    return {
        **metrics,
        "missing_prediction": pred_file is None,
        "pred_file": str(pred_file) if pred_file else "",
        "gt_file": str(gt_file),
    }


def _settings_record(pred_dir, gt_dir, manifest, settings: EvaluationSettings) -> dict:
    """The result's ``settings`` block: the folders, the manifest file and the scoring rules' values."""
    return {
        "pred_dir": str(pred_dir),
        "gt_dir": str(gt_dir),
        "manifest": None if manifest is None or isinstance(manifest, Mapping) else str(manifest),
        "label": settings.label,
        "gt_label": settings.gt_label if settings.gt_label is not None else settings.label,
        "overlap_threshold": settings.overlap,
        "nsd_tolerance_mm": settings.nsd_tolerance_mm,
        "hd_percentile": 95,
        "connectivity": 26,
        "allow_missing": settings.allow_missing,
    }


def evaluate_folders(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    manifest: str | os.PathLike | Mapping | None = None,
    settings: EvaluationSettings | None = None,
    progress: bool = True,
) -> dict:
    """Score every GT case against its prediction with ``settings`` (default :class:`EvaluationSettings`).
    Returns ``{"settings", "rules", "cases", "summary", "missing_predictions", "unmatched_predictions"}``;
    ``rules`` states the metric definitions (see :func:`~.metrics.rules`).

    Raises InputError (naming the file) for unreadable files, geometry mismatches, missing
    predictions (unless ``allow_missing``: then scored as empty) and cases absent from the manifest."""
    from tqdm import tqdm

    s = settings if settings is not None else EvaluationSettings()
    s.check()
    gt_files = case_files(gt_dir, "ground-truth")
    pairs, unmatched = pair_cases(case_files(pred_dir, "prediction"), gt_files)
    missing = _missing_predictions(pairs, pred_dir, s.allow_missing)
    groups = _case_datasets(manifest, pairs)
    geometries = _geometries(pairs, gt_files)
    cases = [
        {
            "case": case,
            "dataset": groups.get(case, OVERALL),
            **_score_case(gt_files[case], pred_path, geometries[case], s),
        }
        for case, pred_path in tqdm(
            pairs.items(), desc="evaluate", unit="case", disable=not progress
        )
    ]
    return {
        "settings": _settings_record(pred_dir, gt_dir, manifest, s),
        "rules": rules(s.overlap, s.nsd_tolerance_mm),
        "cases": cases,
        "summary": summarize(cases),
        "missing_predictions": missing,
        "unmatched_predictions": unmatched,
    }


def _json_safe(obj):
    """NaN/inf -> null (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _csv(rows: list[dict], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def _percent(fraction: float | None) -> str:
    """A pooled fraction in % with two decimals; "n/a" when undefined."""
    return "n/a" if fraction is None or math.isnan(fraction) else f"{100 * fraction:.2f}"


def summary_markdown(result: Mapping, name: str = "prediction") -> str:
    """The summary.md text: paper-style table, surface/volume table, pooled lesion counts, rules."""
    s = result["settings"]
    summary = result["summary"]
    n = len(result["cases"])
    lines = [
        f"# Evaluation: {name}",
        "",
        f"Predictions `{s['pred_dir']}` against ground truth `{s['gt_dir']}`: {n} case(s), "
        f"datasets: {', '.join(summary['datasets'])}.",
        "",
    ]
    if result.get("missing_predictions"):
        lines += [
            f"Missing predictions scored as empty: {', '.join(result['missing_predictions'])}.",
            "",
        ]
    if result.get("unmatched_predictions"):
        lines += [
            f"Predictions without ground truth (ignored): {', '.join(result['unmatched_predictions'])}.",
            "",
        ]
    free = summary.get("tumour_free", {})
    lines += [
        "## Segmentation and detection (as the paper's Tables 3 and 5, in %)",
        "",
        f'Cells are mean ± std over the {summary["overall"]["n_cases"]} tumour cases; "(n=k)" means the '
        "metric was undefined for the other cases. "
        f"Tumour-free cases: {tumour_free_text(free)} (they are left out of every mean: an empty "
        "prediction scores DSC 100 % there and one stray voxel 0 %).",
        "",
        markdown_table({name: result}, PAPER_METRICS, bold_best=False),
        f"## Surface distance (NSD at {s['nsd_tolerance_mm']:g} mm, in %) and volume",
        "",
        markdown_table({name: result}, (*SURFACE_METRICS, *VOLUME_METRICS), bold_best=False),
        "## Lesion counts (summed over cases)",
        "",
        "| Dataset | Cases | GT lesions | TP | FN | FP | Pooled recall | Pooled precision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, g in summary_rows(summary):
        pooled = g["pooled"]
        recall, prec = (_percent(pooled[k]) for k in ("recall", "precision"))
        lines.append(
            f"| {dataset} | {g['n_cases']} | {pooled['tp'] + pooled['fn']} | {pooled['tp']} | "
            f"{pooled['fn']} | {pooled['fp']} | {recall} | {prec} |"
        )
    lines += ["", "## Rules", "", result["rules"]]
    return "\n".join(lines)


def write_outputs(
    result: Mapping, out_dir: str | os.PathLike, name: str = "prediction"
) -> list[Path]:
    """Write per_case.csv, lesions.csv, summary.json and summary.md (each atomically)."""
    out = Path(out_dir)
    lesion_rows = []
    for c in result["cases"]:
        for kind, key in (("gt", "gt_lesions"), ("pred", "pred_components")):
            lesion_rows += [
                {"case": c["case"], "dataset": c["dataset"], "mask": kind, **lesion}
                for lesion in c[key]
            ]
    texts = {
        "per_case.csv": _csv(list(result["cases"]), CASE_COLUMNS),
        "lesions.csv": _csv(lesion_rows, LESION_COLUMNS),
        "summary.json": json.dumps(_json_safe({"name": name, **result}), indent=1) + "\n",
        "summary.md": summary_markdown(result, name),
    }
    paths = []
    for filename, text in texts.items():
        write_text_atomic(text, out / filename)
        paths.append(out / filename)
    return paths


__all__ = [
    "evaluate_folders",
    "write_outputs",
    "summary_markdown",
    "load_manifest",
    "case_files",
    "pair_cases",
]
