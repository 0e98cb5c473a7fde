"""The teacher-student method as steps (shared by ``nnts demo``, ``nnts pipeline`` and ``nnts benchmark``):
teacher dataset -> plan -> train the box teacher -> pseudo-label the weak set (QC) -> SO/DO student and
strong-only baseline datasets -> plan -> train -> predict the test set -> evaluate. nnU-Net's own commands
run as subprocesses whose progress lines are streamed; their full output goes to ``logs/``."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ..core.env import BUDGET, SEED
from ..core.models import DATASETS
from .config import DATASET_OF, PipelineConfig, nnunet_env
from .layout import (
    Layout,
    checkpoints,
    dataset_dir,
    guarded,
    model_folder,
    preprocessed_done,
    predictions_done,
    newer,
    pseudo_done,
    pseudo_stale,
    raw_done,
    stale_outputs,
    student_dataset_current,
    trained,
)
from .processes import PythonCall, nnunet_command, run_command, shown
from .steps import ApiCall, Step, api_step, remove_paths

PACKAGE = __package__.rsplit(".", 1)[0]
#: the variables of nnU-Net's environment that a printed training command sets (the rest is the user's shell)
TRAINING_VARIABLES = (*BUDGET, SEED, "nnUNet_n_proc_DA")


def plan_commands(
    cfg: PipelineConfig, ids: Sequence[int], window: Sequence[int]
) -> list[list | PythonCall]:
    """nnU-Net's planning and preprocessing of ``ids`` as command lines (nnU-Net's console scripts by name), with
    the CT window fitted to the box voxels of the ``window`` datasets and our small configuration added."""
    n, conf = cfg.num_processes, cfg.configuration
    plain = [i for i in ids if i not in window]
    own = own_spacing(
        cfg
    )  # the small configuration resamples itself: the base is planned, not preprocessed
    out: list[list | PythonCall] = []
    if plain:
        out.append(
            [
                "nnUNetv2_plan_and_preprocess",
                "-d",
                *plain,
                "-c",
                conf,
                "-np",
                n,
                "-npfp",
                n,
                "--verify_dataset_integrity",
                *(["--no_pp"] if own else []),
            ]
        )
    for i in (i for i in ids if i in window):
        out += [
            [
                "nnUNetv2_extract_fingerprint",
                "-d",
                i,
                "-np",
                n,
                "--verify_dataset_integrity",
                "--clean",
            ],
            PythonCall(f"{PACKAGE}.teacher.teacher_dataset:use_box_window", i),
            ["nnUNetv2_plan_experiment", "-d", i],
            *([] if own else [["nnUNetv2_preprocess", "-d", i, "-c", conf, "-np", n]]),
        ]
    if own and ids:
        out += [
            *small_config_calls(cfg, ids),
            ["nnUNetv2_preprocess", "-d", *ids, "-c", cfg.small.name, "-np", n],
        ]
    return out


def plan_log_name(command: list) -> str:
    """The log of one planning command: ``plan_<ids>.log``, or ``preprocess_<ids>.log`` for preprocessing."""
    i = command.index("-d") + 1
    j = next((k for k, v in enumerate(command[i:]) if str(v).startswith("-")), len(command) - i)
    stage = "preprocess" if command[0] == "nnUNetv2_preprocess" else "plan"
    return f"{stage}_{'_'.join(map(str, command[i : i + j]))}.log"


def own_spacing(cfg: PipelineConfig) -> bool:
    """Whether the small configuration has its own spacing (and so its own preprocessed data)."""
    return bool(cfg.small and cfg.small.spacing)


def small_config_calls(cfg: PipelineConfig, ids: Sequence[int]) -> list[PythonCall]:
    s = cfg.small
    own = (cfg.configuration, "nnUNetPlans", tuple(s.spacing)) if s and s.spacing else ()
    return (
        [
            PythonCall(
                f"{PACKAGE}.nnunet.plans:add_small_configuration",
                i,
                s.name,
                tuple(s.patch_size),
                tuple(s.features),
                s.batch_size,
                *own,
            )
            for i in ids
        ]
        if s
        else []
    )


def plan_step(cfg: PipelineConfig, layout: Layout, roles: Sequence[str], what: str) -> Step:
    """nnU-Net's planning and preprocessing of the roles' datasets (and our small configuration). The teacher's
    CT window is fitted to its box voxels (:func:`~..teacher.teacher_dataset.use_box_window`) between nnU-Net's
    fingerprint and its planning. Only the datasets not yet preprocessed are done."""
    ids = [cfg.dataset_ids[r] for r in roles]
    window = [cfg.dataset_ids[r] for r in roles if r == "teacher"]
    conf = cfg.train_configuration
    extra = [] if own_spacing(cfg) else small_config_calls(cfg, ids)
    cmd = " && ".join(shown(c) for c in plan_commands(cfg, ids, window) + extra)

    def done() -> bool:
        return all(preprocessed_done(i, conf) for i in ids)

    def run() -> None:
        todo = [i for i in ids if not preprocessed_done(i, conf)]
        base_todo = (
            todo
            if own_spacing(cfg)
            else [i for i in todo if not preprocessed_done(i, cfg.configuration)]
        )
        env = nnunet_env(cfg)
        for c in plan_commands(cfg, base_todo, window):
            if isinstance(c, PythonCall):
                c()
            else:
                log = layout.logs / plan_log_name(c)
                run_command([nnunet_command(c[0]), *map(str, c[1:])], env, log)
        for call in (
            [] if own_spacing(cfg) else small_config_calls(cfg, todo)
        ):  # only these: rewriting the
            call()  # plans makes their models stale

    return Step(
        f"plan and preprocess ({what})",
        cmd,
        run,
        done,
        clear=lambda: remove_paths(*(dataset_dir("preprocessed", i) for i in ids)),
    )


def train_step_name(model_name: str, trainer: str) -> str:
    """The name of a training step (keys its seconds in ``timings.json``)."""
    return f"train {model_name} ({trainer})"


def train_command(cfg: PipelineConfig, role: str, fold) -> list:
    """``nnUNetv2_train`` of one fold of a role (nnU-Net's console script by name)."""
    return [
        "nnUNetv2_train",
        cfg.dataset_ids[role],
        cfg.train_configuration,
        fold,
        "-tr",
        cfg.trainers[role],
        "-device",
        cfg.device,
    ]


def train_step(cfg: PipelineConfig, layout: Layout, role: str) -> Step:
    did, trainer = cfg.dataset_ids[role], cfg.trainers[role]
    folds = cfg.folds_for(role)
    env = nnunet_env(cfg, training=True, role=role)
    cmds = [
        shlex.join(
            [
                *(f"{k}={env[k]}" for k in TRAINING_VARIABLES if k in env),
                *map(str, train_command(cfg, role, f)),
            ]
        )
        for f in folds
    ]

    def train(seed: int) -> None:
        for f in folds:
            fold_dir = model_folder(cfg, role) / f"fold_{f}"
            if (fold_dir / "checkpoint_final.pth").is_file():
                continue
            c = train_command(cfg, role, f)
            args = [nnunet_command(c[0]), *map(str, c[1:])]
            if (fold_dir / "checkpoint_latest.pth").is_file():
                args.append("--c")  # resume an interrupted training
            log = layout.logs / f"train_{role}_fold{f}_seed{seed}.log"
            print(
                f"  training {cfg.model_name(role)}: dataset {did}, fold {f}, seed {seed} (log: {log})",
                flush=True,
            )
            run_command(args, nnunet_env(cfg, training=True, seed=seed, role=role), log)

    def run() -> None:
        if not guarded(cfg, role):
            train(cfg.seed)
            return
        from ..teacher.guard import guarded_training, score_teacher, strong_case_predictions

        folder, data = model_folder(cfg, role), dataset_dir("raw", did)
        guarded_training(
            folder,
            folds,
            data,
            cfg.seed,
            train,
            lambda seed: score_teacher(
                strong_case_predictions(
                    folder, folds, data, seed, cfg.device, False, cfg.box_margin_mm
                )
            ),
            max_attempts=cfg.guard_attempts,
        )

    def done() -> bool:
        if not trained(cfg, role):
            return False
        if not guarded(cfg, role):
            return True
        from ..teacher.guard import load_guard

        return bool(load_guard(model_folder(cfg, role), folds).get("final"))

    if guarded(cfg, role):
        cmds.append(
            "# then the teacher guard: DSC on the strong cases with fresh boxes >= 0.80 and no empty box, "
            f"else retrain with the next NNTS_SEED (at most {cfg.guard_attempts} attempts)"
        )

    def clear() -> None:
        folder = model_folder(cfg, role)
        from ..teacher.guard import guard_file

        remove_paths(
            *(folder / f"fold_{f}" for f in folds),
            *(p for f in folds for p in folder.glob(f"fold_{f}_*_failed")),
            guard_file(folder, folds),
        )

    return Step(
        train_step_name(cfg.model_name(role), trainer), " && ".join(cmds), run, done, clear=clear
    )


def model_args(cfg: PipelineConfig, role: str, folds: Sequence) -> list:
    """``-m``, ``-f`` and ``-device``: the trained model of ``role`` with ``folds``, as the ``nnts`` commands
    that run a model spell them."""
    return ["-m", model_folder(cfg, role), "-f", *folds, "-device", cfg.device]


def pseudo_step(
    cfg: PipelineConfig,
    layout: Layout,
    role: str = "teacher",
    out: Path | None = None,
    probabilities: bool = False,
    previous: Path | None = None,
    name: str | None = None,
) -> Step:
    """Pseudo-label the weak set with the model of ``role`` (a teacher, or a student re-labelling for a
    noisy-student round, constrained to the boxes as a box teacher) into ``out`` (default: ``layout.pseudo``);
    the trainer decides box or point mode. Pseudo-labels of a retrained model are replaced.
    ``probabilities``: the teacher's probabilities too (``--save-probabilities``). ``previous``: the previous
    round's pseudo-labels (``--previous``: each case's label change in the QC, and the ``max_label_change`` filter)."""
    from ..pseudo_labels.settings import PseudoLabelSettings

    out = out or layout.pseudo
    filters = {
        k: v for k, v in cfg.filters.items() if previous is not None or k != "max_label_change"
    }
    argv = [
        "pseudo-label",
        "-i",
        cfg.weak_dir,
        "-o",
        out,
        *model_args(cfg, role, cfg.folds_for(role)),
        "--box-margin-mm",
        cfg.box_margin_mm,
        *([] if cfg.tta else ["--disable-tta"]),
        *(a for k, v in filters.items() for a in (f"--{k.replace('_', '-')}", v)),
        "--filter-mode",
        cfg.filter_mode,
        *labels_arg(cfg),
        "--num-parts",
        1,
        *(["--save-probabilities"] if probabilities else []),
        *(["--previous", previous] if previous else []),
    ]

    settings = PseudoLabelSettings(
        model_folder=model_folder(cfg, role),
        folds=tuple(cfg.folds_for(role)),
        device=cfg.device,
        tta=cfg.tta,
        box_margin_mm=cfg.box_margin_mm,
        **filters,
        filter_mode=cfg.filter_mode,
        labels_dir=cfg.weak_labels,
        previous=previous,
        save_probabilities=probabilities,
    )

    def call() -> ApiCall:
        stale = pseudo_stale(out, checkpoints(cfg, role))
        if stale:
            print(f"  the model was retrained: replacing the pseudo-labels in {out}", flush=True)
        return pseudo_label_call(cfg.weak_dir, out, replace(settings, overwrite=stale))

    if name is None:
        name = (
            "pseudo-label the weak set (with QC)"
            if role == "teacher"
            else f"pseudo-label the weak set ({cfg.model_name(role)})"
        )
    if probabilities:
        name = name.replace("(with QC)", "(with QC and the teacher's probabilities)")
    return api_step(
        name,
        argv,
        call,
        lambda: pseudo_done(out, checkpoints(cfg, role)),
        layout.logs / f"pseudo_{role}.log",
        clear=lambda: remove_paths(out),
    )


def pseudo_label_call(weak_dir: Path, out: Path, settings) -> ApiCall:
    """``pseudo_label(weak_dir, out, settings)``."""
    return ApiCall("pseudo_labels.run:pseudo_label", (weak_dir, out, settings), settings)


def relabel_step(
    cfg: PipelineConfig, layout: Layout, role: str, k: int, out: Path, previous: Path
) -> Step:
    """Noisy-student round ``k``: the student of ``role`` re-labels the weak set into ``out``, inside the boxes as the
    box teacher does, against the previous round's labels in ``previous``."""
    return pseudo_step(
        cfg,
        layout,
        role,
        out,
        previous=previous,
        name=f"round {k}: re-label the weak set ({cfg.model_name(role)}, in the boxes)",
    )


def calibrate_step(cfg: PipelineConfig, layout: Layout, role: str = "teacher") -> Step:
    """The teacher's unsure probability band from its strong cases (``nnts calibrate-band``)."""
    argv = [
        "calibrate-band",
        "--teacher-dataset",
        cfg.dataset_ids[role],
        "-o",
        layout.band,
        *model_args(cfg, role, cfg.folds_for(role)),
        "--box-margin-mm",
        cfg.box_margin_mm,
        "--seed",
        cfg.seed,
    ]

    def done() -> bool:
        ckpts = checkpoints(cfg, role)
        return all(c.is_file() for c in ckpts) and newer(layout.band, *ckpts)

    def calibrate() -> None:
        from ..nnunet.raw_dataset import find_raw_dataset
        from ..teacher.calibration import calibrate_band, write_band

        doc = calibrate_band(
            model_folder(cfg, role),
            list(cfg.folds_for(role)),
            find_raw_dataset(cfg.dataset_ids[role]),
            cfg.seed,
            cfg.device,
            cfg.box_margin_mm,
        )
        write_band(doc, layout.band)

    return api_step(
        "calibrate the teacher's unsure band on the strong cases",
        argv,
        lambda: ApiCall(calibrate),
        done,
        layout.logs / "calibrate_band.log",
        clear=lambda: remove_paths(layout.band),
    )


def classical_pseudo_step(cfg: PipelineConfig, layout: Layout, out: Path) -> Step:
    """Pseudo-label the weak set with the classical rule (no training): the reference floor."""
    from ..pseudo_labels.settings import PseudoLabelSettings

    argv = [
        "pseudo-label",
        "--teacher",
        "classical",
        "-i",
        cfg.weak_dir,
        "-o",
        out,
        "--box-margin-mm",
        cfg.box_margin_mm,
        *labels_arg(cfg),
        "--num-parts",
        1,
        "--overwrite",
        "--quiet",
    ]
    settings = PseudoLabelSettings(
        teacher="classical",
        box_margin_mm=cfg.box_margin_mm,
        labels_dir=cfg.weak_labels,
        overwrite=True,
        quiet=True,
        device="auto",
    )
    return api_step(
        "pseudo-label the weak set (classical rule: box ∧ HU > -400 ∧ lung)",
        argv,
        lambda: pseudo_label_call(cfg.weak_dir, out, settings),
        lambda: pseudo_done(out),
        layout.logs / "pseudo_classical.log",
        inputs=lambda: [cfg.weak_dir],
        clear=lambda: remove_paths(out),
    )


def labels_arg(cfg: PipelineConfig) -> list:
    """``--labels`` of the weak cases' true masks, when the configuration names them."""
    return ["--labels", cfg.weak_labels] if cfg.weak_labels else []


#: role -> (dataset form, where the weak cases' labels come from (pseudo, truth, boxes or none), step title)
STUDENT_DATASETS = {k: (d.form, d.labels, d.title) for k, d in DATASETS.items() if d.form}


def student_dataset_step(
    cfg: PipelineConfig,
    layout: Layout,
    role: str,
    spec: tuple[str, str | None, str] | None = None,
    pseudo_dir: Path | None = None,
) -> Step:
    """Build the nnU-Net raw dataset of a student-side role: ``spec`` (default :data:`STUDENT_DATASETS`
    of the role) is its dataset form, where the weak cases' labels come from and the step's title;
    ``pseudo_dir``: the pseudo-labels to take (default ``layout.pseudo``, the teacher's). Cases that
    the pseudo-label QC excluded are left out (``make-student-dataset`` reads the folder's list)."""
    form, weak_labels, what = spec or STUDENT_DATASETS[role]
    ids = cfg.dataset_ids
    pseudo = {
        "pseudo": pseudo_dir or layout.pseudo,
        "truth": cfg.weak_dir / "labels",
        "uncertain": layout.pseudo_probabilities,
    }.get(weak_labels)
    argv = [
        "make-student-dataset",
        "--strong",
        cfg.strong,
        "-d",
        ids[role],
        "--name",
        cfg.dataset_names[role],
        "--form",
        form,
        *(["--weak", cfg.weak_dir] if weak_labels else []),
        *(["--pseudo", pseudo] if pseudo else []),
        *(["--band-from", layout.band] if weak_labels == "uncertain" else []),
        *manifest_arg(cfg),
        *(["--crop", cfg.student_crop] if cfg.student_crop else []),
        "--folds",
        cfg.n_folds,
        "--seed",
        cfg.seed,
        "--overwrite",
    ]
    done = (
        (lambda: student_dataset_current(cfg, role, pseudo))
        if weak_labels in ("pseudo", "uncertain")
        else (lambda: raw_done(ids[role]))
    )

    def call() -> ApiCall:
        from ..students.settings import StudentDatasetSettings
        from ..teacher.calibration import read_band

        settings = StudentDatasetSettings(
            cfg.strong,
            ids[role],
            cfg.dataset_names[role],
            form=form,
            weak_dir=cfg.weak_dir if weak_labels else None,
            pseudo_dir=pseudo,
            manifest=cfg.manifest,
            n_folds=cfg.n_folds,
            seed=cfg.seed,
            crop=cfg.student_crop,
            overwrite=True,
            uncertain_band=read_band(layout.band) if weak_labels == "uncertain" else None,
        )
        return ApiCall("students.student_dataset:make_student_dataset", (settings,), settings)

    return api_step(
        what,
        argv,
        call,
        done,
        layout.logs / f"dataset_{role}.log",
        inputs=lambda: [
            dataset_dir("raw", cfg.strong),
            cfg.weak_dir if weak_labels else None,
            cfg.manifest,
        ],
    )


def manifest_arg(cfg: PipelineConfig) -> list:
    return ["--manifest", cfg.manifest] if cfg.manifest else []


def teacher_dataset_step(cfg: PipelineConfig, layout: Layout) -> Step:
    """Build the teacher dataset (CT + box channel) of ``cfg`` from its strong dataset and weak set."""
    argv = [
        "make-teacher-dataset",
        "--strong",
        cfg.strong,
        "-d",
        cfg.dataset_ids["teacher"],
        "--name",
        cfg.dataset_names["teacher"],
        "--weak",
        cfg.weak_dir,
        *(["--annotator", cfg.annotator] if cfg.annotator else []),
        *(["--box-mode", cfg.box_mode] if cfg.box_mode != "lesion" else []),
        "--seed",
        cfg.seed,
        *manifest_arg(cfg),
        "--folds",
        cfg.n_folds,
        "--overwrite",
    ]

    def call() -> ApiCall:
        from ..teacher.settings import TeacherDatasetSettings

        settings = TeacherDatasetSettings(
            cfg.strong,
            cfg.dataset_ids["teacher"],
            cfg.dataset_names["teacher"],
            seed=cfg.seed,
            box_mode=cfg.box_mode,
            weak_dir=cfg.weak_dir,
            overwrite=True,
            manifest=cfg.manifest,
            n_folds=cfg.n_folds,
            annotator=cfg.annotator,
        )
        return ApiCall("teacher.teacher_dataset:make_teacher_dataset", (settings,), settings)

    return api_step(
        "teacher dataset (CT + box channel)",
        argv,
        call,
        lambda: raw_done(cfg.dataset_ids["teacher"]),
        layout.logs / "dataset_teacher.log",
        inputs=lambda: [dataset_dir("raw", cfg.strong), cfg.weak_dir, cfg.manifest],
    )


def method_steps(cfg: PipelineConfig, layout: Layout) -> list[Step]:
    """The method's steps, from the strong dataset and the weak set to the evaluation of the test set.
    Heavy modules are imported inside the steps: listing and checking steps stays fast."""
    steps: list[Step] = []

    steps.append(teacher_dataset_step(cfg, layout))
    steps.append(plan_step(cfg, layout, ["teacher"], "teacher"))
    steps.append(train_step(cfg, layout, "teacher"))

    steps.append(pseudo_step(cfg, layout))

    datasets = list(dict.fromkeys(DATASET_OF.get(m, m) for m in cfg.train))
    for role in datasets:
        steps.append(student_dataset_step(cfg, layout, role))
    if datasets:
        steps.append(plan_step(cfg, layout, datasets, "students and baseline"))
    for role in cfg.train:
        steps.append(train_step(cfg, layout, role))

    if cfg.test_images:
        for role in cfg.train:
            steps.append(predict_step(cfg, layout, role))
        if cfg.test_labels:
            for role in cfg.train:
                steps.append(
                    evaluate_step(cfg, layout, role, layout.predictions(role), cfg.test_labels)
                )
    if cfg.weak_labels:
        steps.append(evaluate_step(cfg, layout, "teacher", layout.pseudo, cfg.weak_labels))
    for k in range(2, cfg.rounds + 1):
        steps += round_steps(cfg, layout, k)
    return steps


def round_steps(cfg: PipelineConfig, layout: Layout, k: int) -> list[Step]:
    """Noisy-student round ``k``: round ``k - 1``'s ``relabel_with`` student, constrained to the boxes as the
    box teacher is, re-labels the weak set (label change against the previous round in the QC; strong cases keep
    their masks); the round's students train on it, predict and are evaluated as round 1's."""
    out = layout.round_pseudo(k)
    steps = [
        relabel_step(
            cfg, layout, cfg.round_role(cfg.relabel_with, k - 1), k, out, layout.round_pseudo(k - 1)
        )
    ]
    if cfg.weak_labels:
        steps.append(evaluate_step(cfg, layout, cfg.round_pseudo_role(k), out, cfg.weak_labels))
    roles = [cfg.round_role(m, k) for m in cfg.round_models()]
    for m, role in zip(cfg.round_models(), roles):
        form, labels, what = STUDENT_DATASETS[m]
        steps.append(
            student_dataset_step(
                cfg, layout, role, (form, labels, f"round {k}: {what}"), pseudo_dir=out
            )
        )
    steps.append(plan_step(cfg, layout, roles, f"round {k} students"))
    steps += [train_step(cfg, layout, role) for role in roles]
    if cfg.test_images:
        steps += [predict_step(cfg, layout, role) for role in roles]
        if cfg.test_labels:
            steps += [
                evaluate_step(cfg, layout, role, layout.predictions(role), cfg.test_labels)
                for role in roles
            ]
    return steps


def predict_step(cfg: PipelineConfig, layout: Layout, role: str) -> Step:
    out = layout.predictions(role)
    argv = [
        "predict",
        "-i",
        cfg.test_images,
        "-o",
        out,
        *model_args(cfg, role, cfg.folds),
        *([] if cfg.test_tta else ["--disable-tta"]),
        *([] if cfg.lung_crop else ["--no-lung-crop", "--keep-outside-lungs", "--all-tiles"]),
        "--num-parts",
        1,
    ]

    def call() -> ApiCall:
        from ..prediction.settings import PredictSettings

        settings = PredictSettings(
            folds=tuple(cfg.folds),
            device=cfg.device,
            tta=cfg.test_tta,
            lung_crop=cfg.lung_crop,
            skip_tiles=cfg.lung_crop,
            lung_dilation_mm=PredictSettings.lung_dilation_mm if cfg.lung_crop else None,
            overwrite=stale_outputs(out, checkpoints(cfg, role)),
        )
        args = (cfg.test_images, out, model_folder(cfg, role), settings)
        return ApiCall("prediction.batch:predict_path", args, settings)

    return api_step(
        f"predict the test set ({cfg.model_name(role)})",
        argv,
        call,
        lambda: predictions_done(cfg.test_images, out, checkpoints(cfg, role)),
        layout.logs / f"predict_{role}.log",
        inputs=lambda: [cfg.test_images],
        clear=lambda: remove_paths(out),
    )


def evaluate_step(cfg: PipelineConfig, layout: Layout, role: str, pred: Path, gt: Path) -> Step:
    out = layout.evaluation(role)
    name = cfg.model_name(role)

    def done() -> bool:
        summary = out / "summary.json"
        return summary.is_file() and summary.stat().st_mtime >= max(
            (p.stat().st_mtime for p in pred.glob("*.nii.gz")), default=0
        )

    argv = [
        "evaluate",
        "--pred",
        pred,
        "--gt",
        gt,
        "-o",
        out,
        *manifest_arg(cfg),
        "--name",
        name,
        "--quiet",
    ]
    what = "pseudo-labels vs true weak masks" if gt == cfg.weak_labels else "test set"

    def evaluate() -> None:
        from ..evaluation import EvaluationSettings, evaluate_folders, write_outputs

        result = evaluate_folders(pred, gt, cfg.manifest, EvaluationSettings(), progress=False)
        write_outputs(result, out, name)

    return api_step(
        f"evaluate {name} ({what})",
        argv,
        lambda: ApiCall(evaluate),
        done,
        layout.logs / f"evaluate_{role}.log",
        inputs=lambda: [gt, cfg.manifest],
        clear=lambda: remove_paths(out),
    )
