"""Real-CT teacher study: box teacher vs point teacher vs the classical box rule on held-out real tumours.

Leave-one-patient-out over the converted real cases (``benchmarks/real_ct/README.md``): the teacher dataset's
patient-wise folds (``--folds`` = number of patients) are the LOO splits; each fold's teacher predicts its
held-out patient from that patient's annotator boxes (the same boxes the rule gets). Every stage is skipped
when its outputs exist, and training resumes from nnU-Net's latest checkpoint, so rerunning after a kill
goes on. Seeded: boxes (``--seed``), trainings (``NNTS_SEED``).

    python benchmarks/real_ct/teacher_study.py --raw /work/realdata/nnUNet_raw --strong 901 \\
        --work /work/realdata/teacher_study --epochs 20 --iterations 50
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_common import run_meta  # noqa: E402

TRAINERS = {"box": "nnUNetTrainerBoxTeacher", "point": "nnUNetTrainerPointTeacher"}


def sh(args: list, env: dict, log: Path) -> None:
    """Run one command, its output appended to ``log``; a failure stops the study with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(map(str, args))}\n")
        f.flush()
        code = subprocess.call([str(a) for a in args], env=env, stdout=f, stderr=subprocess.STDOUT)
    if code:
        sys.exit(
            f"failed ({code}): {' '.join(map(str, args))}\n" + "".join(open(log).readlines()[-25:])
        )


def nnunet_env(a) -> dict:
    env = dict(
        os.environ,
        nnUNet_raw=str(a.raw),
        nnUNet_preprocessed=str(a.work / "nnUNet_preprocessed"),
        nnUNet_results=str(a.work / "nnUNet_results"),
        nnUNet_def_n_proc="1",
        OMP_NUM_THREADS="1",
        nnUNet_extTrainer=str(REPO / "nnunet_teacher_student" / "nnunet_ext"),
    )
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[k] = env[k]
    return env


def write_weak_set(a) -> Path:
    """Every real case as a weak case: CT, annotator boxes from its true mask (seeded per case), the mask."""
    from nnunet_teacher_student.core.defaults import case_seed
    from nnunet_teacher_student.core.geometry import Geometry, read_image, read_label, spacing_zyx
    from nnunet_teacher_student.formats.annotator import annotator_from
    from nnunet_teacher_student.formats.boxes import BoxSet, boxes_from_mask
    from nnunet_teacher_student.formats.weak_set import WeakSet
    from nnunet_teacher_student.nnunet.raw_dataset import (
        find_raw_dataset,
        link_or_copy,
        training_cases,
    )

    out = a.work / "weak"
    src = find_raw_dataset(a.strong)
    cases = training_cases(src)
    weak = WeakSet(out)
    if all(weak.image_path(c).is_file() for c in cases):
        return out
    annotator = annotator_from(annotator=a.annotator)
    for i, case in enumerate(cases):
        image = src / "imagesTr" / f"{case}_0000.nii.gz"
        ct = read_image(image)
        label = read_label(src / "labelsTr" / f"{case}.nii.gz", ct)
        boxset = BoxSet(
            Geometry.of(ct),
            boxes_from_mask(
                label,
                "lesion",
                seed=case_seed(a.seed, i),
                annotator=annotator,
                spacing_zyx=spacing_zyx(ct),
            ),
        )
        link_or_copy(src / "labelsTr" / f"{case}.nii.gz", weak.label_path(case))
        boxset.save(weak.boxes_path(case))
        link_or_copy(image, weak.image_path(case))
    return out


def plan(a, env: dict) -> None:
    """The teacher dataset (LOO folds), its box-fitted CT window, the real-CT configuration, preprocessing."""
    from nnunet_teacher_student.nnunet.plans import add_small_configuration, plans_path
    from nnunet_teacher_student.teacher.teacher_dataset import use_box_window

    d, log = a.teacher_id, a.work / "logs" / "plan.log"
    pre = a.work / "nnUNet_preprocessed"
    if not any(a.raw.glob(f"Dataset{d:03d}_*")):
        n = int(
            json.loads(next(a.raw.glob(f"Dataset{a.strong:03d}_*/dataset.json")).read_text())[
                "numTraining"
            ]
        )
        sh(
            [
                sys.executable,
                "-m",
                "nnunet_teacher_student.cli",
                "make-teacher-dataset",
                "--strong",
                a.strong,
                "-d",
                d,
                "--name",
                "RealCTTeacher",
                "--seed",
                a.seed,
                "--folds",
                n,
            ],
            env,
            log,
        )
    folder = next(pre.glob(f"Dataset{d:03d}_*"), None)
    data = folder / f"nnUNetPlans_{a.config}" if folder else None
    if data and data.is_dir() and any(data.glob("*.pkl")):
        return
    sh(
        [
            "nnUNetv2_extract_fingerprint",
            "-d",
            d,
            "-np",
            1,
            "--verify_dataset_integrity",
            "--clean",
        ],
        env,
        log,
    )
    use_box_window(d)
    sh(["nnUNetv2_plan_experiment", "-d", d], env, log)
    add_small_configuration(
        d,
        a.config,
        tuple(a.patch),
        tuple(a.features),
        a.batch,
        "3d_fullres",
        "nnUNetPlans",
        tuple(a.spacing),
    )
    assert plans_path(d).is_file()
    sh(["nnUNetv2_preprocess", "-d", d, "-c", a.config, "-np", 1], env, log)


def model_dir(a, kind: str) -> Path:
    ds = next((a.work / "nnUNet_results").glob(f"Dataset{a.teacher_id:03d}_*"), None)
    name = f"{TRAINERS[kind]}__nnUNetPlans__{a.config}"
    return ds / name if ds else a.work / "nnUNet_results" / "missing" / name


def train(a, env: dict, kind: str, fold: int) -> None:
    fold_dir = model_dir(a, kind) / f"fold_{fold}"
    if (fold_dir / "checkpoint_final.pth").is_file():
        return
    resume = ["--c"] if (fold_dir / "checkpoint_latest.pth").is_file() else []
    budget = dict(
        env,
        NNTS_EPOCHS=str(a.epochs),
        NNTS_ITERATIONS=str(a.iterations),
        NNTS_VAL_ITERATIONS="2",
        NNTS_SEED=str(a.seed),
        NNTS_SKIP_VALIDATION="1",
        nnUNet_n_proc_DA="0",
    )
    print(f"train {kind} teacher, fold {fold}", flush=True)
    sh(
        [
            "nnUNetv2_train",
            a.teacher_id,
            a.config,
            fold,
            "-tr",
            TRAINERS[kind],
            "-device",
            "cpu",
            *resume,
        ],
        budget,
        a.work / "logs" / f"train_{kind}_{fold}.log",
    )


def held_out(a) -> list[list[str]]:
    pre = next((a.work / "nnUNet_preprocessed").glob(f"Dataset{a.teacher_id:03d}_*"))
    return [s["val"] for s in json.loads((pre / "splits_final.json").read_text())]


def predict(a, env: dict, kind: str, fold: int, cases: list[str], weak: Path) -> None:
    out = a.work / "predictions" / kind
    for case in cases:
        target = out / f"{case}.nii.gz"
        if target.is_file():
            continue
        sh(
            [
                sys.executable,
                "-m",
                "nnunet_teacher_student.cli",
                "teacher-predict",
                "-i",
                weak / "images" / f"{case}.nii.gz",
                "-b",
                weak / "boxes" / f"{case}.json",
                "-o",
                target,
                "-m",
                model_dir(a, kind),
                "-f",
                fold,
                "-device",
                "cpu",
                "--disable-tta",
            ],
            env,
            a.work / "logs" / f"predict_{kind}.log",
        )


def classical(a, env: dict, weak: Path) -> None:
    out = a.work / "predictions" / "classical"
    if not (out / "qc.json").is_file():
        sh(
            [
                sys.executable,
                "-m",
                "nnunet_teacher_student.cli",
                "pseudo-label",
                "--teacher",
                "classical",
                "-i",
                weak,
                "-o",
                out,
                "--quiet",
            ],
            env,
            a.work / "logs" / "classical.log",
        )


def tumour_scores(pred_file: Path, label_file: Path) -> list[dict]:
    """Per true tumour (26-connected component): DSC of the prediction inside that tumour's slab (its
    boxed slices, grown in-plane by 10 mm, minus the other tumours) and whether >= 25 % of it is covered."""
    from nnunet_teacher_student.core.components import label_components

    truth_img = sitk.ReadImage(str(label_file))
    truth = sitk.GetArrayFromImage(truth_img) > 0
    pred = sitk.GetArrayFromImage(sitk.ReadImage(str(pred_file))) > 0
    comps, n = label_components(truth)
    sz, sy, sx = truth_img.GetSpacing()[::-1]
    out = []
    for k in range(1, n + 1):
        t = comps == k
        z, y, x = np.nonzero(t)
        gy, gx = int(np.ceil(10 / sy)), int(np.ceil(10 / sx))
        zone = np.zeros_like(t)
        zone[
            z.min() : z.max() + 1,
            max(y.min() - gy, 0) : y.max() + gy + 1,
            max(x.min() - gx, 0) : x.max() + gx + 1,
        ] = True
        zone &= ~(truth & ~t)
        p = pred & zone
        dsc = 2 * (p & t).sum() / max(p.sum() + t.sum(), 1)
        out.append(
            {
                "tumour": k,
                "volume_ml": round(float(t.sum() * sz * sy * sx / 1000), 2),
                "dsc": round(float(dsc), 4),
                "detected": bool((p & t).sum() >= 0.25 * t.sum()),
            }
        )
    return out


def score(a, weak: Path) -> dict:
    from nnunet_teacher_student.evaluation.metrics import dice

    rows = []
    for kind in (*a.kinds, "classical"):
        for label in sorted((weak / "labels").glob("*.nii.gz")):
            case = label.name[: -len(".nii.gz")]
            pred = a.work / "predictions" / kind / label.name
            if not pred.is_file():
                continue
            p = sitk.GetArrayFromImage(sitk.ReadImage(str(pred))) > 0
            t = sitk.GetArrayFromImage(sitk.ReadImage(str(label))) > 0
            for tum in tumour_scores(pred, label):
                rows.append(
                    {"method": kind, "case": case, "case_dsc": round(float(dice(p, t)), 4), **tum}
                )
    summary = {}
    for kind in (*a.kinds, "classical"):
        r = [x for x in rows if x["method"] == kind]
        if r:
            cases = {x["case"]: x["case_dsc"] for x in r}
            summary[kind] = {
                "tumours": len(r),
                "tumour_dsc_mean": round(100 * float(np.mean([x["dsc"] for x in r])), 1),
                "recall": round(100 * float(np.mean([x["detected"] for x in r])), 1),
                "patients": len(cases),
                "case_dsc_mean": round(100 * float(np.mean(list(cases.values()))), 1),
            }
    return {"rows": rows, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--raw", type=Path, required=True, help="nnUNet_raw holding the converted real dataset"
    )
    ap.add_argument(
        "--strong", type=int, default=901, help="converted real dataset id (nnts convert)"
    )
    ap.add_argument("--teacher-id", type=int, default=911)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--kinds", nargs="+", default=["box", "point"], choices=list(TRAINERS))
    ap.add_argument("--config", default="3d_real")
    ap.add_argument("--spacing", type=float, nargs=3, default=[3.0, 2.0, 2.0], help="mm, z y x")
    ap.add_argument("--patch", type=int, nargs=3, default=[32, 96, 96])
    ap.add_argument("--features", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--annotator", default="default")
    ap.add_argument(
        "--folds", type=int, nargs="+", help="train and predict only these folds (default: all)"
    )
    ap.add_argument("--out", type=Path, help="result JSON (per-tumour rows and the summary)")
    a = ap.parse_args()
    a.raw, a.work = a.raw.resolve(), a.work.resolve()
    env = nnunet_env(a)
    weak = write_weak_set(a)
    classical(a, env, weak)
    plan(a, env)
    for fold, cases in enumerate(held_out(a)):
        if a.folds is not None and fold not in a.folds:
            continue
        for kind in a.kinds:
            train(a, env, kind, fold)
            predict(a, env, kind, fold, cases, weak)
    result = {
        "meta": run_meta(
            spacing=a.spacing,
            patch=a.patch,
            features=a.features,
            epochs=a.epochs,
            iterations=a.iterations,
            seed=a.seed,
            annotator=a.annotator,
            folds=held_out(a),
        ),
        **score(a, weak),
    }
    print(json.dumps(result["summary"], indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
