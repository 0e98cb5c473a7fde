"""Rebuild the benchmark tables of BENCHMARKS.md from committed per-case result files.

A table in BENCHMARKS.md that comes from a benchmark sits between two markers::

    <!-- table test|paired|teachers benchmarks/results/RUN/report_case_level -->
    ...the table...
    <!-- end table -->

The folder holds the report's ``per_case.csv`` and ``summary.json`` (its per-run records); for ``models`` (one run,
e.g. ``nnts demo``) it holds ``evaluation/<model>/per_case.csv`` as ``nnts evaluate`` writes it. ``--write``
rewrites every marked table from its files; ``--check`` (and ``tests/test_results_tables.py``) fails when one
differs. README.md and BENCHMARKS.md are both checked.

Usage: python benchmarks/results_tables.py [--check | --write] [FILE.md ...]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- table (\w+) (\S+) -->\n(.*?)<!-- end table -->", re.S)


def build(kind: str, folder: Path) -> str:
    """The Markdown table ``kind`` (test: test-set models; teachers: weak-set models; paired: comparisons)."""
    if kind == "models":
        return models_table(folder)
    from nnunet_teacher_student.experiments.benchmark import TEACHERS, TEST_MODELS
    from nnunet_teacher_student.experiments.benchmark_report import (
        aggregate,
        markdown_table,
        paired_table,
        read_per_case_csv,
    )

    cases = read_per_case_csv((folder / "per_case.csv").read_text())
    records = json.loads((folder / "summary.json").read_text())["records"]
    if kind == "paired":
        scenarios = list(
            dict.fromkeys(r["scenario"] for r in sorted(records, key=lambda r: r["n_strong"]))
        )
        return paired_table(cases, scenarios)
    models = {"test": TEST_MODELS, "teachers": TEACHERS}[kind]
    return markdown_table(aggregate(records, cases), models) + "\n"


#: the models of one run's table, in this order, with their names
RUN_MODELS = {
    "teacher": "Box teacher (pseudo-labels of the weak cases)",
    "baseline": "Baseline (strong only)",
    "so_nnunet": "Control: nnU-Net on strong + pseudo",
    "so": "SO student",
    "do": "DO student",
}


def models_table(folder: Path) -> str:
    """One run's models (``evaluation/<model>/per_case.csv``): tumour-case DSC, recall and precision, and the
    tumour-free cases with false positives (the rule of ``evaluation.statistics``)."""
    import csv

    from nnunet_teacher_student.evaluation.aggregate import summarize
    from nnunet_teacher_student.evaluation.statistics import tumour_free_text

    lines = [
        "| Model | tumour cases | DSC | Recall | Precision | tumour-free cases |",
        "|---|---|---|---|---|---|",
    ]
    for model, name in RUN_MODELS.items():
        path = folder / "evaluation" / model / "per_case.csv"
        if not path.is_file():
            continue
        cases = [
            {
                k: (
                    float(v)
                    if k not in ("case", "dataset", "pred_file", "gt_file", "missing_prediction")
                    and v not in ("", "nan")
                    else (None if v in ("", "nan") else v)
                )
                for k, v in row.items()
            }
            for row in csv.DictReader(path.open())
        ]
        s = summarize(cases)
        cell = {m: f"{100 * s['overall'][m]['mean']:.1f}" for m in ("dsc", "recall", "precision")}
        lines.append(
            f"| {name} | {s['overall']['n_cases']} | {cell['dsc']} | {cell['recall']} | {cell['precision']} "
            f"| {tumour_free_text(s['tumour_free'])} |"
        )
    return "\n".join(lines) + "\n"


def rebuilt(text: str) -> str:
    """``text`` with every marked table rebuilt from its files."""

    def one(m: re.Match) -> str:
        return f"<!-- table {m[1]} {m[2]} -->\n{build(m[1], REPO / m[2])}<!-- end table -->"

    return MARKER.sub(one, text)


def main(argv: list[str]) -> int:
    mode = argv[0] if argv and argv[0].startswith("--") else "--check"
    paths = [Path(a) for a in argv if not a.startswith("--")] or [
        REPO / "README.md",
        REPO / "BENCHMARKS.md",
    ]
    failed = 0
    for path in paths:
        text = path.read_text()
        new = rebuilt(text)
        if mode == "--write":
            path.write_text(new)
            print(f"{path}: {len(MARKER.findall(text))} table(s) rebuilt")
        elif new != text:
            print(f"{path}: a marked table differs from its result files (run with --write)")
            failed = 1
        else:
            print(f"{path}: {len(MARKER.findall(text))} table(s) match their result files")
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
