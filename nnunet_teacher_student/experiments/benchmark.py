"""``nnts benchmark``: the method against plain nnU-Net on phantoms, over scenarios and seeds.

One phantom pool (strong-able cases plus a held-out test set shared by every model) is written
once. Each *run* is a scenario (how many pool cases keep their masks; the others become weak cases
with annotator-model boxes) and a seed (which cases, which box noise). A run trains, on its own nnU-Net
datasets, the models of :data:`MODELS`:

- the box teacher and the point teacher, scored on the weak cases against their true masks;
- the SO and DO students (default trainers and ``_Paper`` variants) on the box teacher's pseudo-labels;
- the baseline (strong cases only), nnU-Net's ignore-label answer to boxes (no teacher), and the
  upper bound (true masks for every case), all with ``nnUNetTrainerNNTS`` (nnU-Net's default trainer
  plus our budget variables);
- the DO student's own ceiling: its trainer on every case's true mask (``upper_do``);
- options beyond the paper: uncertainty-aware students (``so_unc``, ``do_unc``), a teacher ensemble of folds
  (``teacher_ens``) and the DO student on its pseudo-labels (``do_ens``), and a noisy-student round: the DO
  student re-labels the weak set in the boxes (``do_relabel``) and a second DO student trains on it (``do_r2``).

Every run is a list of resumable :class:`~..workflow.steps.Step`; ``experiments.benchmark_report`` aggregates.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.errors import InputError
from ..core.models import DATASETS, MODELS, STUDENTS, TEACHERS, TEST_MODELS
from .presets import (
    CPU_EPOCHS,
    CPU_ITERATIONS,
    CPU_PRESET,
    CPU_SMALL,
    CPU_VAL_ITERATIONS,
    MODEL_NAMES,
)
from ..workflow.config import Budget, PipelineConfig, SmallConfig
from ..workflow.method import (
    STUDENT_DATASETS,
    calibrate_step,
    classical_pseudo_step,
    evaluate_step,
    plan_step,
    predict_step,
    pseudo_step,
    relabel_step,
    student_dataset_step,
    teacher_dataset_step,
    train_step,
    train_step_name,
)
from ..workflow.layout import Layout, raw_done
from ..phantom.settings import PhantomSettings
from ..students.settings import ScenarioSettings
from ..workflow.steps import ApiCall, Step, api_step

POOL_ID = 100
FIRST_RUN_ID = 110  # run k uses dataset ids FIRST_RUN_ID + 10 k + offset
SECOND_RUN_ID = 600  # ... and, for the roles of SECOND_OFFSETS, SECOND_RUN_ID + 10 k + offset
#: dataset slot -> id offset within a run's first block of ten, and within its second (core.models.DATASETS)
DATASET_OFFSETS = {k: d.offset for k, d in DATASETS.items() if d.block == 0}
SECOND_OFFSETS = {k: d.offset for k, d in DATASETS.items() if d.block == 1}
#: the scarce scenario's strong cases come from one site (small, solid, mostly central tumours, clean scans) while
#: the weak and test cases span all three, as the paper's few strong cases came from fewer sites than its weak ones
SCARCE_STRONG_SITES = ("msd",)
UNCERTAIN = tuple(k for k in STUDENTS if DATASETS[MODELS[k].dataset].labels == "uncertain")
#: test-set models whose steps come after the rest (options added to finished runs)
LATER = tuple(k for k, m in MODELS.items() if m.later)
#: models that need another model of the run first
NEEDS = {k: m.needs for k, m in MODELS.items() if m.needs}
DEFAULT_MODELS = tuple(MODELS)


@dataclass
class BenchmarkSettings:
    """What a benchmark does; two invocations with equal settings share (resume) an output folder."""

    scenarios: dict[str, int]  # name -> number of strong cases
    seeds: list[int]
    pool: int  # cases that are strong or weak in a run
    n_test: int
    preset: str
    data_seed: int
    models: list[str]
    device: str
    epochs: int
    iterations: int
    val_iterations: int
    no_mirroring: bool
    small: dict | None = field(default_factory=lambda: cpu_small(CPU_PRESET))
    #: the test-set models' folds: ``all`` = every strong case (the baseline as much as the teacher)
    folds: list = field(default_factory=lambda: ["all"])
    strong_sites: dict[str, list[str]] = field(
        default_factory=dict
    )  # scenario -> sites of its strong cases
    box_mode: str = (
        "lesion"  # weak and teacher boxes: axial per lesion, or lesion3d (one 3-D box each)
    )
    family: str = "standard"  # the phantom population (phantom.families)
    annotator: str | None = (
        None  # the weak and teacher boxes' noise model (None: the default model)
    )
    tumour_free: float | None = (
        None  # share of tumour-free cases in the pool and the test set (None: drawn)
    )
    model_epochs: dict[str, int] = field(
        default_factory=dict
    )  # model -> its own epochs (ceilings, baseline)
    #: a pool made elsewhere (real data) instead of phantoms: a folder with ``dataset/`` (an nnU-Net raw dataset of
    #: the pool cases), ``manifest.json`` (case -> patient) and ``test/images``, ``test/labels``
    pool_from: str | None = None
    configuration: str = (
        "3d_fullres"  # the nnU-Net configuration every model trains (without ``small``)
    )
    lung_crop: bool = True  # test predictions inside the lungs (needs CTs in Hounsfield units)

    def check(self) -> None:
        if not self.scenarios:
            raise InputError("no scenario to run")
        for name, n in self.scenarios.items():
            if not name.isalnum():
                raise InputError(
                    f"scenario name {name!r}: use letters and digits only (it names datasets)"
                )
            if not 1 <= n < self.pool:
                raise InputError(
                    f"scenario {name}: {n} strong case(s) must be in 1..{self.pool - 1} "
                    f"(the pool has {self.pool} cases)"
                )
        from ..phantom.cases import SITES

        for name, sites in self.strong_sites.items():
            if name not in self.scenarios or not sites or set(sites) - set(SITES):
                raise InputError(
                    f"strong sites {sites} of scenario {name!r}: need a scenario of this benchmark and "
                    f"sites from {list(SITES)}"
                )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise InputError(f"seeds must be distinct and at least one, got {self.seeds}")
        from ..phantom.families import FAMILIES

        if self.family not in FAMILIES:
            raise InputError(
                f"unknown phantom family {self.family!r} (choose from {sorted(FAMILIES)})"
            )
        if self.tumour_free is not None and not 0 <= self.tumour_free < 1:
            raise InputError(f"the tumour-free share must be in [0, 1), got {self.tumour_free}")
        bad = {m: e for m, e in self.model_epochs.items() if m not in MODELS or int(e) < 1}
        if bad:
            raise InputError(f"--epochs-for {bad}: need known models and epochs >= 1")
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise InputError(f"unknown model(s) {unknown}; known: {list(MODELS)}")
        if self.n_test < 1:
            raise InputError("the benchmark needs at least one test case")
        if self.pool_from is not None:
            missing = [x for x in POOL_ITEMS if not (Path(self.pool_from) / x).exists()]
            if missing:
                raise InputError(
                    f"{self.pool_from}: not a benchmark pool (missing {', '.join(missing)})"
                )
        if len(self.runs()) * 10 + FIRST_RUN_ID > 999:
            raise InputError(
                f"{len(self.runs())} runs do not fit nnU-Net's dataset ids (at most 88)"
            )
        if set(self.models) & set(SECOND_OFFSETS) and len(self.runs()) * 10 + SECOND_RUN_ID > 999:
            raise InputError(
                f"{len(self.runs())} runs with {sorted(set(self.models) & set(SECOND_OFFSETS))} do not "
                "fit nnU-Net's dataset ids (at most 39 runs)"
            )

    def runs(self) -> list[tuple[str, int]]:
        return [(name, seed) for name in self.scenarios for seed in self.seeds]

    def budget(self, model: str | None = None) -> Budget:
        """The budget of every model, or of ``model`` (its own epochs where ``model_epochs`` has them)."""
        epochs = self.model_epochs.get(model, self.epochs) if model else self.epochs
        return Budget(
            epochs, self.iterations, self.val_iterations, self.no_mirroring, skip_validation=True
        )


def quick_settings(device: str) -> BenchmarkSettings:
    """A smoke run: both scenarios, two seeds, tiny phantoms, one epoch of two iterations per model."""
    return BenchmarkSettings(
        {"scarce": 2, "vast": 3},
        [0, 1],
        6,
        2,
        "tiny",
        0,
        list(DEFAULT_MODELS),
        device,
        1,
        2,
        1,
        True,
        cpu_small("tiny"),
        strong_sites={"scarce": list(SCARCE_STRONG_SITES)},
    )


def cpu_small(preset: str) -> dict:
    """The reduced CPU configuration ``3d_small`` for a phantom preset, JSON-ready."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in CPU_SMALL[preset].items()}


def default_settings(device: str) -> BenchmarkSettings:
    """Paper-like shapes at phantom scale: scarce (4 strong of 24) and vast (12 of 24), three seeds; the
    demo's per-model CPU budget (tiny phantoms, 10 epochs x 100 iterations on the reduced ``3d_small``)."""
    return BenchmarkSettings(
        {"scarce": 4, "vast": 12},
        [0, 1, 2],
        24,
        10,
        CPU_PRESET,
        0,
        list(DEFAULT_MODELS),
        device,
        CPU_EPOCHS,
        CPU_ITERATIONS,
        CPU_VAL_ITERATIONS,
        True,
        strong_sites={"scarce": list(SCARCE_STRONG_SITES)},
    )


POOL_ITEMS = ("dataset/dataset.json", "manifest.json", "test/images", "test/labels")


def run_dir(out: Path, scenario: str, seed: int) -> Path:
    return out / "runs" / f"{scenario}_seed{seed}"


def pool_paths(out: Path) -> dict[str, Path]:
    ph = out / "pool"  # the phantoms', or a link to --pool-from
    return {
        "root": ph,
        "test_images": ph / "test" / "images",
        "test_labels": ph / "test" / "labels",
        "manifest": ph / "manifest.json",
    }


def run_tag(scenario: str, seed: int) -> str:
    """Prefix of a run's nnU-Net dataset names, e.g. ``BScarceS0``."""
    return f"B{scenario.capitalize()}S{seed}"


def run_config(
    settings: BenchmarkSettings, out: Path, index: int, scenario: str, seed: int
) -> PipelineConfig:
    """The pipeline configuration of one run: its dataset ids, names and trainers, one per model key."""
    base, second = FIRST_RUN_ID + 10 * index, SECOND_RUN_ID + 10 * index
    tag = run_tag(scenario, seed)
    dataset_ids = {
        m: (second if DATASETS[MODELS[m].dataset].block else base)
        + DATASETS[MODELS[m].dataset].offset
        for m in MODELS
    }
    dataset_names = {
        m: tag + "".join(w.capitalize() for w in MODELS[m].dataset.split("_")) for m in MODELS
    }
    pool = pool_paths(out)
    small = settings.small
    return PipelineConfig(
        work_dir=run_dir(out, scenario, seed),
        strong=base + DATASET_OFFSETS["strong"],
        weak_dir=run_dir(out, scenario, seed) / "weak",
        dataset_ids=dataset_ids,
        dataset_names=dataset_names,
        test_images=pool["test_images"],
        test_labels=pool["test_labels"],
        manifest=pool["manifest"],
        weak_labels=run_dir(out, scenario, seed) / "weak" / "labels",
        configuration=settings.configuration,
        small=SmallConfig(
            small["name"], tuple(small["patch_size"]), tuple(small["features"]), small["batch_size"]
        )
        if small
        else None,
        folds=tuple(settings.folds),
        device=settings.device,
        trainers={m: MODELS[m].trainer for m in MODELS},
        train=tuple(m for m in settings.models if m in TEST_MODELS),
        budget=settings.budget(),
        seed=seed,
        annotator=settings.annotator,
        box_mode=settings.box_mode,
        tta=not settings.no_mirroring,
        lung_crop=settings.lung_crop,
        model_names=dict(MODEL_NAMES),
        folds_override={"teacher_ens": ensemble_folds(settings, scenario)},
        role_budgets={m: settings.budget(m) for m in settings.model_epochs},
    )


def ensemble_folds(settings: BenchmarkSettings, scenario: str) -> tuple[int, ...]:
    """The teacher ensemble's folds: one per strong case up to five (nnU-Net's folds of the teacher dataset)."""
    return tuple(range(min(5, settings.scenarios[scenario])))


def pool_step(settings: BenchmarkSettings, out: Path) -> Step:
    """Write the phantom pool once: ``pool`` strong-able cases (dataset ``POOL_ID``) and the test set; or link
    the pool of ``--pool-from``."""
    pool = pool_paths(out)
    if settings.pool_from:
        return Step(
            "the pool (from --pool-from)",
            f"ln -s {settings.pool_from} {pool['root']}",
            lambda: link_pool(Path(settings.pool_from), pool["root"], settings.pool),
            lambda: raw_done(POOL_ID),
        )
    argv = [
        "synth",
        "-o",
        pool["root"],
        "-d",
        POOL_ID,
        "--name",
        "BenchPool",
        "--strong",
        settings.pool,
        "--weak",
        0,
        "--test",
        settings.n_test,
        "--seed",
        settings.data_seed,
        "--preset",
        settings.preset,
        *(["--family", settings.family] if settings.family != "standard" else []),
        *(["--tumour-free", settings.tumour_free] if settings.tumour_free is not None else []),
        "--overwrite",
    ]
    phantoms = PhantomSettings(
        pool["root"],
        POOL_ID,
        n_strong=settings.pool,
        n_weak=0,
        n_test=settings.n_test,
        seed=settings.data_seed,
        preset=settings.preset,
        dataset_name="BenchPool",
        overwrite=True,
        family=settings.family,
        tumour_free=settings.tumour_free,
    )
    return api_step(
        "phantom pool and test set",
        argv,
        lambda: ApiCall("phantom.datasets:write_phantom_datasets", (phantoms,), phantoms),
        lambda: raw_done(POOL_ID) and pool["manifest"].is_file(),
        Layout(out).logs / "pool.log",
    )


def link_pool(src: Path, root: Path, n_pool: int) -> None:
    """``root`` -> ``src`` and the pool's raw dataset as dataset ``POOL_ID`` (links: the pool is read, never
    written); refuses a pool whose size is not ``n_pool``."""
    from ..nnunet.plans import nnunet_dir

    src = src.resolve()
    n = int(json.loads((src / "dataset" / "dataset.json").read_text()).get("numTraining", 0))
    if n != n_pool:
        raise InputError(
            f"{src / 'dataset' / 'dataset.json'}: {n} pool case(s), but --pool says {n_pool}"
        )
    raw = nnunet_dir("nnUNet_raw") / f"Dataset{POOL_ID:03d}_BenchPool"
    for link, target in ((root, src), (raw, src / "dataset")):
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and link.resolve() != target:
            link.unlink()
        if not link.exists():
            link.symlink_to(target, target_is_directory=True)


def run_models(settings: BenchmarkSettings) -> set[str]:
    """The models a run trains: the chosen ones, the box teacher when a student needs it, and each model's
    prerequisites."""
    models = set(settings.models) | (
        {"teacher"} if set(settings.models) & {*STUDENTS, "so_nnunet"} else set()
    )
    for m in ("do_r2", "do_relabel", "do_ens"):  # a model's prerequisites, in dependency order
        if m in models:
            models.add(NEEDS[m])
    return models


def scenario_step(
    settings: BenchmarkSettings, cfg: PipelineConfig, layout: Layout, scenario: str
) -> Step:
    """Split the pool: the scenario's strong cases as the run's strong dataset, the rest as its weak set."""
    n_strong, weak = settings.scenarios[scenario], cfg.weak_dir
    strong_sites = settings.strong_sites.get(scenario)
    where = f" from {'/'.join(strong_sites)}" if strong_sites else ""
    name = run_tag(scenario, cfg.seed) + "Strong"
    argv = [
        "make-scenario",
        "--strong",
        POOL_ID,
        "-d",
        cfg.strong,
        "--name",
        name,
        "--strong-count",
        n_strong,
        "-o",
        weak,
        "--seed",
        cfg.seed,
        *(["--annotator", cfg.annotator] if cfg.annotator else []),
        "--manifest",
        cfg.manifest,
        *(["--strong-sites", *strong_sites] if strong_sites else []),
        *(["--box-mode", cfg.box_mode] if cfg.box_mode != "lesion" else []),
        "--overwrite",
        "--quiet",
    ]
    split = ScenarioSettings(
        POOL_ID,
        weak,
        n_strong,
        cfg.strong,
        name,
        seed=cfg.seed,
        annotator=cfg.annotator,
        box_mode=cfg.box_mode,
        manifest=cfg.manifest,
        overwrite=True,
        progress=False,
        strong_sites=tuple(strong_sites) if strong_sites else None,
    )
    return api_step(
        f"scenario {scenario}: {n_strong} strong{where}, the rest weak (seed {cfg.seed})",
        argv,
        lambda: ApiCall("students.scenario:make_scenario", (split,), split),
        lambda: raw_done(cfg.strong) and (weak / "scenario.json").is_file(),
        layout.logs / "scenario.log",
    )


def teacher_steps(cfg: PipelineConfig, layout: Layout, models: set[str]) -> list[Step]:
    """The teachers of the run (box, point, classical rule): dataset, training, pseudo-labels, their scores."""
    teachers = [m for m in ("teacher", "point_teacher", "classical") if m in models]
    if not set(teachers) - {"classical"}:
        return []
    steps = [teacher_dataset_step(cfg, layout), plan_step(cfg, layout, ["teacher"], "teacher")]
    for m in teachers:
        if m == "classical":
            steps.append(classical_pseudo_step(cfg, layout, teacher_pseudo_dir(layout, m)))
        else:
            steps.append(train_step(cfg, layout, m))
            steps.append(pseudo_step(cfg, layout, m, teacher_pseudo_dir(layout, m)))
        steps.append(evaluate_step(cfg, layout, m, teacher_pseudo_dir(layout, m), cfg.weak_labels))
    return steps


def later_steps(cfg: PipelineConfig, layout: Layout, models: set[str]) -> list[Step]:
    """The options beyond the paper, each after the ones before it: adding an option to a finished run
    leaves its steps' fingerprints alone."""
    steps: list[Step] = []
    uncertain = [m for m in UNCERTAIN if m in models]
    if uncertain:
        steps.append(
            pseudo_step(cfg, layout, "teacher", layout.pseudo_probabilities, probabilities=True)
        )
        steps.append(calibrate_step(cfg, layout))
        steps += student_steps(cfg, layout, uncertain, "uncertainty-aware students")
    if "do_relabel" in models:
        out = teacher_pseudo_dir(layout, "do_relabel")
        steps += [
            relabel_step(cfg, layout, "do", 2, out, layout.pseudo),
            evaluate_step(cfg, layout, "do_relabel", out, cfg.weak_labels),
        ]
        if "do_r2" in models:
            steps += student_steps(cfg, layout, ["do_r2"], "round 2 DO student", out)
    if "teacher_ens" in models:
        out = teacher_pseudo_dir(layout, "teacher_ens")
        steps += [
            train_step(cfg, layout, "teacher_ens"),
            pseudo_step(cfg, layout, "teacher_ens", out),
            evaluate_step(cfg, layout, "teacher_ens", out, cfg.weak_labels),
        ]
        if "do_ens" in models:
            steps += student_steps(
                cfg, layout, ["do_ens"], "DO student on the teacher ensemble", out
            )
    return steps


def run_steps_for(settings: BenchmarkSettings, cfg: PipelineConfig, scenario: str) -> list[Step]:
    """The steps of one run: scenario split, teachers, pseudo-labels, datasets, trainings, test predictions
    and evaluations of the chosen models (the box teacher is always trained: the students need it)."""
    layout = Layout(cfg.work_dir)
    models = run_models(settings)
    return [
        scenario_step(settings, cfg, layout, scenario),
        *teacher_steps(cfg, layout, models),
        *student_steps(
            cfg,
            layout,
            [m for m in TEST_MODELS if m in models and m not in LATER],
            "students, baseline, ignore label, upper bound",
        ),
        *later_steps(cfg, layout, models),
    ]


def student_steps(
    cfg: PipelineConfig,
    layout: Layout,
    students: list[str],
    what: str,
    pseudo_dir: Path | None = None,
) -> list[Step]:
    """Datasets, planning, training, test predictions and evaluations of test-set models (``pseudo_dir``: their
    pseudo-labels, default the box teacher's)."""
    steps = []
    dataset_roles = list(dict.fromkeys(MODELS[m].dataset for m in students))
    for role in dataset_roles:
        steps.append(student_dataset_step(cfg, layout, role, STUDENT_DATASETS[role], pseudo_dir))
    if dataset_roles:
        steps.append(plan_step(cfg, layout, dataset_roles, what))
    for m in students:
        steps.append(train_step(cfg, layout, m))
    for m in students:
        steps.append(predict_step(cfg, layout, m))
        steps.append(evaluate_step(cfg, layout, m, layout.predictions(m), cfg.test_labels))
    return steps


def teacher_pseudo_dir(layout: Layout, model: str) -> Path:
    return layout.pseudo if model == "teacher" else layout.work / f"pseudo_labels_{model}"


def _evaluations(out: Path, settings: BenchmarkSettings):
    """(scenario, seed, model, summary.json document) of every finished evaluation."""
    for scenario, seed in settings.runs():
        layout = Layout(run_dir(out, scenario, seed))
        for model in settings.models:
            path = layout.evaluation(model) / "summary.json"
            if path.is_file():
                yield scenario, seed, model, json.loads(path.read_text())


def load_run_results(out: Path, settings: BenchmarkSettings) -> list[dict]:
    """One record per (scenario, seed, model) whose evaluation exists: its means over the tumour cases
    (recomputed from the per-case results, so that evaluations written before the rule follow it too)."""
    from ..evaluation.aggregate import summarize

    records = []
    timings = {}
    for scenario, seed, model, doc in _evaluations(out, settings):
        if (scenario, seed) not in timings:
            path = Layout(run_dir(out, scenario, seed)).timings
            timings[(scenario, seed)] = json.loads(path.read_text()) if path.is_file() else {}
        summary = summarize(doc["cases"]) if doc.get("cases") else doc["summary"]
        overall = summary["overall"]
        rec = {
            "scenario": scenario,
            "n_strong": settings.scenarios[scenario],
            "n_weak": settings.pool - settings.scenarios[scenario],
            "seed": seed,
            "model": model,
            "name": MODEL_NAMES[model],
            "evaluated_on": "weak set" if model in TEACHERS else "test set",
            "n_cases": overall.get("n_cases"),
            "n_tumour_free": summary.get("tumour_free", {}).get("n_cases", 0),
            "tumour_free_with_fp": summary.get("tumour_free", {}).get("n_with_fp", 0),
        }
        for metric in ("dsc", "dsc_tp", "f1", "recall", "precision", "hd95_mm", "nsd"):
            rec[metric] = overall.get(metric, {}).get("mean")
        step = train_step_name(MODEL_NAMES[model], MODELS[model].trainer)
        rec["train_seconds"] = next(
            (
                s.get("seconds")
                for s in timings[(scenario, seed)].get("steps", [])
                if s["name"] == step
            ),
            None,
        )
        records.append(rec)
    return records


def load_case_results(
    out: Path, settings: BenchmarkSettings
) -> dict[tuple[str, int, str], dict[str, dict]]:
    """Per (scenario, seed, model), every scored case's evaluation record (tumour-free cases included)."""
    keep = (
        "dsc",
        "dsc_tp",
        "f1",
        "recall",
        "precision",
        "gt_volume_ml",
        "pred_volume_ml",
        "n_gt_lesions",
    )
    return {
        (scenario, seed, model): {
            c["case"]: {k: c.get(k) for k in keep} for c in doc.get("cases", [])
        }
        for scenario, seed, model, doc in _evaluations(out, settings)
    }


def settings_dict(settings: BenchmarkSettings) -> dict:
    return json.loads(json.dumps(asdict(settings)))


def settings_defaults() -> dict:
    """The settings' plain defaults (what a benchmark folder written before a setting existed ran with)."""
    from dataclasses import MISSING, fields

    return {f.name: f.default for f in fields(BenchmarkSettings) if f.default is not MISSING}
