"""Rebuild the benchmark tables of BENCHMARKS.md from committed per-case result files.

A table in BENCHMARKS.md that comes from a benchmark sits between two markers::

    <!-- table test|paired|teachers benchmarks/results/RUN/report_case_level -->
    ...the table...
    <!-- end table -->

The folder holds the report's ``per_case.csv`` and ``summary.json`` (its per-run records). ``--write`` rewrites
every marked table from its files; ``--check`` (and ``tests/test_results_tables.py``) fails when one differs.

Usage: python benchmarks/results_tables.py [--check | --write] [BENCHMARKS.md]
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
    from nnunet_teacher_student.experiments.benchmark import TEACHERS, TEST_MODELS
    from nnunet_teacher_student.reporting.benchmark_report import (aggregate, markdown_table, paired_table,
                                                                   read_per_case_csv)

    cases = read_per_case_csv((folder / "per_case.csv").read_text())
    records = json.loads((folder / "summary.json").read_text())["records"]
    if kind == "paired":
        scenarios = list(dict.fromkeys(r["scenario"] for r in sorted(records, key=lambda r: r["n_strong"])))
        return paired_table(cases, scenarios)
    models = {"test": TEST_MODELS, "teachers": TEACHERS}[kind]
    return markdown_table(aggregate(records, cases), models) + "\n"


def rebuilt(text: str) -> str:
    """``text`` with every marked table rebuilt from its files."""
    def one(m: re.Match) -> str:
        return f"<!-- table {m[1]} {m[2]} -->\n{build(m[1], REPO / m[2])}<!-- end table -->"

    return MARKER.sub(one, text)


def main(argv: list[str]) -> int:
    mode = argv[0] if argv and argv[0].startswith("--") else "--check"
    path = Path(next((a for a in argv if not a.startswith("--")), REPO / "BENCHMARKS.md"))
    text = path.read_text()
    new = rebuilt(text)
    if mode == "--write":
        path.write_text(new)
        print(f"{path}: {len(MARKER.findall(text))} table(s) rebuilt")
        return 0
    if new != text:
        print(f"{path}: a marked table differs from its result files (run with --write)")
        return 1
    print(f"{path}: {len(MARKER.findall(text))} table(s) match their result files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
