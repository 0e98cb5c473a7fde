"""Pictures of one ``nnts benchmark`` run: weak cases (CT, boxes, pseudo-label, truth) and test cases (truth and
each model's prediction), so that a mean is read beside what it averages.

Usage: python benchmarks/run_figures.py BENCHMARK_DIR SCENARIO SEED OUT_DIR [--cases N]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(__doc__)
        return 2
    from nnunet_teacher_student.experiments.benchmark import TEACHERS, pool_paths, run_dir
    from nnunet_teacher_student.experiments.benchmark_run import stored_settings
    from nnunet_teacher_student.experiments.presets import MODEL_NAMES
    from nnunet_teacher_student.reporting.figures import figure_test_cases, figure_weak_cases
    from nnunet_teacher_student.workflow.layout import Layout

    out, scenario, seed, target = Path(argv[0]), argv[1], int(argv[2]), Path(argv[3])
    n = int(argv[argv.index("--cases") + 1]) if "--cases" in argv else 4
    settings = stored_settings(out)
    layout = Layout(run_dir(out, scenario, seed))
    pool = pool_paths(out)
    target.mkdir(parents=True, exist_ok=True)
    qc_file = layout.pseudo / "qc.json"
    qc = json.loads(qc_file.read_text())["cases"] if qc_file.is_file() else []
    weak = figure_weak_cases(
        layout.work / "weak", layout.pseudo, target / f"weak_{scenario}{seed}.png", qc=qc, n_cases=n
    )
    preds = {
        MODEL_NAMES[m]: layout.predictions(m)
        for m in settings.models
        if m not in TEACHERS and layout.predictions(m).is_dir()
    }
    test = figure_test_cases(
        pool["test_images"],
        pool["test_labels"],
        preds,
        target / f"test_{scenario}{seed}.png",
        n_cases=n,
    )
    print(f"written: {weak}, {test}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
