"""Why a student does or does not beat the strong-only baseline, from a finished ``nnts benchmark`` folder.

Prints, per scenario, at the case level (tumour cases; seeds averaged per case):
- the scenario's question: upper bound − baseline (is there room for weak labels to help?);
- the pseudo-labels the students learn from: the teacher's DSC, and its volume ratio (predicted / true mL, pooled)
  and lesion precision on the weak cases (do pseudo-labels teach over-segmentation?);
- each test-set model's DSC, volume ratio and recall per tumour-size third (small / middle / large true volume).

Usage: python benchmarks/analyse_effect.py BENCHMARK_DIR [--json OUT.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def volume_ratio(cases, keys) -> float:
    pred = sum(
        cases[k][c].get("pred_volume_ml") or 0
        for k in keys
        for c in cases[k]
        if (cases[k][c].get("gt_volume_ml") or 0) > 0
    )
    true = sum(
        cases[k][c]["gt_volume_ml"]
        for k in keys
        for c in cases[k]
        if (cases[k][c].get("gt_volume_ml") or 0) > 0
    )
    return pred / true if true else float("nan")


def analyse(out: Path) -> dict:
    from nnunet_teacher_student.experiments.benchmark import TEACHERS, load_case_results
    from nnunet_teacher_student.experiments.benchmark_run import stored_settings
    from nnunet_teacher_student.experiments.benchmark_report import case_values

    settings = stored_settings(out)
    cases = load_case_results(out, settings)
    result = {}
    for scenario in settings.scenarios:
        models = [m for m in settings.models if any(k[0] == scenario and k[2] == m for k in cases)]
        dsc = {m: case_values(cases, scenario, m) for m in models}
        mean = {m: float(np.mean(list(v.values()))) if v else float("nan") for m, v in dsc.items()}
        test = [m for m in models if m not in TEACHERS]
        volume = {}
        for m in test:  # the true volume of each test case (the same in every run)
            for k in cases:
                if k[0] == scenario and k[2] == m:
                    volume.update(
                        {
                            c: r["gt_volume_ml"]
                            for c, r in cases[k].items()
                            if (r.get("gt_volume_ml") or 0) > 0
                        }
                    )
        order = sorted(volume, key=volume.get)
        thirds = [
            order[: len(order) // 3],
            order[len(order) // 3 : 2 * len(order) // 3],
            order[2 * len(order) // 3 :],
        ]
        rows = {}
        for m in models:
            keys = [k for k in cases if k[0] == scenario and k[2] == m]
            recall = case_values(cases, scenario, m, "recall")
            rows[m] = {
                "dsc": mean[m],
                "volume_ratio": volume_ratio(cases, keys),
                "precision": float(
                    np.mean(list(case_values(cases, scenario, m, "precision").values()) or [np.nan])
                ),
                "recall": float(np.mean(list(recall.values()) or [np.nan])),
            }
            if m in test:
                rows[m]["dsc_by_size"] = [
                    float(np.mean([dsc[m][c] for c in t if c in dsc[m]] or [np.nan]))
                    for t in thirds
                ]
        result[scenario] = {
            "n_tumour_cases": len(volume),
            "size_thirds_ml": [
                [round(volume[t[0]], 3), round(volume[t[-1]], 3)] for t in thirds if t
            ],
            "gap_upper_baseline": 100 * (mean.get("upper", np.nan) - mean.get("baseline", np.nan)),
            "models": rows,
        }
    return result


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    res = analyse(Path(argv[0]))
    for scenario, r in res.items():
        print(
            f"## {scenario}: {r['n_tumour_cases']} tumour test cases; upper − baseline {r['gap_upper_baseline']:+.1f} "
            f"points; size thirds (mL) {r['size_thirds_ml']}"
        )
        print(
            "| model | DSC | volume pred/true | lesion precision | recall | DSC small / middle / large |"
        )
        print("|---|---|---|---|---|---|")
        for m, row in r["models"].items():
            size = " / ".join(f"{100 * v:.1f}" for v in row.get("dsc_by_size", [])) or "(weak set)"
            print(
                f"| {m} | {100 * row['dsc']:.1f} | {row['volume_ratio']:.2f} | {100 * row['precision']:.1f} | "
                f"{100 * row['recall']:.1f} | {size} |"
            )
    if "--json" in argv:
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
