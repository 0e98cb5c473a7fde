"""Patient-level statistics of a benchmark whose cases are several patches per patient (the MSD patch pool).

The benchmark report's unit is the case; ten patches of one patient are not ten independent observations.
This reads ``report/per_case.csv`` and the pool's manifest, averages each case over the seeds, then each
patient over its tumour patches (tumour-free patches apart: how many have any false positive), and writes the
per-patient table, means with bootstrap 95 % CIs over patients and paired Wilcoxon tests over patients
(n = patients) as markdown and CSV.

    python benchmarks/real_ct/patient_stats.py /work/realdata/msd_bench -o benchmarks/results/DATE_msd2d
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from nnunet_teacher_student.experiments.presets import MODEL_NAMES as NAMES
from nnunet_teacher_student.evaluation.statistics import (
    case_mean,
    group_average,
    paired_cases,
    seed_average,
)

ORDER = ("baseline", "so", "do", "upper", "teacher", "point_teacher")
PAIRS = (
    ("so", "baseline"),
    ("do", "baseline"),
    ("do", "so"),
    ("upper", "baseline"),
    ("do", "upper"),
)


def read_rows(bench: Path) -> list[dict]:
    with open(bench / "report" / "per_case.csv") as f:
        return list(csv.DictReader(f))


def per_patient(rows: list[dict], patients: dict[str, str], model: str) -> dict[str, float]:
    """Patient -> mean DSC (%) over its tumour patches, each patch averaged over the seeds first."""
    runs: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["model"] == model and r["tumour_case"] == "1" and r["dsc"] not in ("", "nan"):
            runs.setdefault(r["seed"], {})[r["case"]] = 100 * float(r["dsc"])
    return group_average(seed_average(runs.values()), patients)


def false_positives(rows: list[dict], model: str) -> tuple[int, int]:
    """(tumour-free case x seed pairs with any predicted voxel, all such pairs)."""
    free = [r for r in rows if r["model"] == model and r["tumour_case"] == "0"]
    return sum(float(r["pred_volume_ml"] or 0) > 0 for r in free), len(free)


def fmt(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path, help="the nnts benchmark folder")
    ap.add_argument(
        "-o", "--out", type=Path, required=True, help="folder for patients.md and per_patient.csv"
    )
    a = ap.parse_args()
    manifest = json.loads((a.bench / "pool" / "manifest.json").read_text())["cases"]
    patients = {c: v["patient"] for c, v in manifest.items()}
    rows = read_rows(a.bench)
    models = [m for m in ORDER if any(r["model"] == m for r in rows)]
    table = {m: per_patient(rows, patients, m) for m in models}
    lines = [
        "| Model | patients | DSC [95 % CI over patients] | tumour-free patches with FP |",
        "|---|---|---|---|",
    ]
    for m in models:
        s = case_mean(table[m])
        fp, n = false_positives(rows, m)
        lines.append(
            f"| {NAMES[m]} | {s['n']} | {fmt(s['mean'])} [{fmt(s['low'])}, {fmt(s['high'])}] | {fp} / {n} |"
        )
    lines += [
        "",
        "| Comparison | patients | mean ΔDSC [95 % CI] | better / worse | Wilcoxon p |",
        "|---|---|---|---|---|",
    ]
    for x, y in PAIRS:
        if x in table and y in table:
            d = paired_cases(table[x], table[y])
            p = "–" if d["p"] is None else f"{d['p']:.2g}"
            lines.append(
                f"| {NAMES[x]} − {NAMES[y]} | {d['n']} | {d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] "
                f"| {d['better']} / {d['worse']} | {p} |"
            )
    ids = sorted({p for t in table.values() for p in t})
    lines += [
        "",
        "Per patient (DSC %, tumour patches, seeds averaged per patch first):",
        "",
        "| Patient | " + " | ".join(NAMES[m] for m in models) + " |",
        "|---" * (len(models) + 1) + "|",
    ]
    lines += [
        f"| {p} | " + " | ".join(fmt(table[m].get(p, math.nan)) for m in models) + " |" for p in ids
    ]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "patients.md").write_text("\n".join(lines) + "\n")
    with open(a.out / "per_patient.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient", *models])
        w.writerows(
            [[p, *(round(table[m][p], 2) if p in table[m] else "" for m in models)] for p in ids]
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
