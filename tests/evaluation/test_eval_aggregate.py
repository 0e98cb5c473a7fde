"""Aggregation (mean ± population std, NaN counting) and the paper-style Markdown table."""

from __future__ import annotations

import math

import pytest

from nnunet_teacher_student.evaluation.aggregate import (
    format_cell,
    markdown_table,
    mean_std,
    summarize,
)


def test_mean_std_is_population_std_like_the_paper():
    # Table 5, MSD-Lung baseline recall: 1 of 3 test cases detected -> "33.33 ± 47.14"
    stats = mean_std([1.0, 0.0, 0.0])
    assert format_cell(stats, "recall") == "33.33 ± 47.14"
    # 8 of 9 -> "88.89 ± 31.43" (Table 3)
    assert format_cell(mean_std([1.0] * 8 + [0.0]), "recall") == "88.89 ± 31.43"


def test_nan_values_are_counted_not_averaged():
    stats = mean_std([0.5, math.nan, 0.7, None])
    assert stats["mean"] == pytest.approx(0.6) and stats["std"] == pytest.approx(0.1)
    assert (stats["n"], stats["n_undefined"]) == (2, 2)
    assert format_cell(stats, "dsc") == "60.00 ± 10.00 (n=2)"
    empty = mean_std([math.nan])
    assert math.isnan(empty["mean"]) and format_cell(empty, "dsc") == "n/a"
    assert format_cell(mean_std([3.0, 5.0]), "hd95_mm") == "4.00 ± 1.00"  # mm, not percent


def cases(values: dict[str, list[float]]) -> list[dict]:
    out = []
    for dataset, dscs in values.items():
        for i, d in enumerate(dscs):
            out.append(
                {
                    "case": f"{dataset}_{i}",
                    "dataset": dataset,
                    "dsc": d,
                    "dsc_tp": d,
                    "f1": d,
                    "recall": d,
                    "precision": d,
                    "hd95_mm": 10 * (1 - d),
                    "tp": 1,
                    "fn": 0,
                    "fp": 1,
                    "tp_pred": 1,
                    "gt_volume_ml": 2.0,
                    "pred_volume_ml": 2.0,
                }
            )
    return out


def test_summarize_groups_per_dataset_and_overall():
    s = summarize(cases({"MSD-Lung": [0.6, 0.8], "NSCLC": [0.2]}))
    assert list(s["datasets"]) == ["MSD-Lung", "NSCLC"]
    assert s["datasets"]["MSD-Lung"]["dsc"]["mean"] == pytest.approx(0.7)
    assert s["datasets"]["NSCLC"]["n_cases"] == 1
    assert s["overall"]["dsc"]["mean"] == pytest.approx(1.6 / 3)
    assert s["overall"]["pooled"]["tp"] == 3 and s["overall"]["pooled"]["precision"] == 0.5


def test_means_are_over_tumour_cases_and_tumour_free_cases_are_counted_apart():
    # an empty prediction on a tumour-free case scores DSC 1 by convention: it must not lift the mean
    tumour = cases({"All": [0.6, 0.8]})
    empty = [
        {"case": "e0", "dataset": "All", "dsc": 1.0, "gt_volume_ml": 0.0, "pred_volume_ml": 0.0},
        {"case": "e1", "dataset": "All", "dsc": 0.0, "gt_volume_ml": 0.0, "pred_volume_ml": 0.25},
    ]
    s = summarize(tumour + empty)
    assert s["overall"]["n_cases"] == 2 and s["overall"]["dsc"]["mean"] == pytest.approx(0.7)
    assert s["all_cases"]["n_cases"] == 4 and s["all_cases"]["dsc"]["mean"] == pytest.approx(0.6)
    free = s["tumour_free"]
    assert (free["n_cases"], free["n_with_fp"]) == (2, 1)
    assert free["fp_volume_ml"] == {"e0": 0.0, "e1": 0.25} and free["fp_volume_ml_max"] == 0.25


def test_markdown_table_layout_like_tables_3_and_5():
    results = {
        "Baseline": {"summary": summarize(cases({"MSD-Lung": [0.6, 0.8], "NSCLC": [0.2]}))},
        "DO Student": summarize(cases({"MSD-Lung": [0.9, 0.7], "NSCLC": [0.1]})),
    }
    lines = markdown_table(results).strip().splitlines()
    assert lines[0] == "| Dataset | Model | DSC | DSC-TP | F1-score | Recall | Precision |"
    assert lines[1] == "|---|---|---|---|---|---|---|"
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [r[:2] for r in rows] == [
        ["MSD-Lung", "Baseline"],
        ["", "DO Student"],
        ["NSCLC", "Baseline"],
        ["", "DO Student"],
        ["All", "Baseline"],
        ["", "DO Student"],
    ]
    assert rows[0][2] == "70.00 ± 10.00" and rows[1][2] == "**80.00 ± 10.00**"
    assert rows[2][2] == "**20.00 ± 0.00**"
    hd = markdown_table(results, metrics=("hd95_mm",)).splitlines()
    assert "**2.00 ± 1.00**" in hd[3]  # lower is better for HD95
    single = markdown_table({"Only": results["DO Student"]}, bold_best=True)
    assert "**" not in single
    tied = markdown_table(
        {"A": summarize(cases({"X": [0.0, 0.0]})), "B": summarize(cases({"X": [0.0, 0.0]}))}
    )
    assert "**" not in tied  # no model is best when all are equal (e.g. all 0.00)


def test_group_average_makes_the_patient_the_unit():
    from nnunet_teacher_student.evaluation.statistics import case_mean, group_average

    dsc = {"a_p0": 0.9, "a_p1": 0.7, "a_p2": 0.8, "b_p0": 0.2, "lone": 0.5}
    per_patient = group_average(dsc, {"a_p0": "a", "a_p1": "a", "a_p2": "a", "b_p0": "b"})
    assert per_patient == pytest.approx({"a": 0.8, "b": 0.2, "lone": 0.5})
    assert case_mean(per_patient)["n"] == 3  # three patients, not five patches
    assert case_mean(per_patient)["mean"] == pytest.approx(0.5)
