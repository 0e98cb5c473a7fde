"""Pseudo-labelling (``nnts pseudo-label``): QC numbers and filters, resumability after ``kill -9``,
shards, provenance, and the DO student dataset built from real pseudo masks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnts_testlib import REPO, STRONG_ID

from nnunet_teacher_student.formats.boxes import Box, BoxSet, box_mask
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.core.geometry import Geometry
from nnunet_teacher_student.pseudo_labels.qc import apply_filters, binary_entropy_bits, case_qc
from nnunet_teacher_student.pseudo_labels.run import aggregate_qc, part_cases, pseudo_label
from nnunet_teacher_student.pseudo_labels.settings import PseudoLabelSettings
from nnunet_teacher_student.teacher.inference import TeacherPrediction

PSEUDO_STUDENT_ID = 549


def _quiet(**settings) -> PseudoLabelSettings:
    """Pseudo-labelling settings without the progress bar."""
    return PseudoLabelSettings(quiet=True, **settings)


# ---------------------------------------------------------------------------------------------- QC
def _prediction() -> tuple[TeacherPrediction, BoxSet]:
    """Two boxes of 4x4 px on slices 1 and 2; the mask fills half of the first box and none of the second."""
    geometry = Geometry((10, 10, 4), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    boxes = [Box(1, 2, 2, 5, 5), Box(2, 2, 2, 5, 5)]
    bmask = box_mask(boxes, geometry.array_shape)
    mask = np.zeros(geometry.array_shape, np.uint8)
    mask[1, 2:4, 2:6] = 1  # 8 px, one lesion
    mask[1, 4, 5] = 1  # 9 px in the first box
    mask[0, 1, 1] = 1  # touches voxel (1, 2, 2) only diagonally: same 26-connected lesion
    mask[3, 8, 8] = 1  # a second lesion
    prob = np.where(bmask > 0, 0.5, 0.0).astype(np.float32)
    prob[2] = 0.0  # certain background on slice 2
    return TeacherPrediction(mask, prob, bmask, []), BoxSet(geometry, boxes)


def test_case_qc_numbers():
    pred, boxset = _prediction()
    truth = pred.mask.copy()
    truth[3] = 0
    truth[2, 2:4, 2:6] = 1  # 8 voxels the prediction missed
    r = case_qc(pred, boxset, boxset.geometry.spacing, truth)
    assert r["volume_ml"] == pytest.approx(11 * 2.0 / 1000)
    assert r["lesion_count"] == 2 and r["n_boxes"] == 2 and r["boxed_slices"] == 2
    assert r["empty_boxed_slices"] == 1
    assert r["box_fill"] == [pytest.approx(9 / 16), 0.0]
    assert r["box_fill_mean"] == pytest.approx(9 / 32) and r["box_fill_min"] == 0.0
    # box consistency: the mask's own box on slice 1 is y 2-4 x 2-5 (12 px) in the 16-px box; slice 2 is empty
    assert r["box_iou"] == [pytest.approx(0.75), 0.0] and r["empty_boxes"] == 1
    assert r["box_iou_mean"] == pytest.approx(0.375) and r["box_iou_min"] == 0.0
    kept, removed = apply_filters(
        [{**r, "case": "a"}, {**r, "case": "b", "box_iou_mean": 0.9}], min_box_iou=0.5
    )
    assert [k["case"] for k in kept] == ["b"] and removed == {"min_box_iou": ["a"]}
    assert r["probability_in_boxes"] == pytest.approx(0.25)
    assert r["entropy_in_boxes"] == pytest.approx(0.5)  # 1 bit on slice 1, 0 bits on slice 2
    assert r["dice_vs_truth"] == pytest.approx(2 * 10 / (11 + 18))
    assert case_qc(pred, boxset, boxset.geometry.spacing)["dice_vs_truth"] is None
    json.dumps(r, allow_nan=False)  # valid strict JSON


def test_binary_entropy():
    assert binary_entropy_bits(np.array([0.0, 1.0, 0.5])).tolist() == pytest.approx([0.0, 0.0, 1.0])


def test_filters_report_what_each_removed():
    records = [
        {
            "case": "a",
            "box_fill_mean": 0.8,
            "entropy_in_boxes": 0.1,
            "empty_boxed_slices": 0,
            "volume_ml": 5,
        },
        {
            "case": "b",
            "box_fill_mean": 0.2,
            "entropy_in_boxes": 0.9,
            "empty_boxed_slices": 3,
            "volume_ml": 1,
        },
        {
            "case": "c",
            "box_fill_mean": 0.4,
            "entropy_in_boxes": 0.2,
            "empty_boxed_slices": 1,
            "volume_ml": 2,
        },
        {
            "case": "d",
            "box_fill_mean": None,
            "entropy_in_boxes": None,
            "empty_boxed_slices": 0,
            "volume_ml": 0.0,
        },
    ]
    kept, removed = apply_filters(records, min_box_fill=0.3, max_entropy=0.5, max_empty_slices=1)
    assert [r["case"] for r in kept] == ["a", "c", "d"]  # undefined metrics (no boxes) pass
    assert removed == {"min_box_fill": ["b"], "max_entropy": ["b"], "max_empty_slices": ["b"]}
    kept, removed = apply_filters(records, min_volume_ml=1.5)
    assert [r["case"] for r in kept] == ["a", "c"] and removed == {"min_volume_ml": ["b", "d"]}
    assert apply_filters(records) == (records, {})


def test_part_cases_cover_all_once():
    cases = [f"c{i}" for i in range(7)][::-1]
    parts = [part_cases(cases, 3, k) for k in range(3)]
    assert sorted(c for p in parts for c in p) == sorted(cases)
    assert parts[0] == ["c0", "c3", "c6"]
    for bad in ((3, 3), (3, -1), (0, 0)):
        with pytest.raises(InputError, match="part-id"):
            part_cases(cases, *bad)


def test_aggregate_drop_mode_writes_excluded(tmp_path):
    pred, boxset = _prediction()
    for case, fill in (("a", 0.9), ("b", 0.1)):
        sitk.WriteImage(sitk.GetImageFromArray(pred.mask), str(tmp_path / f"{case}.nii.gz"))
        (tmp_path / "qc").mkdir(exist_ok=True)
        (tmp_path / "qc" / f"{case}.json").write_text(
            json.dumps({"case": case, "box_fill_mean": fill})
        )
    doc = aggregate_qc(tmp_path, ["a", "b", "c"], {"min_box_fill": 0.5}, "drop")
    assert (
        not doc["complete"]
        and doc["missing"] == ["c"]
        and doc["removed_by_filter"] == {"min_box_fill": 1}
    )
    assert json.loads((tmp_path / "excluded.json").read_text())["excluded"] == {
        "b": ["min_box_fill"]
    }
    csv_lines = (tmp_path / "qc.csv").read_text().splitlines()
    assert (
        len(csv_lines) == 3
        and csv_lines[2].startswith("b,")
        and csv_lines[2].endswith(",min_box_fill")
    )
    aggregate_qc(tmp_path, ["a", "b", "c"], {"min_box_fill": 0.5}, "flag")
    assert json.loads((tmp_path / "excluded.json").read_text())["excluded"] == {}


# ------------------------------------------------------------------------------------ with a teacher
def _mask_files(folder: Path) -> list[Path]:
    """Finished masks: ``*.nii.gz`` without the hidden temporary files (``.<case>.*.tmp.nii.gz``)."""
    return sorted(p for p in folder.glob("*.nii.gz") if not p.name.startswith("."))


def _masks(folder: Path) -> dict[str, sitk.Image]:
    return {p.name: sitk.ReadImage(str(p)) for p in _mask_files(folder)}


def _visible_files(folder: Path) -> set[str]:
    return {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def _hidden_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file()]


def _assert_same_masks(a: Path, b: Path) -> None:
    ma, mb = _masks(a), _masks(b)
    assert ma.keys() == mb.keys() and len(ma) > 0
    for name in ma:
        assert Geometry.of(ma[name]) == Geometry.of(mb[name])
        assert np.array_equal(sitk.GetArrayFromImage(ma[name]), sitk.GetArrayFromImage(mb[name])), (
            name
        )


@pytest.fixture(scope="module")
def weak_dir(phantom_study) -> Path:
    return phantom_study / "weak"


@pytest.fixture(scope="module")
def reference(box_teacher_model, weak_dir, tmp_path_factory):
    """One uninterrupted, unsharded pseudo-labelling run."""
    out = tmp_path_factory.mktemp("pseudo") / "reference"
    summary = pseudo_label(weak_dir, out, _quiet(model_folder=box_teacher_model, tta=False))
    print(
        f"\npseudo-label reference run: {summary['seconds_per_case']:.2f} s/case, "
        f"mean DSC vs truth {summary['qc']['mean_dice_vs_truth']:.3f}, "
        f"per case {[round(r['dice_vs_truth'], 3) for r in json.loads((out / 'qc.json').read_text())['cases']]}"
    )
    return out, summary


@pytest.mark.slow
def test_reference_run_outputs(reference, weak_dir, box_teacher_model):
    from nnunet_teacher_student.core.files import file_sha256
    from nnunet_teacher_student.formats.weak_set import WeakSet

    out, summary = reference
    weak = WeakSet(weak_dir)
    cases = weak.case_ids()
    assert summary["predicted"] == len(cases) == summary["cases_total"] and summary["complete"]
    assert summary["qc"]["cases_with_truth"] == len(cases) and summary["seconds_per_case"] > 0
    masks = _masks(out)
    assert sorted(masks) == [f"{c}.nii.gz" for c in cases]
    for case in cases:
        ct = sitk.ReadImage(str(weak.image_path(case)))
        mask = masks[f"{case}.nii.gz"]
        assert Geometry.of(mask).matches(Geometry.of(ct)) and mask.GetPixelID() == sitk.sitkUInt8
        assert set(np.unique(sitk.GetArrayFromImage(mask))) <= {0, 1}
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["checkpoint_sha256"] == file_sha256(
        box_teacher_model / "fold_0" / "checkpoint_final.pth"
    )
    assert prov["trainer"] == "nnUNetTrainerBoxTeacher" and prov["mode"] == "box"
    qc = json.loads((out / "qc.json").read_text())
    assert [r["case"] for r in qc["cases"]] == cases
    from nnunet_teacher_student.evaluation.metrics import dice

    for r in qc["cases"]:  # the QC's DSC is the written mask's against the weak case's true label
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(weak.label_path(r["case"])))) > 0
        mask = sitk.GetArrayFromImage(masks[f"{r['case']}.nii.gz"]) > 0
        assert r["n_boxes"] > 0 and r["dice_vs_truth"] == pytest.approx(dice(mask, truth), abs=1e-6)
    assert (out / "qc.csv").read_text().count("\n") == len(cases) + 1
    assert not _hidden_files(out)


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(reference, weak_dir, box_teacher_model, tmp_path):
    """``kill -9`` after the first mask appears, rerun: same files and identical masks; no temp file left."""
    import torch

    ref, _ = reference
    out = tmp_path / "killed"
    # same intra-op thread count as the reference run in this process, so the numbers are the same
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(torch.get_num_threads()))
    cmd = [
        sys.executable,
        "-m",
        "nnunet_teacher_student.cli",
        "pseudo-label",
        "-i",
        str(weak_dir),
        "-o",
        str(out),
        "-m",
        str(box_teacher_model),
        "-device",
        "cpu",
        "--disable-tta",
        "--quiet",
    ]
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while proc.poll() is None and not _mask_files(out) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    finished = (
        [p for p in (out / "qc").glob("*.json") if not p.name.startswith(".")]
        if (out / "qc").is_dir()
        else []
    )
    assert 1 <= len(_mask_files(out)) and len(finished) < len(_masks(ref)), "killed too late"
    for p in _mask_files(out):  # whatever is visible is complete
        sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"skipped {len(finished)} finished" in rerun.stdout
    assert not _hidden_files(out)
    assert _visible_files(out) == _visible_files(ref)
    _assert_same_masks(ref, out)
    assert json.loads((out / "qc.json").read_text())["complete"]


@pytest.mark.slow
def test_two_shards_equal_one_run(reference, weak_dir, box_teacher_model, tmp_path):
    ref, _ = reference
    out = tmp_path / "sharded"
    settings = _quiet(model_folder=box_teacher_model, tta=False)
    s1 = pseudo_label(weak_dir, out, settings, num_parts=2, part_id=1)
    assert s1["predicted"] == s1["cases_in_part"] == 2 and not s1["complete"] and s1["missing"] == 2
    s0 = pseudo_label(weak_dir, out, settings, num_parts=2, part_id=0)
    assert s0["predicted"] == 2 and s0["complete"]
    assert _visible_files(out) == _visible_files(ref)
    _assert_same_masks(ref, out)
    qc_ref, qc = (json.loads((d / "qc.json").read_text()) for d in (ref, out))
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in qc["cases"]] == [
        {k: v for k, v in r.items() if k not in drop} for r in qc_ref["cases"]
    ]


@pytest.mark.slow
def test_provenance_guard_filters_and_overwrite(reference, weak_dir, box_teacher_model, tmp_path):
    ref, _ = reference
    out = tmp_path / "copy"
    shutil.copytree(ref, out)
    with pytest.raises(InputError, match="box_margin_mm"):
        pseudo_label(
            weak_dir, out, _quiet(model_folder=box_teacher_model, tta=False, box_margin_mm=4.0)
        )
    # a rerun with everything finished predicts nothing and re-applies the filters
    fills = {
        r["case"]: r["box_fill_mean"] for r in json.loads((ref / "qc.json").read_text())["cases"]
    }
    threshold = float(np.median(list(fills.values())))
    s = pseudo_label(
        weak_dir,
        out,
        _quiet(
            model_folder=box_teacher_model,
            tta=False,
            min_box_fill=threshold,
            filter_mode="drop",
        ),
    )
    expected = sorted(c for c, f in fills.items() if f < threshold)
    assert s["predicted"] == 0 and s["skipped"] == len(fills)
    assert s["removed_by_filter"] == {"min_box_fill": len(expected)} and s["excluded"] == len(
        expected
    )
    assert sorted(json.loads((out / "excluded.json").read_text())["excluded"]) == expected
    # --overwrite with another setting replaces the old teacher's outputs
    s = pseudo_label(
        weak_dir,
        out,
        _quiet(model_folder=box_teacher_model, tta=False, box_margin_mm=0.0, overwrite=True),
    )
    assert s["predicted"] == len(fills) and s["complete"]
    assert json.loads((out / "provenance.json").read_text())["box_margin_mm"] == 0.0
    from nnunet_teacher_student.formats.weak_set import WeakSet

    weak = WeakSet(weak_dir)
    for case in weak.case_ids():  # margin 0: the mask lies inside the boxes themselves
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{case}.nii.gz")))
        assert not (mask.astype(bool) & ~weak.read_case(case)[1].mask().astype(bool)).any()


@pytest.mark.slow
def test_do_student_dataset_from_pseudo_labels(
    reference, weak_dir, phantom_study, box_teacher_model
):
    """The DO student dataset from real pseudo masks passes nnU-Net's integrity check and records the teacher."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    from nnunet_teacher_student.core.files import file_sha256
    from nnunet_teacher_student.students.student_dataset import make_student_dataset
    from nnunet_teacher_student.students.settings import StudentDatasetSettings

    ref, _ = reference
    folder = make_student_dataset(
        StudentDatasetSettings(
            STRONG_ID,
            PSEUDO_STUDENT_ID,
            "PseudoDO",
            "do",
            weak_dir,
            ref,
            phantom_study / "manifest.json",
            n_folds=3,
        )
    )
    verify_dataset_integrity(str(folder), num_processes=1)
    ds = json.loads((folder / "dataset.json").read_text())
    sha = file_sha256(box_teacher_model / "fold_0" / "checkpoint_final.pth")
    pseudo = {c: v for c, v in ds["nnts_provenance"].items() if v["kind"] == "pseudo"}
    assert len(pseudo) == 4 and all(v["teacher"] == sha for v in pseudo.values())
    for split in json.loads((folder / "splits_final.json").read_text()):
        assert not set(split["val"]) & set(pseudo) and set(pseudo) <= set(split["train"])


def test_true_masks_from_another_folder_feed_the_qc(tmp_path):
    """The pipeline's ``weak_labels`` (true masks outside the weak set) give ``dice_vs_truth`` in the QC."""
    from nnunet_teacher_student.formats.weak_set import WeakSet

    arr = np.full((6, 24, 24), -850, np.int16)
    arr[2:4, 8:14, 8:14] = 40
    ct = sitk.GetImageFromArray(arr)
    WeakSet(tmp_path / "weak").write_case(
        "w", ct, BoxSet(Geometry.of(ct), [Box(2, 7, 7, 14, 14), Box(3, 7, 7, 14, 14)])
    )
    truth = sitk.GetImageFromArray((arr > 0).astype(np.uint8))
    truth.CopyInformation(ct)
    (tmp_path / "truth").mkdir()
    sitk.WriteImage(truth, str(tmp_path / "truth" / "w.nii.gz"))
    pseudo_label(tmp_path / "weak", tmp_path / "p0", _quiet(teacher="classical"))
    assert json.loads((tmp_path / "p0" / "qc" / "w.json").read_text())["dice_vs_truth"] is None
    pseudo_label(
        tmp_path / "weak",
        tmp_path / "p1",
        _quiet(teacher="classical", labels_dir=tmp_path / "truth"),
    )
    assert json.loads((tmp_path / "p1" / "qc" / "w.json").read_text())["dice_vs_truth"] > 0.5


UNCERTAIN_DO_ID = 571


@pytest.mark.slow
def test_uncertainty_aware_do_dataset_trains_with_nnunets_ignore_label(
    box_teacher_model, weak_dir, phantom_study, tmp_path
):
    """Saved probabilities give exactly the box voxels in the band the ignore label (3, in no region); the DO
    trainer trains on the result with nnU-Net's own ignore-label handling of regions."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    from nnts_testlib import plan_and_preprocess, train
    from nnunet_teacher_student.formats.weak_set import WeakSet
    from nnunet_teacher_student.students.student_dataset import make_student_dataset
    from nnunet_teacher_student.students.settings import StudentDatasetSettings
    from nnunet_teacher_student.teacher.inference import dilate_in_plane

    out = tmp_path / "pseudo"
    pseudo_label(
        weak_dir, out, _quiet(model_folder=box_teacher_model, tta=False, save_probabilities=True)
    )
    weak = WeakSet(weak_dir)
    band = (0.2, 0.8)
    folder = make_student_dataset(
        StudentDatasetSettings(
            STRONG_ID,
            UNCERTAIN_DO_ID,
            "UncertainDO",
            "do",
            weak_dir,
            out,
            phantom_study / "manifest.json",
            n_folds=3,
            uncertain_band=band,
            overwrite=True,
        )
    )
    verify_dataset_integrity(str(folder), num_processes=1)
    ds = json.loads((folder / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "box": [1, 2], "tumor": 2, "ignore": 3}
    total = 0
    for case in weak.case_ids():
        ct, boxes = weak.read_case(case)
        p = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "probabilities" / f"{case}.nii.gz")))
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{case}.nii.gz")))
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz")))
        unsure = (
            dilate_in_plane(boxes.mask(), ct.GetSpacing()[::-1], 2.0)
            & (p >= band[0])
            & (p < band[1])
        )
        assert np.array_equal(label == 3, unsure), case
        sure = ~unsure
        assert np.array_equal((label == 2)[sure], (mask > 0)[sure]), (
            case
        )  # the rest is the teacher's mask
        total += int(unsure.sum())
    assert total == ds["nnts_uncertain_band"]["ignored_voxels"] > 0
    plan_and_preprocess(UNCERTAIN_DO_ID)
    model = train(UNCERTAIN_DO_ID, "nnUNetTrainerDOStudent", validate=False)
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()


def test_uncertain_band_needs_probabilities(phantom_study, tmp_path):
    """A pseudo-label folder without probabilities is refused by name, before anything is written."""
    from nnunet_teacher_student.formats.weak_set import WeakSet
    from nnunet_teacher_student.students.student_dataset import make_student_dataset
    from nnunet_teacher_student.students.settings import StudentDatasetSettings

    arr = np.full((6, 24, 24), -850, np.int16)
    arr[2:4, 8:14, 8:14] = 40
    ct = sitk.GetImageFromArray(arr)
    WeakSet(tmp_path / "weak").write_case("w", ct, BoxSet(Geometry.of(ct), [Box(2, 7, 7, 14, 14)]))
    pseudo_label(tmp_path / "weak", tmp_path / "p", _quiet(teacher="classical"))
    with pytest.raises(InputError, match="save-probabilities"):
        pseudo_label(
            tmp_path / "weak",
            tmp_path / "p2",
            _quiet(teacher="classical", save_probabilities=True),
        )
    assert not (tmp_path / "p2").exists()
    with pytest.raises(
        InputError, match=r"probabilities: no teacher probability for weak case\(s\) \['w'\]"
    ):
        make_student_dataset(
            StudentDatasetSettings(
                STRONG_ID,
                572,
                "NoProb",
                "so",
                tmp_path / "weak",
                tmp_path / "p",
                uncertain_band=(0.3, 0.7),
            )
        )


# ------------------------------------------------------------------------------ ensembles and rounds
def test_member_disagreement_is_one_minus_mean_pairwise_dice():
    from nnunet_teacher_student.teacher.ensemble import member_disagreement

    a = np.zeros((4, 8, 8), np.uint8)
    a[1:3, 2:6, 2:6] = 1  # 32 voxels
    b = a.copy()
    b[1:3, 2:6, 2:4] = 0  # 16 of them: DSC(a, b) = 2 * 16 / 48
    empty = np.zeros_like(a)
    assert member_disagreement([a]) == 0.0 and member_disagreement([a, a]) == pytest.approx(0.0)
    assert member_disagreement([a, b]) == pytest.approx(1 - 32 / 48)
    assert member_disagreement([empty, empty]) == pytest.approx(0.0)  # two empty masks agree
    assert member_disagreement([a, b, empty]) == pytest.approx(1 - (32 / 48 + 0 + 0) / 3)


def _second_fold(model: Path, into: Path, noise: float) -> Path:
    """A copy of a one-fold model folder with a fold 1: fold 0's weights plus relative Gaussian noise (seeded)."""
    import torch

    copy = into / model.parent.name / model.name
    copy.mkdir(parents=True)
    for f in ("dataset.json", "plans.json"):
        shutil.copyfile(model / f, copy / f)
    shutil.copytree(model / "fold_0", copy / "fold_0")
    (copy / "fold_1").mkdir()
    ckpt = torch.load(
        model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False
    )
    gen = torch.Generator().manual_seed(0)
    for k, w in ckpt["network_weights"].items():
        if w.is_floating_point() and w.numel() > 1:
            ckpt["network_weights"][k] = w + noise * w.std() * torch.randn(w.shape, generator=gen)
    torch.save(ckpt, copy / "fold_1" / "checkpoint_final.pth")
    return copy


@pytest.mark.slow
def test_teacher_ensemble_averages_fold_probabilities_and_reports_disagreement(
    reference, weak_dir, box_teacher_model, tmp_path
):
    """Two folds: the ensemble's probability is the members' mean, its mask that mean above 0.5 inside the
    dilated boxes, its disagreement 1 - the members' DSC; pseudo-label writes and filters on it."""
    from nnunet_teacher_student.formats.weak_set import WeakSet
    from nnunet_teacher_student.evaluation.metrics import dice
    from nnunet_teacher_student.prediction.region import RegionPredictor
    from nnunet_teacher_student.teacher.ensemble import TeacherEnsemble
    from nnunet_teacher_student.teacher.inference import dilate_in_plane, teacher_predict_case

    model = _second_fold(box_teacher_model, tmp_path / "models", noise=0.3)
    weak = WeakSet(weak_dir)
    ct, boxes = weak.read_case(weak.case_ids()[0])
    members = [
        teacher_predict_case(RegionPredictor(model, (f,), tta=False), ct, boxes, "box")
        for f in (0, 1)
    ]
    pred, qc = TeacherEnsemble(model, (0, 1), tta=False).predict(ct, boxes, "box")
    mean = (members[0].probability + members[1].probability) / 2
    assert np.allclose(pred.probability, mean, atol=1e-6)
    allowed = dilate_in_plane(boxes.mask(), ct.GetSpacing()[::-1], 2.0)
    assert np.array_equal(pred.mask > 0, (mean > 0.5) & allowed)
    assert qc["ensemble_members"] == 2
    assert qc["disagreement"] == pytest.approx(1 - dice(members[0].mask > 0, members[1].mask > 0))

    out = tmp_path / "ensemble"
    s = pseudo_label(weak_dir, out, _quiet(model_folder=model, folds=(0, 1), tta=False))
    assert s["complete"] and json.loads((out / "provenance.json").read_text())["ensemble"]
    records = json.loads((out / "qc.json").read_text())["cases"]
    values = [r["disagreement"] for r in records]
    assert max(values) > 0, values  # the noisy fold differs somewhere
    assert "disagreement" in (out / "qc.csv").read_text().splitlines()[0]
    threshold = float(np.median(values))
    s = pseudo_label(
        weak_dir,
        out,
        _quiet(
            model_folder=model,
            folds=(0, 1),
            tta=False,
            filter_mode="drop",
            max_disagreement=threshold,
        ),
    )
    assert s["predicted"] == 0
    assert sorted(json.loads((out / "excluded.json").read_text())["excluded"]) == sorted(
        r["case"] for r in records if r["disagreement"] > threshold
    )
    # one fold of the copy is the reference teacher itself
    single = pseudo_label(
        weak_dir, tmp_path / "fold0", _quiet(model_folder=model, folds=(0,), tta=False)
    )
    assert single["complete"]
    _assert_same_masks(reference[0], tmp_path / "fold0")


@pytest.mark.slow
def test_previous_round_gives_each_case_its_label_change(
    reference, weak_dir, box_teacher_model, tmp_path
):
    """``previous``: label_change = 1 - DSC against the previous round's mask, per case; a folder lacking a case,
    or the output folder itself, is refused before anything is written."""
    from nnunet_teacher_student.evaluation.metrics import dice

    ref, _ = reference
    model = _second_fold(box_teacher_model, tmp_path / "models", noise=0.3)
    out = tmp_path / "round2"
    round2 = _quiet(model_folder=model, folds=(1,), tta=False, previous=ref)
    pseudo_label(weak_dir, out, round2)
    records = json.loads((out / "qc.json").read_text())["cases"]
    for r in records:
        before, after = (
            sitk.GetArrayFromImage(sitk.ReadImage(str(d / f"{r['case']}.nii.gz"))) > 0
            for d in (ref, out)
        )
        assert r["label_change"] == pytest.approx(1 - dice(before, after))
    assert json.loads((out / "provenance.json").read_text())["previous"] == str(ref.resolve())
    partial = tmp_path / "partial"
    shutil.copytree(ref, partial)
    gone = sorted(partial.glob("*.nii.gz"))[0]
    gone.unlink()
    with pytest.raises(InputError, match=gone.name):
        pseudo_label(weak_dir, tmp_path / "never", replace(round2, previous=partial))
    assert not (tmp_path / "never").exists()
    with pytest.raises(InputError, match="cannot be the output folder"):
        pseudo_label(weak_dir, out, replace(round2, previous=out))


def test_pipeline_config_knows_every_qc_filter():
    from nnunet_teacher_student.pseudo_labels.qc import FILTERS
    from nnunet_teacher_student.workflow.config import FILTER_KEYS

    assert set(FILTER_KEYS) == set(FILTERS)
    with pytest.raises(ValueError, match="unknown QC filter 'max_fill'"):
        apply_filters([{"case": "a"}], max_fill=0.5)
