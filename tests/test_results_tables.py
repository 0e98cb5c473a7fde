"""Every benchmark table in BENCHMARKS.md is rebuilt from its committed per-case result files."""

from __future__ import annotations

import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
tables = runpy.run_path(str(REPO / "benchmarks" / "results_tables.py"))


def test_readme_and_benchmarks_tables_match_their_result_files():
    for doc, at_least in (("BENCHMARKS.md", 3), ("README.md", 1)):
        found = tables["MARKER"].findall((REPO / doc).read_text())
        assert len(found) >= at_least, (
            f"{doc} has too few tables marked as rebuilt from result files"
        )
        for kind, folder, table in found:
            assert (REPO / folder).is_dir(), folder
            assert tables["build"](kind, REPO / folder) == table, (
                f"{doc}: {kind} table of {folder} differs"
            )


def test_a_changed_cell_is_caught(tmp_path):
    text = (REPO / "BENCHMARKS.md").read_text()
    kind, folder, table = tables["MARKER"].findall(text)[0]
    first_row = table.splitlines()[2]
    tampered = text.replace(first_row, first_row.replace("|", "| 1", 1))
    assert tampered != text and tables["rebuilt"](tampered) == text  # the rebuild restores the cell
