"""Which cases a mean may average, and case-level statistics over them.

The rule (the same in ``nnts evaluate``, the run report and the benchmark report): segmentation means are
taken over the **tumour cases** (ground truth not empty); a tumour-free case says nothing about DSC (an empty
prediction scores 100 % there, one stray voxel 0 %), so tumour-free cases are reported apart, as the number
with any false positive and the false-positive volume (mL). Comparisons are made at the **case level**:
the seeds of one case are averaged first, then the cases are the units (paired Wilcoxon test, bootstrap CI
over cases), and ``n`` is the number of cases.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

#: resamples of the bootstrap CIs; the generator is seeded so that a report rebuilds identically
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 10000, 0
#: differences smaller than this are ties
TIE = 1e-9


def is_tumour_case(case: Mapping) -> bool:
    """A case whose ground truth holds tumour (``gt_volume_ml`` > 0, else ``n_gt_lesions`` > 0)."""
    if case.get("gt_volume_ml") is not None:
        return float(case["gt_volume_ml"]) > 0
    return int(case.get("n_gt_lesions") or 0) > 0


def tumour_free_summary(cases: Sequence[Mapping]) -> dict:
    """The tumour-free cases: how many, how many with any predicted voxel, and the predicted (false-positive)
    volume in mL (mean and largest over those cases), with each case's volume."""
    empty = [c for c in cases if not is_tumour_case(c)]
    volumes = {str(c.get("case")): float(c.get("pred_volume_ml") or 0.0) for c in empty}
    vals = list(volumes.values())
    return {
        "n_cases": len(empty),
        "n_with_fp": int(sum(v > 0 for v in vals)),
        "fp_volume_ml_mean": float(np.mean(vals)) if vals else math.nan,
        "fp_volume_ml_max": float(max(vals)) if vals else math.nan,
        "fp_volume_ml": volumes,
    }


def tumour_free_text(block: Mapping) -> str:
    """ "1 of 2 with false positives (mean 0.004 mL, at most 0.008 mL)", "none" without tumour-free cases."""
    n = block.get("n_cases", 0)
    if not n:
        return "none"
    if not block["n_with_fp"]:
        return f"0 of {n} with false positives"
    return (
        f"{block['n_with_fp']} of {n} with false positives (mean {block['fp_volume_ml_mean']:.3g} mL, "
        f"at most {block['fp_volume_ml_max']:.3g} mL)"
    )


def seed_average(per_seed: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Case -> the mean of its values over the seeds (runs) that scored it."""
    values: dict[str, list[float]] = {}
    for run in per_seed:
        for case, v in run.items():
            if v is not None and not math.isnan(v):
                values.setdefault(case, []).append(float(v))
    return {case: float(np.mean(v)) for case, v in sorted(values.items())}


def group_average(values: Mapping[str, float], groups: Mapping[str, str]) -> dict[str, float]:
    """Group (e.g. patient) -> the mean of its cases' values: the unit of the statistics when one patient
    gives several cases (a case without a group is its own group)."""
    members: dict[str, list[float]] = {}
    for case, v in values.items():
        members.setdefault(str(groups.get(case, case)), []).append(float(v))
    return {g: float(np.mean(v)) for g, v in sorted(members.items())}


def bootstrap_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over the values (the cases), seeded; NaNs for fewer than 2."""
    arr = np.asarray(values, dtype=float)
    if arr.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = arr[rng.integers(0, arr.size, size=(BOOTSTRAP_RESAMPLES, arr.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def case_mean(values: Mapping[str, float]) -> dict:
    """Mean over cases with its bootstrap CI and ``n`` (cases)."""
    arr = np.asarray(list(values.values()), dtype=float)
    low, high = bootstrap_ci(arr)
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()) if arr.size else math.nan,
        "low": low,
        "high": high,
    }


def paired_cases(a: Mapping[str, float], b: Mapping[str, float]) -> dict | None:
    """``a - b`` on the cases both scored (one value per case, seeds averaged already): ``n`` cases, the
    mean difference with its bootstrap CI, cases better / worse, and the Wilcoxon signed-rank p (n >= 6)."""
    common = sorted(set(a) & set(b))
    if not common:
        return None
    diff = np.array([a[c] - b[c] for c in common])
    low, high = bootstrap_ci(diff)
    p = None
    if diff.size >= 6 and np.any(np.abs(diff) > TIE):
        from scipy.stats import wilcoxon

        p = float(wilcoxon(diff).pvalue)
    return {
        "n": int(diff.size),
        "mean": float(diff.mean()),
        "low": low,
        "high": high,
        "p": p,
        "better": int((diff > TIE).sum()),
        "worse": int((diff < -TIE).sum()),
        "diffs": {c: float(d) for c, d in zip(common, diff)},
    }
