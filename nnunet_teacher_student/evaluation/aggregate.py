"""Aggregation of per-case metrics per source dataset and overall, and Markdown tables laid out like
the paper's Tables 3 and 5 (rows: dataset, then model; columns: metrics; cells "mean ± std").

Means are over the tumour cases only; the tumour-free cases are summarised apart (``statistics``)."""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from .statistics import is_tumour_case, tumour_free_summary

#: The paper's Table 3/5 columns.
PAPER_METRICS = ("dsc", "dsc_tp", "f1", "recall", "precision")
#: Surface distances, volumes and lesion counts of a case.
SURFACE_METRICS = ("hd95_mm", "nsd")
VOLUME_METRICS = ("gt_volume_ml", "pred_volume_ml")
COUNT_METRICS = ("n_gt_lesions", "n_pred_components", "tp", "fn", "fp")
#: Metrics averaged over cases, in table order.
SUMMARY_METRICS = (*PAPER_METRICS, *SURFACE_METRICS, *VOLUME_METRICS, *COUNT_METRICS)
LABELS = {
    "dsc": "DSC",
    "dsc_tp": "DSC-TP",
    "f1": "F1-score",
    "recall": "Recall",
    "precision": "Precision",
    "hd95_mm": "HD95 (mm)",
    "nsd": "NSD",
    "gt_volume_ml": "GT volume (ml)",
    "pred_volume_ml": "Pred. volume (ml)",
    "n_gt_lesions": "GT lesions",
    "n_pred_components": "Pred. components",
    "tp": "TP",
    "fn": "FN",
    "fp": "FP",
}
#: Fractions shown as percentages, like the paper.
PERCENT = {"dsc", "dsc_tp", "f1", "recall", "precision", "nsd"}
LOWER_IS_BETTER = {"hd95_mm"}
OVERALL = "All"


def mean_std(values: Iterable[float]) -> dict:
    """Mean and population std (ddof=0) over the defined values; NaNs are counted, not averaged."""
    arr = np.asarray([math.nan if v is None else float(v) for v in values], dtype=float)
    ok = arr[~np.isnan(arr)]
    return {
        "mean": float(ok.mean()) if ok.size else math.nan,
        "std": float(ok.std()) if ok.size else math.nan,
        "n": int(ok.size),
        "n_undefined": int(arr.size - ok.size),
    }


def _group_summary(cases: Sequence[Mapping], metrics: Sequence[str]) -> dict:
    out = {"n_cases": len(cases)}
    out.update({m: mean_std(c.get(m, math.nan) for c in cases) for m in metrics})
    tp, fn, fp, tp_pred = (
        sum(int(c.get(k, 0)) for c in cases) for k in ("tp", "fn", "fp", "tp_pred")
    )
    out["pooled"] = {  # lesion counts summed over cases (micro average), for reference
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "tp_pred": tp_pred,
        "recall": tp / (tp + fn) if tp + fn else math.nan,
        "precision": tp_pred / (tp_pred + fp) if tp_pred + fp else math.nan,
    }
    return out


def summarize(cases: Sequence[Mapping], metrics: Sequence[str] = SUMMARY_METRICS) -> dict:
    """``{"datasets": {name: group}, "overall": group, "tumour_free": block, "all_cases": group}``. A group
    maps each metric to mean/std/n/n_undefined over the **tumour cases** (``datasets`` and ``overall``; each
    case's dataset is its ``"dataset"`` entry, in first-seen order); ``tumour_free`` counts the cases without
    tumour and their false positives (:func:`~.statistics.tumour_free_summary`); ``all_cases`` averages every
    case, for reference only."""
    tumour = [c for c in cases if is_tumour_case(c)]
    groups: dict[str, list[Mapping]] = {}
    for case in tumour:
        groups.setdefault(str(case.get("dataset") or OVERALL), []).append(case)
    return {
        "datasets": {name: _group_summary(members, metrics) for name, members in groups.items()},
        "overall": _group_summary(tumour, metrics),
        "tumour_free": tumour_free_summary(cases),
        "all_cases": _group_summary(list(cases), metrics),
    }


def format_cell(stats: Mapping, metric: str) -> str:
    """ "67.31 ± 21.17" (percent for fractions), "n/a" when undefined for every case, and "(n=k)"
    appended when some cases were left out as undefined."""
    if not stats or stats.get("n", 0) == 0:
        return "n/a"
    scale = 100.0 if metric in PERCENT else 1.0
    cell = f"{stats['mean'] * scale:.2f} ± {stats['std'] * scale:.2f}"
    if stats.get("n_undefined", 0):
        cell += f" (n={stats['n']})"
    return cell


def _summary_of(result: Mapping) -> Mapping:
    """Accept a full ``evaluate_folders`` result or just its ``summary``."""
    return result["summary"] if "summary" in result else result


def summary_rows(summary: Mapping) -> list[tuple[str, Mapping]]:
    """(dataset, group) per source dataset, then the overall group (unless it is the only one)."""
    datasets = dict(summary.get("datasets", {}))
    rows = list(datasets.items())
    if list(datasets) != [OVERALL]:  # a single implicit group is the overall row already
        rows.append((OVERALL, summary["overall"]))
    return rows


def markdown_table(
    results_by_model: Mapping[str, Mapping],
    metrics: Sequence[str] = PAPER_METRICS,
    bold_best: bool = True,
) -> str:
    """Several models side by side like the paper's Tables 3/5: one block of rows per dataset (the
    overall block last, named "All"), one row per model, one column per metric, cells "mean ± std".
    With ``bold_best`` the best mean per dataset and metric is bold (when more than one model)."""
    order: list[str] = []
    per_model: dict[str, dict[str, Mapping]] = {}
    for model, result in results_by_model.items():
        per_model[model] = dict(summary_rows(_summary_of(result)))
        order += [d for d in per_model[model] if d not in order]
    if OVERALL in order:  # overall block last
        order.remove(OVERALL)
        order.append(OVERALL)
    lines = [
        "| Dataset | Model | " + " | ".join(LABELS.get(m, m) for m in metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for dataset in order:
        best: dict[str, float] = {}
        for m in metrics:
            means = [
                per_model[mo][dataset][m]["mean"]
                for mo in per_model
                if dataset in per_model[mo] and per_model[mo][dataset].get(m, {}).get("n", 0)
            ]
            if (
                bold_best and len(per_model) > 1 and means and max(means) > min(means)
            ):  # a tie has no best
                best[m] = min(means) if m in LOWER_IS_BETTER else max(means)
        first = True
        for model, groups in per_model.items():
            if dataset not in groups:
                continue
            cells = []
            for m in metrics:
                stats = groups[dataset].get(m, {})
                cell = format_cell(stats, m)
                if m in best and stats.get("n", 0) and stats["mean"] == best[m]:
                    cell = f"**{cell}**"
                cells.append(cell)
            lines.append(f"| {dataset if first else ''} | {model} | " + " | ".join(cells) + " |")
            first = False
    return "\n".join(lines) + "\n"
