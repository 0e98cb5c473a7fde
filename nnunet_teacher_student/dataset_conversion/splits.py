"""Patient-stratified train/test split and the manifest that records it.

The manifest (``manifest.json`` beside the converted data) lists every case with its patient,
source dataset and split, so that metrics can be reported per dataset and a patient's scans
never straddle train and test::

    {"format": "nnts-manifest", "version": 1, "seed": 0, "test_fraction": 0.15,
     "cases": {"lung_001": {"patient": "lung_001", "dataset": "msd-lung", "split": "train", ...}}}
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..core.errors import InputError
from ..core.files import write_text_atomic
from ..formats.manifest import MANIFEST_FORMAT, read_manifest

MANIFEST_VERSION = 1
TEST_FRACTION = 0.15


def patient_split(
    cases: dict[str, str], test_fraction: float = TEST_FRACTION, seed: int = 0
) -> dict[str, str]:
    """Assign each case to "train" or "test", whole patients at a time.

    ``cases`` maps case id -> patient id. Patients are shuffled with ``seed`` and taken into the
    test set while that brings the number of test *cases* closer to ``round(test_fraction * n)``.
    The result depends only on the set of (case, patient) pairs, the fraction and the seed.
    """
    check_test_fraction(test_fraction)
    by_patient: dict[str, list[str]] = {}
    for case, patient in sorted(cases.items()):
        by_patient.setdefault(str(patient), []).append(case)
    target = round(test_fraction * len(cases))
    patients = sorted(by_patient)
    order = np.random.default_rng(seed).permutation(len(patients))
    test: set[str] = set()
    n_test = 0
    for i in order:
        if n_test >= target:
            break
        size = len(by_patient[patients[i]])
        if abs(n_test + size - target) < abs(n_test - target):
            test.add(patients[i])
            n_test += size
    return {case: ("test" if str(cases[case]) in test else "train") for case in cases}


def check_test_fraction(test_fraction: float) -> None:
    if not 0 <= test_fraction < 1:
        raise InputError(f"test fraction must be in [0, 1), got {test_fraction}")


def build_manifest(
    records: dict[str, dict], seed: int = 0, test_fraction: float = TEST_FRACTION
) -> dict:
    """Manifest of converted cases; each record needs ``patient`` and ``dataset``."""
    for case, rec in records.items():
        if "patient" not in rec or "dataset" not in rec:
            raise InputError(f"case {case}: record lacks 'patient' or 'dataset': {rec}")
    split = patient_split({c: r["patient"] for c, r in records.items()}, test_fraction, seed)
    cases = {
        c: {
            "patient": r["patient"],
            "dataset": r["dataset"],
            "split": split[c],
            **({"source": r["source"]} if "source" in r else {}),
        }
        for c, r in sorted(records.items())
    }
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "seed": seed,
        "test_fraction": test_fraction,
        "cases": cases,
    }


def write_manifest(manifest: dict, path: str | os.PathLike) -> None:
    write_text_atomic(json.dumps(manifest, indent=1, sort_keys=True), path)


def load_manifest(path: str | os.PathLike) -> dict:
    """Read and check a manifest (format, and no patient in both train and test)."""
    m = read_manifest(path)
    if (
        not isinstance(m, dict)
        or m.get("format") != MANIFEST_FORMAT
        or not isinstance(m.get("cases"), dict)
    ):
        raise InputError(f"{path}: not an {MANIFEST_FORMAT} file")
    check_patient_separation(m, str(path))
    return m


def check_patient_separation(manifest: dict, where: str = "manifest") -> None:
    """Raise if a patient (of one dataset) has cases in both train and test."""
    splits: dict[tuple[str, str], set[str]] = {}
    for entry in manifest["cases"].values():
        splits.setdefault((entry.get("dataset", ""), entry["patient"]), set()).add(entry["split"])
    mixed = [p for p, s in splits.items() if len(s) > 1]
    if mixed:
        raise InputError(f"{where}: patient(s) {mixed[:5]} have cases in both train and test")


def merge_manifests(manifests: list[dict]) -> dict:
    """One manifest over several datasets (case ids must be unique); splits are kept as they are."""
    cases: dict[str, dict] = {}
    for m in manifests:
        for case, entry in m["cases"].items():
            if case in cases:
                raise InputError(f"case id {case!r} appears in two manifests")
            cases[case] = entry
    merged = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "cases": dict(sorted(cases.items())),
    }
    check_patient_separation(merged, "merged manifest")
    return merged


def cases_in_split(manifest: dict, split: str, dataset: str | None = None) -> list[str]:
    """Case ids of one split, optionally of one source dataset only."""
    return sorted(
        c
        for c, e in manifest["cases"].items()
        if e["split"] == split and (dataset is None or e.get("dataset") == dataset)
    )
