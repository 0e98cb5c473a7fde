"""Paper-like scenarios (``nnts make-scenario``) and the student datasets built from them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnts_testlib import STRONG_ID

from nnunet_teacher_student import cli
from nnunet_teacher_student.formats.boxes import BoxSet
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.nnunet.raw_dataset import find_raw_dataset, training_cases
from nnunet_teacher_student.students.scenario import choose_strong, make_scenario
from nnunet_teacher_student.students.settings import ScenarioSettings, StudentDatasetSettings
from nnunet_teacher_student.teacher.settings import TeacherDatasetSettings
from nnunet_teacher_student.formats.weak_set import WeakSet

SCENARIO_ID, STUDENT_ID = 541, 542  # ids of this file in the session's nnUNet_raw


@pytest.fixture(scope="module")
def grouped_manifest(phantom_study, tmp_path_factory):
    """The phantom manifest with strong cases 1+2 and 3+4 as two scans of one patient each."""
    m = json.loads((phantom_study / "manifest.json").read_text())
    m["phantom_0002"]["patient"] = m["phantom_0001"]["patient"]
    m["phantom_0004"]["patient"] = m["phantom_0003"]["patient"]
    path = tmp_path_factory.mktemp("manifest") / "manifest.json"
    path.write_text(json.dumps(m))
    return path


@pytest.fixture(scope="module")
def scenario(phantom_study, grouped_manifest, tmp_path_factory):
    weak = tmp_path_factory.mktemp("scenario") / "weak"
    record = make_scenario(
        ScenarioSettings(
            STRONG_ID,
            weak,
            3,
            SCENARIO_ID,
            "Scenario",
            seed=1,
            annotator="exact",
            manifest=grouped_manifest,
            size_balance=True,
            progress=False,
        )
    )
    return record, weak


def test_choose_strong_keeps_patients_whole_and_is_seeded():
    cases = [f"c{i}" for i in range(10)]
    patients = {"c0": "p0", "c1": "p0", "c2": "p1", "c3": "p1", "c4": "p1"}
    for seed in range(20):
        chosen = choose_strong(cases, 4, patients, seed)
        assert len(chosen) == 4 and chosen == choose_strong(cases, 4, patients, seed)
        for group in ({"c0", "c1"}, {"c2", "c3", "c4"}):
            assert len(group & set(chosen)) in (0, len(group))
    assert len({tuple(choose_strong(cases, 4, patients, s)) for s in range(20)}) > 1


def test_scenario_splits_pool_and_keeps_truth(scenario, phantom_study):
    record, weak_dir = scenario
    pool = training_cases(find_raw_dataset(STRONG_ID))
    strong = training_cases(find_raw_dataset(SCENARIO_ID))
    weak = WeakSet(weak_dir)
    assert record["strong_count"] == len(strong) == 3 and strong == record["strong_cases"]
    assert sorted(strong + weak.case_ids()) == pool and not set(strong) & set(weak.case_ids())
    test_cases = {p.name[:-7] for p in (phantom_study / "test" / "images").glob("*.nii.gz")}
    assert set(record["test_cases_excluded"]) == test_cases and not test_cases & set(pool)
    # patients 1+2 and 3+4 are never split between strong and weak
    for a, b in (("phantom_0001", "phantom_0002"), ("phantom_0003", "phantom_0004")):
        assert (a in strong) == (b in strong)
    ds = json.loads((find_raw_dataset(SCENARIO_ID) / "dataset.json").read_text())
    assert ds["numTraining"] == 3 and ds["nnts_scenario"]["size_balance"] is True
    assert json.loads((weak_dir / "scenario.json").read_text())["weak_cases"] == weak.case_ids()
    src = find_raw_dataset(STRONG_ID)
    for case in weak.case_ids():  # exact annotator: the boxes are the tight boxes of the true mask
        ct, boxset = weak.read_case(case)
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(weak.label_path(case))))
        original = sitk.GetArrayFromImage(sitk.ReadImage(str(src / "labelsTr" / f"{case}.nii.gz")))
        assert np.array_equal(truth, original)
        bmask = boxset.mask()
        assert not (truth & ~bmask.astype(bool)).any()
        assert np.array_equal(bmask.any(axis=(1, 2)), truth.any(axis=(1, 2)))
        assert np.array_equal(weak.read_boxmask(case)[0], bmask)


def test_scenario_box_noise_is_seeded_and_refuses_overwrite(phantom_study, tmp_path):
    records = []
    for i, seed in enumerate((5, 5, 6)):
        out = tmp_path / f"w{i}"
        records.append(
            make_scenario(
                ScenarioSettings(
                    STRONG_ID,
                    out,
                    2,
                    543 + i,
                    f"Jitter{i}",
                    seed=seed,
                    annotator="voxels=2",
                    progress=False,
                )
            )
        )
    boxes = [
        {c: BoxSet.load(tmp_path / f"w{i}" / "boxes" / f"{c}.json").boxes for c in r["weak_cases"]}
        for i, r in enumerate(records)
    ]
    assert records[0]["strong_cases"] == records[1]["strong_cases"] and boxes[0] == boxes[1]
    assert records[0]["strong_cases"] != records[2]["strong_cases"] or boxes[0] != boxes[2]
    with pytest.raises(InputError, match="exists"):  # the weak set folder
        make_scenario(
            ScenarioSettings(STRONG_ID, tmp_path / "w0", 2, 546, "Jitter9", progress=False)
        )
    with pytest.raises(InputError, match="exists"):  # the dataset id
        make_scenario(ScenarioSettings(STRONG_ID, tmp_path / "w9", 2, 543, "Other", progress=False))
    assert not (tmp_path / "w9").exists() and not list(tmp_path.glob(".*staging*"))
    with pytest.raises(InputError, match="strong-count"):
        make_scenario(
            ScenarioSettings(STRONG_ID, tmp_path / "w8", 6, 547, "TooMany", progress=False)
        )
    # --overwrite replaces both
    make_scenario(
        ScenarioSettings(
            STRONG_ID, tmp_path / "w0", 3, 543, "Jitter0", seed=5, overwrite=True, progress=False
        )
    )
    assert (
        len(training_cases(find_raw_dataset(543))) == 3
        and len(WeakSet(tmp_path / "w0").case_ids()) == 3
    )


def test_scenario_draws_strong_cases_from_the_chosen_sites_only(phantom_study, tmp_path):
    manifest = phantom_study / "manifest.json"
    sites = {c: v["site"] for c, v in json.loads(manifest.read_text()).items()}
    record = make_scenario(
        ScenarioSettings(
            STRONG_ID,
            tmp_path / "w",
            2,
            561,
            "FromMsd",
            seed=3,
            manifest=manifest,
            strong_sites=("msd",),
            progress=False,
        )
    )
    assert {sites[c] for c in record["strong_cases"]} == {"msd"} and record["strong_sites"] == [
        "msd"
    ]
    assert {sites[c] for c in record["weak_cases"]} >= {
        "nsclc",
        "lpcd",
    }  # the weak set keeps every site
    with pytest.raises(
        InputError, match=r"fewer than the 3 strong cases"
    ):  # the pool has 2 msd cases
        make_scenario(
            ScenarioSettings(
                STRONG_ID,
                tmp_path / "w2",
                3,
                562,
                "TooFew",
                manifest=manifest,
                strong_sites=("msd",),
                progress=False,
            )
        )
    assert not (tmp_path / "w2").exists() and not list(
        Path(os.environ["nnUNet_raw"]).glob("Dataset562_*")
    )


def test_make_scenario_cli(phantom_study, tmp_path, capsys):
    out = tmp_path / "weak"
    assert (
        cli.main(
            [
                "make-scenario",
                "--strong",
                str(STRONG_ID),
                "-d",
                "548",
                "--name",
                "ScenarioCli",
                "--strong-count",
                "4",
                "-o",
                str(out),
                "--seed",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    assert "strong: 4 case(s)" in capsys.readouterr().out
    assert len(WeakSet(out).case_ids()) == 2
    assert (
        cli.main(
            [
                "make-scenario",
                "--strong",
                str(STRONG_ID),
                "-d",
                "548",
                "--name",
                "ScenarioCli",
                "--strong-count",
                "4",
                "-o",
                str(out),
                "--quiet",
            ]
        )
        == 1
    )
    assert "pass --overwrite" in capsys.readouterr().err


def test_do_student_dataset_from_scenario(scenario, grouped_manifest):
    """DO student dataset (true masks standing in for pseudo masks): passes nnU-Net's integrity check,
    validation folds hold strong cases only, patients never straddle folds, overwrite is refused."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    from nnunet_teacher_student.students.student_dataset import make_student_dataset

    record, weak_dir = scenario
    folder = make_student_dataset(
        StudentDatasetSettings(
            SCENARIO_ID,
            STUDENT_ID,
            "ScenarioDO",
            "do",
            weak_dir,
            weak_dir / "labels",
            grouped_manifest,
            n_folds=2,
            size_balance=True,
        )
    )
    verify_dataset_integrity(str(folder), num_processes=1)
    ds = json.loads((folder / "dataset.json").read_text())
    weak_cases, strong_cases = set(record["weak_cases"]), set(record["strong_cases"])
    # the weak set's own labels/ as pseudo masks: the upper bound, marked as such
    assert {c for c, v in ds["nnts_provenance"].items() if v["kind"] == "weak-true"} == weak_cases
    label = sitk.GetArrayFromImage(
        sitk.ReadImage(str(folder / "labelsTr" / f"{sorted(weak_cases)[0]}.nii.gz"))
    )
    assert set(np.unique(label)) <= {0, 1, 2} and (label == 2).any() and (label == 1).any()
    splits = json.loads((folder / "splits_final.json").read_text())
    patients = {c: v["patient"] for c, v in json.loads(grouped_manifest.read_text()).items()}
    assert len(splits) == 2
    for split in splits:
        assert not set(split["val"]) & weak_cases and weak_cases <= set(split["train"])
        assert not set(split["val"]) & set(split["train"])
        assert not {patients[c] for c in split["val"]} & {patients[c] for c in split["train"]}
    assert sorted(c for s in splits for c in s["val"]) == sorted(strong_cases)
    with pytest.raises(InputError, match="--overwrite"):
        make_student_dataset(
            StudentDatasetSettings(
                SCENARIO_ID,
                STUDENT_ID,
                "ScenarioDO",
                "do",
                weak_dir,
                weak_dir / "labels",
                grouped_manifest,
                n_folds=2,
            )
        )


def test_ignore_label_dataset_from_scenario(scenario, grouped_manifest):
    """nnU-Net's own answer to boxes: weak cases are 0 outside their boxes and the ignore label (2)
    inside; strong cases keep their masks; nnU-Net accepts the dataset and sees an ignore label."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    from nnunet_teacher_student.students.student_dataset import make_student_dataset

    record, weak_dir = scenario
    folder = make_student_dataset(
        StudentDatasetSettings(
            SCENARIO_ID,
            551,
            "ScenarioIgnore",
            "ignore",
            weak_dir,
            None,
            grouped_manifest,
            n_folds=2,
        )
    )
    verify_dataset_integrity(str(folder), num_processes=1)
    ds = json.loads((folder / "dataset.json").read_text())
    manager = LabelManager(ds["labels"], regions_class_order=None)
    assert manager.has_ignore_label and manager.ignore_label == 2
    weak = WeakSet(weak_dir)
    for case in record["weak_cases"]:
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz")))
        boxes = weak.read_case(case)[1].mask()
        assert set(np.unique(label)) == {0, 2} and np.array_equal(label == 2, boxes > 0)
        assert ds["nnts_provenance"][case]["kind"] == "weak-boxes-ignored"
    for case in record["strong_cases"]:
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz")))
        truth = sitk.GetArrayFromImage(
            sitk.ReadImage(str(find_raw_dataset(SCENARIO_ID) / "labelsTr" / f"{case}.nii.gz"))
        )
        assert np.array_equal(label, truth)
    with pytest.raises(InputError, match="ignore form needs --weak"):
        make_student_dataset(
            StudentDatasetSettings(
                SCENARIO_ID, 552, "ScenarioIgnore2", "ignore", weak_dir, weak_dir / "labels"
            )
        )


def test_teacher_dataset_brings_patient_grouped_folds(scenario, grouped_manifest):
    """nnU-Net's own 5-fold split fails below 5 cases and ignores patients: the teacher dataset writes
    its own ``splits_final.json`` (raw and preprocessed folders), test cases left out."""
    from nnunet_teacher_student.nnunet.folds import make_splits
    from nnunet_teacher_student.nnunet.plans import nnunet_dir
    from nnunet_teacher_student.teacher.teacher_dataset import make_teacher_dataset

    record, weak_dir = scenario
    folder = make_teacher_dataset(
        TeacherDatasetSettings(
            SCENARIO_ID, 553, "ScenarioTeacher", weak_dir=weak_dir, manifest=grouped_manifest
        )
    )
    splits = json.loads((folder / "splits_final.json").read_text())
    assert (
        json.loads(
            (nnunet_dir("nnUNet_preprocessed") / folder.name / "splits_final.json").read_text()
        )
        == splits
    )
    patients = {c: v["patient"] for c, v in json.loads(grouped_manifest.read_text()).items()}
    strong = set(record["strong_cases"])
    assert sorted(c for s in splits for c in s["val"]) == sorted(strong)
    for split in splits:
        assert set(split["train"]) | set(split["val"]) == strong and split["train"]
        assert not {patients[c] for c in split["val"]} & {patients[c] for c in split["train"]}
    assert len(splits) == len({patients[c] for c in strong})  # fewer patients than 5: one fold each
    one = make_splits(["a"], ["w"], {}, 5)
    assert one == [{"train": ["a", "w"], "val": ["a"]}]  # a lone patient validates on itself
