"""Pictures of the real-CT teacher study: each real case's CT on its largest boxed slice with the box (yellow),
one method's label (blue) and the truth (green), one figure per method (box teacher, point teacher, classical).

    python benchmarks/real_ct/teacher_figures.py /work/realdata/teacher_study -o benchmarks/results/DATE_real_ct
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_teacher_student.reporting.figures import figure_weak_cases


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("work", type=Path, help="the teacher study's --work folder")
    ap.add_argument("-o", "--out", type=Path, required=True)
    a = ap.parse_args()
    for method in ("box", "point", "classical"):
        pred = a.work / "predictions" / method
        if pred.is_dir() and any(pred.glob("*.nii.gz")):
            path = figure_weak_cases(
                a.work / "weak", pred, a.out / f"teacher_{method}_cases.png", n_cases=8
            )
            print(f"{method}: {path}")


if __name__ == "__main__":
    main()
