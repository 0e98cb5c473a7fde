"""Patient-stratified, seeded split and the manifest."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from nnunet_teacher_student.dataset_conversion.splits import (
    build_manifest,
    cases_in_split,
    load_manifest,
    merge_manifests,
    patient_split,
    write_manifest,
)
from nnunet_teacher_student.core.errors import InputError


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=80), st.integers(0, 10))
def test_split_keeps_patients_whole_and_hits_fifteen_percent(scans_per_patient, seed):
    cases = {f"p{p}_s{s}": f"p{p}" for p, n in enumerate(scans_per_patient) for s in range(n)}
    split = patient_split(cases, 0.15, seed)
    by_patient: dict[str, set] = {}
    for case, side in split.items():
        by_patient.setdefault(cases[case], set()).add(side)
    assert all(len(s) == 1 for s in by_patient.values())
    n_test = sum(v == "test" for v in split.values())
    target = round(0.15 * len(cases))
    assert abs(n_test - target) <= max(scans_per_patient)  # at most one patient's scans away
    assert split == patient_split(dict(reversed(list(cases.items()))), 0.15, seed)  # order-free


def test_split_with_one_scan_per_patient_is_exact_and_seeded():
    cases = {f"c{i:03d}": f"c{i:03d}" for i in range(200)}
    a, b, c = (
        patient_split(cases, seed=0),
        patient_split(cases, seed=0),
        patient_split(cases, seed=1),
    )
    assert sum(v == "test" for v in a.values()) == 30
    assert a == b and a != c
    with pytest.raises(InputError):
        patient_split(cases, test_fraction=1.0)


def test_manifest_round_trip_and_merging(tmp_path):
    m1 = build_manifest(
        {f"lung_{i}": {"patient": f"lung_{i}", "dataset": "msd-lung"} for i in range(20)}
    )
    m2 = build_manifest(
        {
            f"L{i}": {"patient": f"P{i // 2}", "dataset": "nsclc-radiomics", "source": "/x"}
            for i in range(20)
        },
        seed=3,
    )
    write_manifest(m1, tmp_path / "m1.json")
    assert load_manifest(tmp_path / "m1.json") == json.loads(json.dumps(m1))
    merged = merge_manifests([m1, m2])
    assert len(merged["cases"]) == 40
    assert len(cases_in_split(merged, "test", "msd-lung")) == 3
    assert (
        len(cases_in_split(merged, "test")) == 5
    )  # 3 + 2 (patients in pairs: 2 is as close to 3 as 4)
    with pytest.raises(InputError, match="appears in two manifests"):
        merge_manifests([m1, m1])
    m1["cases"]["lung_1"]["patient"] = m1["cases"]["lung_2"]["patient"] = "same"
    m1["cases"]["lung_1"]["split"], m1["cases"]["lung_2"]["split"] = "train", "test"
    write_manifest(m1, tmp_path / "bad.json")
    with pytest.raises(InputError, match="both train and test"):
        load_manifest(tmp_path / "bad.json")
    with pytest.raises(InputError, match="lacks 'patient'"):
        build_manifest({"x": {"dataset": "d"}})
