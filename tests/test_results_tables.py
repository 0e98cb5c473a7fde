"""Every benchmark table in BENCHMARKS.md is rebuilt from its committed per-case result files."""
from __future__ import annotations

import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
tables = runpy.run_path(str(REPO / "benchmarks" / "results_tables.py"))


def test_benchmarks_md_tables_match_their_result_files():
    text = (REPO / "BENCHMARKS.md").read_text()
    found = tables["MARKER"].findall(text)
    assert len(found) >= 3, "BENCHMARKS.md has no tables marked as rebuilt from result files"
    for kind, folder, table in found:
        assert (REPO / folder / "per_case.csv").is_file(), folder
        assert tables["build"](kind, REPO / folder) == table, f"{kind} table of {folder} differs from its files"


def test_a_changed_cell_is_caught(tmp_path):
    text = (REPO / "BENCHMARKS.md").read_text()
    kind, folder, table = tables["MARKER"].findall(text)[0]
    first_row = table.splitlines()[2]
    tampered = text.replace(first_row, first_row.replace("|", "| 1", 1))
    assert tampered != text and tables["rebuilt"](tampered) == text   # the rebuild restores the cell
