"""Per-case segmentation metrics: DSC, lesion-wise detection (TP/FP/FN, recall, precision, F1),
DSC-TP, HD95, surface Dice (NSD) and volumes. The rules are stated in :data:`RULES`.

Libraries: ``cc3d`` (connected-components-3d) labels 26-connected components (fast C++, one pass);
MONAI (``monai.metrics``, the framework the paper itself was built on) computes HD95 and NSD from
mask edges with exact Euclidean distances in physical units. DSC and the lesion bookkeeping are a
few numpy counts (``np.bincount`` over component labels), which no library packages in this form.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from ..core.components import label_components

OVERLAP_THRESHOLD = 0.25
NSD_TOLERANCE_MM = 2.0
HD_PERCENTILE = 95.0
CONNECTIVITY = 26

_RULES_TEMPLATE = """\
- Masks: a voxel is tumour when its value is > 0 (or == the chosen label). Arrays are [z, y, x]; all
  distances and volumes use the image spacing (mm, ml).
- Lesions: 3-D connected components with 26-connectivity (cc3d), separately in the ground truth (GT)
  and in the prediction.
- Detection: a GT lesion is a true positive (TP) when >= {pct} % of its voxels lie inside the predicted
  mask (the union of all predicted components), otherwise a false negative (FN). A predicted component
  is matched when >= {pct} % of its voxels lie inside the GT mask, otherwise it is a false positive (FP).
  recall = TP / #GT lesions, precision = matched predicted components / #predicted components,
  F1 = 2 * precision * recall / (precision + recall) (0 when both are 0).
- DSC: 2 |P & G| / (|P| + |G|) over the whole image.
- DSC-TP: DSC between the TP GT lesions and the predicted components that touch (share >= 1 voxel
  with) a TP GT lesion; missed lesions and predicted components away from TP lesions are ignored.
- HD95: max of the two directed 95th percentiles of edge-voxel distances (mm) between prediction and
  GT (MONAI compute_hausdorff_distance, percentile=95). NSD: fraction of edge voxels of both masks
  within {tol} mm of the other mask's edge (MONAI compute_surface_dice, voxel edges, no sub-voxel areas).
  Edge voxels are mask voxels with a 6-neighbour outside the mask (the image border counts as outside).
- Empty masks: GT and prediction both empty -> DSC 1, NSD 1, HD95 0; recall, precision, F1 and DSC-TP
  undefined (NaN). GT empty, prediction not -> DSC 0, NSD 0, precision 0, F1 0; recall, HD95, DSC-TP
  NaN. GT not empty, prediction empty -> DSC 0, NSD 0, recall 0, F1 0; precision, HD95, DSC-TP NaN.
  DSC-TP is NaN whenever no GT lesion is detected.
- Aggregation: mean +- population std (ddof=0, as the paper's tables) over the cases where the
  metric is defined; NaNs are left out and counted (n, n_undefined are reported next to each mean).
"""


def rules(overlap: float = OVERLAP_THRESHOLD, nsd_tolerance_mm: float = NSD_TOLERANCE_MM) -> str:
    """The evaluation rules as Markdown bullet points, for the given thresholds."""
    return _RULES_TEMPLATE.format(pct=f"{100 * overlap:g}", tol=f"{nsd_tolerance_mm:g}")


RULES = rules()


@dataclass
class Lesion:
    """One connected component: its label, size, and the fraction of it inside the other mask.
    ``positive``: for a GT lesion, detected (TP); for a predicted component, matched (not an FP)."""

    id: int
    voxels: int
    volume_ml: float
    overlap_fraction: float
    positive: bool


@dataclass
class LesionMatch:
    """Lesion-wise detection result of one case."""

    gt_lesions: list[Lesion] = field(default_factory=list)
    pred_components: list[Lesion] = field(default_factory=list)
    dsc_tp: float = math.nan

    @property
    def tp(self) -> int:
        return sum(lesion.positive for lesion in self.gt_lesions)

    @property
    def fn(self) -> int:
        return len(self.gt_lesions) - self.tp

    @property
    def tp_pred(self) -> int:
        return sum(c.positive for c in self.pred_components)

    @property
    def fp(self) -> int:
        return len(self.pred_components) - self.tp_pred

    @property
    def recall(self) -> float:
        return self.tp / len(self.gt_lesions) if self.gt_lesions else math.nan

    @property
    def precision(self) -> float:
        return self.tp_pred / len(self.pred_components) if self.pred_components else math.nan

    @property
    def f1(self) -> float:
        r, p = self.recall, self.precision
        if math.isnan(r) and math.isnan(p):
            return math.nan
        if math.isnan(r) or math.isnan(p):  # exactly one side empty: the other side is all wrong
            return 0.0
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def binarize(mask: np.ndarray, label: int | None = None) -> np.ndarray:
    """Boolean tumour mask: ``mask > 0``, or ``mask == label`` when a label is given."""
    mask = np.asarray(mask)
    if mask.dtype == bool and label is None:
        return mask
    return mask > 0 if label is None else mask == label


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice similarity coefficient of two boolean masks; 1.0 when both are empty."""
    denom = int(pred.sum()) + int(gt.sum())
    return 1.0 if denom == 0 else 2.0 * int(np.logical_and(pred, gt).sum()) / denom


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    """Tight bounding box of the True voxels (the whole array when empty)."""
    if not mask.any():
        return tuple(slice(0, s) for s in mask.shape)
    out = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    return label_components(mask, CONNECTIVITY)


def _describe(
    labels: np.ndarray, n: int, other: np.ndarray, voxel_ml: float, threshold: float
) -> list[Lesion]:
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    covered = np.bincount(labels[other].ravel(), minlength=n + 1)
    out = []
    for i in range(1, n + 1):
        frac = float(covered[i]) / float(sizes[i])
        out.append(Lesion(i, int(sizes[i]), float(sizes[i]) * voxel_ml, frac, frac >= threshold))
    return out


def match_lesions(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
    overlap: float = OVERLAP_THRESHOLD,
) -> LesionMatch:
    """Lesion-wise detection of two boolean masks (see :data:`RULES`)."""
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    gt_labels, n_gt = _components(gt)
    pred_labels, n_pred = _components(pred)
    result = LesionMatch(
        _describe(gt_labels, n_gt, pred, voxel_ml, overlap),
        _describe(pred_labels, n_pred, gt, voxel_ml, overlap),
    )
    tp_ids = np.array([0] + [lesion.id for lesion in result.gt_lesions if lesion.positive])
    if len(tp_ids) > 1:
        gt_tp = np.isin(gt_labels, tp_ids[1:])
        touching = np.unique(pred_labels[gt_tp & pred])
        pred_tp = np.isin(pred_labels, touching[touching > 0])
        result.dsc_tp = dice(pred_tp, gt_tp)
    return result


def surface_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing_zyx: Sequence[float],
    tolerance_mm: float = NSD_TOLERANCE_MM,
    percentile: float = HD_PERCENTILE,
) -> tuple[float, float]:
    """(HD95 in mm, NSD at ``tolerance_mm``) of two boolean masks, with the empty-mask rules."""
    p_any, g_any = bool(pred.any()), bool(gt.any())
    if not p_any and not g_any:
        return 0.0, 1.0
    if not p_any or not g_any:
        return math.nan, 0.0
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    # Cropping to the union's bounding box changes no edge voxel (outside it is background either
    # way, and the image border already counts as background) and saves time on full CTs.
    box = _bbox(pred | gt)
    y_pred = torch.from_numpy(np.ascontiguousarray(pred[box]))[None, None].float()
    y = torch.from_numpy(np.ascontiguousarray(gt[box]))[None, None].float()
    spacing = [float(s) for s in spacing_zyx]
    with warnings.catch_warnings():  # MONAI 1.5+ warns about an argument its own code still passes
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"monai\.")
        hd = compute_hausdorff_distance(
            y_pred, y, include_background=True, percentile=percentile, spacing=spacing
        )
        nsd = compute_surface_dice(
            y_pred,
            y,
            class_thresholds=[float(tolerance_mm)],
            include_background=True,
            spacing=spacing,
        )
    return float(hd.reshape(-1)[0]), float(nsd.reshape(-1)[0])


def case_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    label: int | None = None,
    gt_label: int | None = None,
    overlap: float = OVERLAP_THRESHOLD,
    nsd_tolerance_mm: float = NSD_TOLERANCE_MM,
    surface: bool = True,
) -> dict:
    """All metrics of one case as a flat dict of scalars plus ``gt_lesions``/``pred_components`` lists.

    ``pred``/``gt`` are [z, y, x] arrays (label maps or booleans); ``label``/``gt_label`` select the
    tumour label (default: any value > 0; ``gt_label`` defaults to ``label``). ``surface=False``
    skips HD95/NSD (NaN)."""
    pred_arr, gt_arr = np.asarray(pred), np.asarray(gt)
    if pred_arr.shape != gt_arr.shape or pred_arr.ndim != 3:
        raise ValueError(
            f"pred and gt must be 3-D arrays of one shape, got {pred_arr.shape} and {gt_arr.shape}"
        )
    if len(spacing_zyx) != 3 or any(not (float(s) > 0) for s in spacing_zyx):
        raise ValueError(f"spacing_zyx must be 3 positive numbers, got {spacing_zyx!r}")
    p = binarize(pred_arr, label)
    g = binarize(gt_arr, label if gt_label is None else gt_label)
    box = _bbox(p | g)  # every metric below is unchanged by cropping to the union's bounding box
    p, g = p[box], g[box]
    match = match_lesions(p, g, spacing_zyx, overlap)
    hd95, nsd = (
        surface_metrics(p, g, spacing_zyx, nsd_tolerance_mm) if surface else (math.nan, math.nan)
    )
    voxel_ml = float(np.prod([float(s) for s in spacing_zyx])) / 1000.0
    return {
        "dsc": dice(p, g),
        "dsc_tp": match.dsc_tp,
        "f1": match.f1,
        "recall": match.recall,
        "precision": match.precision,
        "hd95_mm": hd95,
        "nsd": nsd,
        "n_gt_lesions": len(match.gt_lesions),
        "n_pred_components": len(match.pred_components),
        "tp": match.tp,
        "fn": match.fn,
        "fp": match.fp,
        "tp_pred": match.tp_pred,
        "gt_volume_ml": int(g.sum()) * voxel_ml,
        "pred_volume_ml": int(p.sum()) * voxel_ml,
        "gt_lesions": [asdict(lesion) for lesion in match.gt_lesions],
        "pred_components": [asdict(c) for c in match.pred_components],
    }
