"""Quality control of pseudo-labels: per-case numbers, filters, and the QC table.

Per case (:func:`case_qc`): pseudo-mask volume, lesion count, how much of each box the mask fills, how well
the mask's own tight box matches each given box (:func:`box_consistency`: IoU, empty boxes),
the teacher's mean tumour probability and binary entropy inside the boxes, boxed slices left empty,
the DSC against the true mask where one is known (phantoms, scenarios); with a teacher ensemble, how much
its members disagree (``disagreement``: 1 - their mean pairwise DSC); in a noisy-student round, how much the
case's label changed since the previous round (``label_change``: 1 - the DSC of the two).

Filters (:func:`apply_filters`) name the doubtful cases; ``nnts pseudo-label`` either flags them in
the table or drops them (lists them in ``excluded.json``, which ``make-student-dataset`` skips).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy.special import entr

from ..core.components import label_components
from ..core.files import write_text_atomic
from ..evaluation.metrics import dice
from ..formats.boxes import BoxSet
from ..teacher.inference import TeacherPrediction
from .folder_format import QC_FILE, QC_TABLE

# filter name -> (record key, "min" keeps values >= threshold / "max" keeps values <= threshold)
FILTERS: dict[str, tuple[str, str]] = {
    "min_box_fill": ("box_fill_mean", "min"),
    "min_box_iou": ("box_iou_mean", "min"),
    "max_entropy": ("entropy_in_boxes", "max"),
    "max_empty_slices": ("empty_boxed_slices", "max"),
    "min_volume_ml": ("volume_ml", "min"),
    "max_disagreement": ("disagreement", "max"),
    "max_label_change": ("label_change", "max"),
}
CSV_COLUMNS = (
    "case",
    "volume_ml",
    "lesion_count",
    "n_boxes",
    "boxed_slices",
    "empty_boxed_slices",
    "box_fill_mean",
    "box_fill_min",
    "box_iou_mean",
    "box_iou_min",
    "empty_boxes",
    "probability_in_boxes",
    "entropy_in_boxes",
    "disagreement",
    "label_change",
    "dice_vs_truth",
    "seconds",
    "flags",
)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def binary_entropy_bits(p: np.ndarray) -> np.ndarray:
    """Entropy of a Bernoulli(p) in bits (0 for p in {0, 1}, 1 for p = 0.5)."""
    p = np.clip(np.asarray(p, np.float64), 0.0, 1.0)
    return (entr(p) + entr(1.0 - p)) / math.log(2.0)


def box_consistency(mask: np.ndarray, boxset: BoxSet) -> list[float]:
    """Per box, the IoU of the given box and the tight box of the pseudo-mask's 2-D components (on the box's
    slice) that touch it; 0 where none does (an empty box). A pseudo-label that keeps to its boxes scores
    near 1 even where its voxels do not fill the box (a round tumour in a square box)."""
    from scipy import ndimage

    out = []
    for b in boxset.boxes:
        labels, _ = ndimage.label(mask[b.slice], structure=np.ones((3, 3), bool))
        touching = np.unique(labels[b.ymin : b.ymax + 1, b.xmin : b.xmax + 1])
        touching = touching[touching > 0]
        if not touching.size:
            out.append(0.0)
            continue
        ys, xs = np.nonzero(np.isin(labels, touching))
        y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
        inter = max(0, min(y1, b.ymax) - max(y0, b.ymin) + 1) * max(
            0, min(x1, b.xmax) - max(x0, b.xmin) + 1
        )
        union = (
            (y1 - y0 + 1) * (x1 - x0 + 1) + (b.ymax - b.ymin + 1) * (b.xmax - b.xmin + 1) - inter
        )
        out.append(round(inter / union, 6))
    return out


def case_qc(
    pred: TeacherPrediction,
    boxset: BoxSet,
    spacing_xyz: Sequence[float],
    true_mask: np.ndarray | None = None,
) -> dict:
    """QC record of one pseudo mask (``spacing_xyz`` in SimpleITK order; ``None`` where undefined)."""
    mask = pred.mask > 0
    inside = pred.box_mask > 0
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    _, n_lesions = label_components(mask)
    fills = [
        float(mask[b.slice, b.ymin : b.ymax + 1, b.xmin : b.xmax + 1].mean()) for b in boxset.boxes
    ]
    boxed = np.flatnonzero(inside.reshape(inside.shape[0], -1).any(axis=1))
    filled = mask.reshape(mask.shape[0], -1).any(axis=1)
    prob = pred.probability[inside]
    ious = box_consistency(mask, boxset)
    record = {
        "volume_ml": float(mask.sum()) * voxel_ml,
        "lesion_count": int(n_lesions),
        "n_boxes": len(boxset.boxes),
        "boxed_slices": int(boxed.size),
        "empty_boxed_slices": int((~filled[boxed]).sum()),
        "box_fill": [round(f, 6) for f in fills],
        "box_fill_mean": _nan_to_none(float(np.mean(fills))) if fills else None,
        "box_fill_min": _nan_to_none(float(np.min(fills))) if fills else None,
        "box_iou": ious,
        "box_iou_mean": float(np.mean(ious)) if ious else None,
        "box_iou_min": float(np.min(ious)) if ious else None,
        "empty_boxes": int(sum(i == 0 for i in ious)),
        "probability_in_boxes": float(prob.mean()) if prob.size else None,
        "entropy_in_boxes": float(binary_entropy_bits(prob).mean()) if prob.size else None,
        "dice_vs_truth": None,
    }
    if true_mask is not None:
        if true_mask.shape != mask.shape:
            raise ValueError(
                f"true mask shape {true_mask.shape} differs from the pseudo mask {mask.shape}"
            )
        record["dice_vs_truth"] = dice(mask, np.asarray(true_mask) > 0)
    return record


def failed_filters(record: Mapping, thresholds: Mapping[str, float | None]) -> list[str]:
    """Names of the filters ``record`` fails; a metric that is undefined (``None``) passes."""
    failed = []
    for name, threshold in thresholds.items():
        if threshold is None:
            continue
        if name not in FILTERS:
            raise ValueError(f"unknown QC filter {name!r} (known: {', '.join(FILTERS)})")
        key, kind = FILTERS[name]
        value = record.get(key)
        if value is None:
            continue
        if (kind == "min" and value < threshold) or (kind == "max" and value > threshold):
            failed.append(name)
    return failed


def apply_filters(
    records: Iterable[Mapping], **thresholds: float | None
) -> tuple[list[Mapping], dict[str, list[str]]]:
    """``(kept records, {filter: cases it removed})`` for thresholds named as :data:`FILTERS` (``min_box_fill=0.3``;
    None: off); a case failing several filters is listed under each."""
    removed: dict[str, list[str]] = {k: [] for k, v in thresholds.items() if v is not None}
    kept = []
    for r in records:
        failed = failed_filters(r, thresholds)
        for name in failed:
            removed[name].append(r["case"])
        if not failed:
            kept.append(r)
    return kept, removed


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarize(records: Sequence[Mapping]) -> dict:
    """Means over cases (``None`` where no case has the metric) and the seconds per case."""
    out: dict = {"cases": len(records)}
    for key in (
        "volume_ml",
        "lesion_count",
        "box_fill_mean",
        "box_iou_mean",
        "probability_in_boxes",
        "entropy_in_boxes",
        "empty_boxed_slices",
        "disagreement",
        "label_change",
        "dice_vs_truth",
        "seconds",
    ):
        values = [r[key] for r in records if r.get(key) is not None]
        out[f"mean_{key}"] = _mean(values)
    out["cases_with_truth"] = sum(r.get("dice_vs_truth") is not None for r in records)
    return out


def table_csv(records: Sequence[Mapping]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in records:
        row = {k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS}
        row["flags"] = ";".join(r.get("flags", []))
        writer.writerow(row)
    return buf.getvalue()


def write_qc_table(
    records: Sequence[Mapping], out_dir: str | Path, extra: Mapping | None = None
) -> dict:
    """Write ``qc.csv`` and ``qc.json`` (records + summary + ``extra``) atomically; returns the JSON."""
    out = Path(out_dir)
    doc = {"summary": summarize(records), **(extra or {}), "cases": list(records)}
    write_text_atomic(table_csv(records), out / QC_TABLE)
    write_text_atomic(json.dumps(doc, indent=1), out / QC_FILE)
    return doc
