"""The teacher-student method as steps (shared by ``nnts demo``, ``nnts pipeline`` and ``nnts benchmark``):
teacher dataset -> plan -> train the box teacher -> pseudo-label the weak set (QC) -> SO/DO student and
strong-only baseline datasets -> plan -> train -> predict the test set -> evaluate. nnU-Net's own commands
run as subprocesses whose progress lines are streamed; their full output goes to ``logs/``."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence

from ..core.files import load_json
from ..pseudo_labels.folder import EXCLUDED_FILE
from .config import BASE_CONFIGURATION, DATASET_OF, PipelineConfig, nnunet_env
from .outputs import (Layout, checkpoints, dataset_dir, guarded, model_folder, preprocessed_done, predictions_done,
                      pseudo_done, pseudo_stale, raw_done, stale_outputs, student_dataset_current, trained)
from .processes import nnunet_command, run_command
from .steps import Step, remove_paths


def plan_step(cfg: PipelineConfig, layout: Layout, roles: Sequence[str], what: str) -> Step:
    """nnU-Net's planning and preprocessing of the roles' datasets (and our small configuration). The teacher's
    CT window is fitted to its box voxels (:func:`~..teacher.dataset.use_box_window`) between nnU-Net's
    fingerprint and its planning."""
    ids = [cfg.dataset_ids[r] for r in roles]
    window = [cfg.dataset_ids[r] for r in roles if r == "teacher"]
    plain = [i for i in ids if i not in window]
    conf = cfg.train_configuration
    npr = f"-np {cfg.num_processes}"
    parts = []
    if plain:
        parts.append(f"nnUNetv2_plan_and_preprocess -d {' '.join(map(str, plain))} -c {BASE_CONFIGURATION} "
                     f"{npr} -npfp {cfg.num_processes} --verify_dataset_integrity")
    for i in window:
        parts += [f"nnUNetv2_extract_fingerprint -d {i} -np {cfg.num_processes} --verify_dataset_integrity --clean",
                  f"python -c 'from nnunet_teacher_student.teacher.dataset import use_box_window; use_box_window({i})'",
                  f"nnUNetv2_plan_experiment -d {i}", f"nnUNetv2_preprocess -d {i} -c {BASE_CONFIGURATION} {npr}"]
    if cfg.small:
        s = cfg.small
        parts += [f"python -c 'from nnunet_teacher_student.nnunet.plans import add_small_configuration as a; "
                  f"a({i}, \"{s.name}\", {tuple(s.patch_size)}, {tuple(s.features)}, {s.batch_size})'" for i in ids]
    cmd = " && ".join(parts)

    def done() -> bool:
        return all(preprocessed_done(i, conf) for i in ids)

    def run() -> None:
        from ..nnunet.plans import add_small_configuration
        from ..teacher.dataset import use_box_window

        todo = [i for i in ids if not preprocessed_done(i, conf)]
        base_todo = [i for i in todo if not preprocessed_done(i, BASE_CONFIGURATION)]
        env, n = nnunet_env(cfg), str(cfg.num_processes)
        plain_todo = [i for i in base_todo if i not in window]
        if plain_todo:
            run_command([nnunet_command("nnUNetv2_plan_and_preprocess"), "-d", *map(str, plain_todo), "-c",
                         BASE_CONFIGURATION, "-np", n, "-npfp", n, "--verify_dataset_integrity"],
                        env, layout.logs / f"plan_{'_'.join(map(str, plain_todo))}.log")
        for i in (i for i in base_todo if i in window):
            log = layout.logs / f"plan_{i}.log"
            run_command([nnunet_command("nnUNetv2_extract_fingerprint"), "-d", str(i), "-np", n,
                         "--verify_dataset_integrity", "--clean"], env, log)
            use_box_window(i)
            run_command([nnunet_command("nnUNetv2_plan_experiment"), "-d", str(i)], env, log)
            run_command([nnunet_command("nnUNetv2_preprocess"), "-d", str(i), "-c", BASE_CONFIGURATION, "-np", n],
                        env, log)
        if cfg.small:
            for i in todo:  # only these: rewriting the plans makes the models trained on them stale
                add_small_configuration(i, cfg.small.name, tuple(cfg.small.patch_size), tuple(cfg.small.features),
                                        cfg.small.batch_size)

    return Step(f"plan and preprocess ({what})", cmd, run, done,
                clear=lambda: remove_paths(*(dataset_dir("preprocessed", i) for i in ids)))


def train_step_name(model_name: str, trainer: str) -> str:
    """The name of a training step (keys its seconds in ``timings.json``)."""
    return f"train {model_name} ({trainer})"


def train_step(cfg: PipelineConfig, layout: Layout, role: str) -> Step:
    did, conf, trainer = cfg.dataset_ids[role], cfg.train_configuration, cfg.trainers[role]
    folds = cfg.folds_for(role)
    budget = cfg.budget.shell() + f" NNTS_SEED={cfg.seed}" + (" nnUNet_n_proc_DA=0" if cfg.device == "cpu" else "")
    budget = budget.strip()
    cmds = [f"{budget} nnUNetv2_train {did} {conf} {f} -tr {trainer} -device {cfg.device}" for f in folds]

    def train(seed: int) -> None:
        for f in folds:
            fold_dir = model_folder(cfg, role) / f"fold_{f}"
            if (fold_dir / "checkpoint_final.pth").is_file():
                continue
            args = [nnunet_command("nnUNetv2_train"), str(did), conf, str(f), "-tr", trainer, "-device", cfg.device]
            if (fold_dir / "checkpoint_latest.pth").is_file():
                args.append("--c")  # resume an interrupted training
            log = layout.logs / f"train_{role}_fold{f}_seed{seed}.log"
            print(f"  training {cfg.model_name(role)}: dataset {did}, fold {f}, seed {seed} (log: {log})",
                  flush=True)
            run_command(args, nnunet_env(cfg, training=True, seed=seed), log)

    def run() -> None:
        if not guarded(cfg, role):
            train(cfg.seed)
            return
        from ..teacher.guard import guarded_training, score_teacher

        folder, data = model_folder(cfg, role), dataset_dir("raw", did)
        guarded_training(folder, folds, data, cfg.seed, train,
                         lambda seed: score_teacher(folder, folds, data, seed, cfg.device, False, cfg.box_margin_mm),
                         max_attempts=cfg.guard_attempts)

    def done() -> bool:
        if not trained(cfg, role):
            return False
        if not guarded(cfg, role):
            return True
        from ..teacher.guard import load_guard

        return bool(load_guard(model_folder(cfg, role)).get("final"))

    if guarded(cfg, role):
        cmds.append("# then the teacher guard: DSC on the strong cases with fresh boxes >= 0.80 and no empty box, "
                    f"else retrain with the next NNTS_SEED (at most {cfg.guard_attempts} attempts)")

    def clear() -> None:
        folder = model_folder(cfg, role)
        remove_paths(*(folder / f"fold_{f}" for f in folds), *folder.glob("fold_*_failed"),
                     folder / "nnts_guard.json")

    return Step(train_step_name(cfg.model_name(role), trainer), " && ".join(cmds), run, done, clear=clear)


def _folds_arg(cfg: PipelineConfig, role: str | None = None) -> str:
    return " ".join(map(str, cfg.folds_for(role) if role else cfg.folds))


def pseudo_step(cfg: PipelineConfig, layout: Layout, role: str = "teacher", out: Path | None = None) -> Step:
    """Pseudo-label the weak set with the teacher of ``role`` into ``out`` (default: ``layout.pseudo``);
    the teacher's trainer decides box or point mode. Pseudo-labels of a retrained teacher are replaced."""
    out = out or layout.pseudo
    q = shlex.quote

    def run() -> None:
        from ..pseudo_labels.run import pseudo_label

        stale = pseudo_stale(out, checkpoints(cfg, role))
        if stale:
            print(f"  the teacher was retrained: replacing the pseudo-labels in {out}", flush=True)
        pseudo_label(model_folder(cfg, role), cfg.weak_dir, out, folds=cfg.folds_for(role), device=cfg.device,
                     tta=cfg.tta, box_margin_mm=cfg.box_margin_mm, filters=cfg.filters, filter_mode=cfg.filter_mode,
                     overwrite=stale, labels_dir=cfg.weak_labels)

    filt = "".join(f" --{k.replace('_', '-')} {v}" for k, v in cfg.filters.items())
    name = "pseudo-label the weak set (with QC)" if role == "teacher" else \
        f"pseudo-label the weak set ({cfg.model_name(role)})"
    return Step(
        name,
        f"nnts pseudo-label -i {q(str(cfg.weak_dir))} -o {q(str(out))} -m {q(str(model_folder(cfg, role)))} "
        f"-f {_folds_arg(cfg, role)} -device {cfg.device} --box-margin-mm {cfg.box_margin_mm}"
        f"{'' if cfg.tta else ' --disable-tta'}{filt} --filter-mode {cfg.filter_mode}",
        run, lambda: pseudo_done(out, checkpoints(cfg, role)), clear=lambda: remove_paths(out))


def classical_pseudo_step(cfg: PipelineConfig, out: Path) -> Step:
    """Pseudo-label the weak set with the classical rule (no training): the reference floor."""
    q = shlex.quote

    def run() -> None:
        from ..pseudo_labels.run import pseudo_label

        pseudo_label(None, cfg.weak_dir, out, box_margin_mm=cfg.box_margin_mm, teacher="classical", overwrite=True,
                     progress=False, labels_dir=cfg.weak_labels)

    return Step("pseudo-label the weak set (classical rule: box ∧ HU > -400 ∧ lung)",
                f"nnts pseudo-label --teacher classical -i {q(str(cfg.weak_dir))} -o {q(str(out))} "
                f"--box-margin-mm {cfg.box_margin_mm}", run, lambda: pseudo_done(out), inputs=lambda: [cfg.weak_dir],
                clear=lambda: remove_paths(out))


#: role -> (dataset form, where the weak cases' labels come from (pseudo, truth, boxes or none), step title)
STUDENT_DATASETS = {
    "so": ("so", "pseudo", "SO student dataset (strong + pseudo-labels)"),
    "do": ("do", "pseudo", "DO student dataset (box + tumour regions)"),
    "baseline": ("so", None, "baseline dataset (strong cases only, SO form)"),
}


def student_dataset_step(cfg: PipelineConfig, layout: Layout, role: str,
                         spec: tuple[str, str | None, str] | None = None) -> Step:
    """Build the nnU-Net raw dataset of a student-side role: ``spec`` (default :data:`STUDENT_DATASETS`
    of the role) is its dataset form, where the weak cases' labels come from and the step's title."""
    form, weak_labels, what = spec or STUDENT_DATASETS[role]
    ids, names, q = cfg.dataset_ids, cfg.dataset_names, shlex.quote
    pseudo = {"pseudo": layout.pseudo, "truth": cfg.weak_dir / "labels"}.get(weak_labels)

    def run() -> None:
        from ..students.dataset import make_student_dataset

        excluded = set(load_json(layout.pseudo / EXCLUDED_FILE).get("excluded", {})) if weak_labels == "pseudo" \
            else set()
        kw = {"weak_dir": cfg.weak_dir, "pseudo_dir": pseudo} if weak_labels else {}
        make_student_dataset(cfg.strong, ids[role], names[role], form, manifest=cfg.manifest, n_folds=cfg.n_folds,
                             seed=cfg.seed, exclude=excluded, overwrite=True, **kw)

    src = f" --weak {q(str(cfg.weak_dir))}" if weak_labels else ""
    src += f" --pseudo {q(str(pseudo))}" if pseudo else ""
    manifest_arg = f" --manifest {q(str(cfg.manifest))}" if cfg.manifest else ""
    done = (lambda: student_dataset_current(cfg, role, layout.pseudo)) if weak_labels == "pseudo" else \
        (lambda: raw_done(ids[role]))
    return Step(what, f"nnts make-student-dataset --strong {cfg.strong} -d {ids[role]} --name {names[role]} "
                      f"--form {form}{src}{manifest_arg} --folds {cfg.n_folds} --seed {cfg.seed}", run, done,
                inputs=lambda: [dataset_dir("raw", cfg.strong), cfg.weak_dir if weak_labels else None, cfg.manifest])


def teacher_dataset_step(cfg: PipelineConfig) -> Step:
    """Build the teacher dataset (CT + box channel) of ``cfg`` from its strong dataset and weak set."""
    ids, names, q = cfg.dataset_ids, cfg.dataset_names, shlex.quote
    manifest_arg = f" --manifest {q(str(cfg.manifest))}" if cfg.manifest else ""
    annotator_arg = f" --annotator {q(cfg.annotator)}" if cfg.annotator else ""
    return Step(
        "teacher dataset (CT + box channel)",
        f"nnts make-teacher-dataset --strong {cfg.strong} -d {ids['teacher']} --name {names['teacher']} "
        f"--weak {q(str(cfg.weak_dir))} --jitter {cfg.jitter}{annotator_arg} --seed {cfg.seed}{manifest_arg} "
        f"--folds {cfg.n_folds}",
        lambda: build_teacher_dataset(cfg), lambda: raw_done(ids["teacher"]),
        inputs=lambda: [dataset_dir("raw", cfg.strong), cfg.weak_dir, cfg.manifest])


def method_steps(cfg: PipelineConfig, layout: Layout) -> list[Step]:
    """The method's steps, from the strong dataset and the weak set to the evaluation of the test set.
    Heavy modules are imported inside the steps: listing and checking steps stays fast."""
    steps: list[Step] = []

    steps.append(teacher_dataset_step(cfg))
    steps.append(plan_step(cfg, layout, ["teacher"], "teacher"))
    steps.append(train_step(cfg, layout, "teacher"))

    steps.append(pseudo_step(cfg, layout))

    datasets = list(dict.fromkeys(DATASET_OF.get(m, m) for m in cfg.train))
    for role in datasets:
        steps.append(student_dataset_step(cfg, layout, role))
    steps.append(plan_step(cfg, layout, datasets, "students and baseline"))
    for role in cfg.train:
        steps.append(train_step(cfg, layout, role))

    if cfg.test_images:
        for role in cfg.train:
            steps.append(predict_step(cfg, layout, role))
        if cfg.test_labels:
            for role in cfg.train:
                steps.append(evaluate_step(cfg, layout, role, layout.predictions(role), cfg.test_labels))
    if cfg.weak_labels:
        steps.append(evaluate_step(cfg, layout, "teacher", layout.pseudo, cfg.weak_labels))
    return steps


def build_teacher_dataset(cfg: PipelineConfig) -> None:
    from ..teacher.dataset import make_teacher_dataset

    make_teacher_dataset(cfg.strong, cfg.dataset_ids["teacher"], cfg.dataset_names["teacher"], jitter=cfg.jitter,
                         seed=cfg.seed, weak_dir=cfg.weak_dir, overwrite=True, manifest=cfg.manifest,
                         n_folds=cfg.n_folds, annotator=cfg.annotator)


def predict_step(cfg: PipelineConfig, layout: Layout, role: str) -> Step:
    out = layout.predictions(role)

    def run() -> None:
        from ..prediction.batch import predict_path

        predict_path(cfg.test_images, out, model_folder(cfg, role), folds=cfg.folds, device=cfg.device,
                     lung_crop=cfg.lung_crop, tta=cfg.test_tta, overwrite=stale_outputs(out, checkpoints(cfg, role)))

    cmd = (f"nnts predict -i {shlex.quote(str(cfg.test_images))} -o {shlex.quote(str(out))} "
           f"-m {shlex.quote(str(model_folder(cfg, role)))} -f {_folds_arg(cfg)} -device {cfg.device}"
           f"{'' if cfg.test_tta else ' --disable-tta'}{'' if cfg.lung_crop else ' --no-lung-crop'}")
    return Step(f"predict the test set ({cfg.model_name(role)})", cmd, run,
                lambda: predictions_done(cfg.test_images, out, checkpoints(cfg, role)),
                inputs=lambda: [cfg.test_images], clear=lambda: remove_paths(out))


def evaluate_step(cfg: PipelineConfig, layout: Layout, role: str, pred: Path, gt: Path) -> Step:
    out = layout.evaluation(role)
    name = cfg.model_name(role)

    def run() -> None:
        from ..evaluation import evaluate_folders, write_outputs

        result = evaluate_folders(pred, gt, cfg.manifest, progress=False)
        write_outputs(result, out, name)

    def done() -> bool:
        summary = out / "summary.json"
        return summary.is_file() and summary.stat().st_mtime >= max(
            (p.stat().st_mtime for p in pred.glob("*.nii.gz")), default=0)

    cmd = (f"nnts evaluate --pred {shlex.quote(str(pred))} --gt {shlex.quote(str(gt))} -o {shlex.quote(str(out))}"
           + (f" --manifest {shlex.quote(str(cfg.manifest))}" if cfg.manifest else "") + f" --name {shlex.quote(name)}")
    what = "pseudo-labels vs true weak masks" if gt == cfg.weak_labels else "test set"
    return Step(f"evaluate {name} ({what})", cmd, run, done, inputs=lambda: [gt, cfg.manifest],
                clear=lambda: remove_paths(out))
