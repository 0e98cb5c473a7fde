"""The benchmark scripts stay runnable with one command each: each runs here on the test models with
the smallest sizes (in this process, to spare the imports) and writes its report. Their figures are
benchmarks, not asserted: only the report's shape and sanity."""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, argv: list[str], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [script, *argv])
    try:
        runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
    except SystemExit as e:
        assert e.code in (0, None), f"{script} exited with {e.code}"


@pytest.mark.slow
def test_bench_teacher_region_runs(box_teacher_model, tmp_path, monkeypatch):
    out = tmp_path / "region.json"
    _run("bench_teacher_region.py", ["-m", str(box_teacher_model), "--preset", "tiny", "--volume", "64x64x32",
                                     "--cases", "1", "--out", str(out)], monkeypatch)
    report = json.loads(out.read_text())
    case, summary = report["bench"]["cases"][0], report["bench"]["summary"]
    assert report["date"] and report["machine"] and case["grid_xyz"] == [64, 64, 32]
    assert 0 < case["region_share"] < 1 and case["time_region_s"] > 0 and case["time_full_s"] > 0
    assert summary["n_cases"] == 1 and 0 <= summary["mean_dsc_region_vs_full"] <= 1


@pytest.mark.slow
def test_bench_predict_runs(strong_model, tmp_path, monkeypatch):
    out = tmp_path / "predict.json"
    _run("bench_predict.py", ["-m", str(strong_model), "--size", "tiny", "--cases", "1", "--repeats", "1",
                              "--fov-pad", "1.0", "--out", str(out)], monkeypatch)
    speed = json.loads(out.read_text())["speed"]
    modes = speed["cases"][0]["modes"]
    assert set(modes) == {"full", "box", "per-lung", "full-skip", "grid-box", "grid-skip", "aligned", "default"}
    assert all(m["cpu_s"] > 0 and m["tiles_run"] > 0 for m in modes.values())
    # skipping tiles runs fewer of them than the full tiling, and changes nothing near the lungs
    assert modes["full-skip"]["tiles_run"] < modes["full"]["tiles_run"]
    assert modes["full-skip"]["dsc_vs_full_near_lungs"] == 1.0 and modes["full"]["dsc_vs_full_near_lungs"] == 1.0
    assert 0 < modes["box"]["predicted_fraction"] < 1 and speed["summary"]["n_cases"] == 1
