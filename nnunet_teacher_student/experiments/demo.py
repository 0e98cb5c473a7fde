"""``nnts demo``: the whole teacher-student method on synthetic phantoms, in one command.

Generates the scarce scenario (few strong cases from one site, more weak cases with boxes only and a
held-out test set from all three sites), then runs the same steps as ``nnts pipeline``: teacher dataset,
plan, box teacher, pseudo-labels with QC, SO/DO students, the control (plain nnU-Net on the SO student's
dataset) and the strong-only baseline, test predictions, evaluation, and a report folder. Everything lives under the output folder (its own nnU-Net folders), and reruns resume."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..reporting.settings import ReportSettings
from .presets import CPU_EPOCHS, CPU_ITERATIONS, CPU_PRESET, CPU_SMALL, CPU_VAL_ITERATIONS


DEFAULT_MINUTES = 20.0  # the wall time the CPU/GPU defaults are sized for


OVERHEAD_MINUTES = 4.0  # time of everything but the training epochs (planning, inference, ...)


DATASET_IDS = {"strong": 900, "teacher": 901, "so": 902, "do": 903, "baseline": 904}


#: the student-side models the demo trains: the students, the control (plain nnU-Net on the SO student's
#: dataset: same trainer as the baseline, more (pseudo-labelled) data) and the baseline
TRAIN = ("so", "do", "so_nnunet", "baseline")


STRONG_NAME = "PhantomLung"


SETTINGS_FILE = "nnts_demo.json"


@dataclass(frozen=True)
class DemoRequest:
    """What ``nnts demo`` is asked for: the output folder and the overrides of its mode's settings."""

    output: Path = Path("nnts_demo")
    quick: bool = False  # a smoke run: checks every step, measures nothing
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0  # phantom and split seed
    epochs: int | None = None  # None: the mode's
    iterations: int | None = None  # None: the mode's
    minutes: float | None = None  # the wall time to size the epochs for
    preset: str | None = None  # phantom size preset; None: the mode's
    overwrite: bool = False  # replace an earlier demo run in ``output``


@dataclass(frozen=True)
class DemoSettings:
    """What a demo run does; two runs with equal settings may share (resume) an output folder."""

    mode: str  # quick | default | gpu
    preset: str
    n_strong: int
    n_weak: int
    n_test: int
    seed: int
    device: str
    configuration: str
    small: dict | None
    epochs: int
    iterations: int
    val_iterations: int
    no_mirroring: bool
    sites: str = (
        "scarce"  # strong cases from one site (MSD-like), weak and test cases from all three
    )


def epochs_for_minutes(default_epochs: int, minutes: float) -> int:
    """Epochs for a wall time: the training share of the default run scaled to ``minutes`` (an estimate)."""
    share = (minutes - OVERHEAD_MINUTES) / (DEFAULT_MINUTES - OVERHEAD_MINUTES)
    return max(1, int(default_epochs * share))


def demo_settings(
    quick: bool,
    device: str,
    seed: int,
    epochs: int | None,
    iterations: int | None,
    minutes: float | None = None,
    preset: str | None = None,
) -> DemoSettings:
    """The budgets: ``quick`` a smoke run; CPU default sized for ``DEFAULT_MINUTES`` on 2 cores (reduced
    ``3d_small`` configuration); GPU default nnU-Net's ``3d_fullres`` with more epochs."""
    if quick:
        s = DemoSettings(
            "quick",
            "tiny",
            6,
            6,
            2,
            seed,
            device,
            "3d_fullres",
            dict(CPU_SMALL["tiny"]),
            epochs=1,
            iterations=2,
            val_iterations=1,
            no_mirroring=True,
        )
    elif device == "cpu":  # tiny phantoms and the CPU budget of presets.py (why: BENCHMARKS.md)
        s = DemoSettings(
            "default",
            CPU_PRESET,
            4,
            32,
            10,
            seed,
            device,
            "3d_fullres",
            dict(CPU_SMALL[CPU_PRESET]),
            epochs=CPU_EPOCHS,
            iterations=CPU_ITERATIONS,
            val_iterations=CPU_VAL_ITERATIONS,
            no_mirroring=True,
        )
    else:
        s = DemoSettings(
            "gpu",
            "default",
            4,
            32,
            10,
            seed,
            device,
            "3d_fullres",
            None,
            epochs=50,
            iterations=100,
            val_iterations=20,
            no_mirroring=False,
        )
    if preset is not None and not quick:
        s = replace(
            s, preset=preset, small=dict(CPU_SMALL[preset]) if s.small is not None else None
        )
    if minutes is not None and not quick:
        s = replace(s, epochs=epochs_for_minutes(s.epochs, minutes))
    if epochs is not None:
        s = replace(s, epochs=epochs)
    if iterations is not None:
        s = replace(s, iterations=iterations)
    return s


def _pipeline_config(settings: DemoSettings, out: Path):
    from ..workflow.config import Budget, PipelineConfig, SmallConfig

    ph = out / "phantom"
    small = (
        SmallConfig(
            **{
                **settings.small,
                "patch_size": tuple(settings.small["patch_size"]),
                "features": tuple(settings.small["features"]),
            }
        )
        if settings.small
        else None
    )
    return PipelineConfig(
        work_dir=out,
        strong=DATASET_IDS["strong"],
        weak_dir=ph / "weak",
        dataset_ids={
            **{k: v for k, v in DATASET_IDS.items() if k != "strong"},
            "so_nnunet": DATASET_IDS["so"],
        },
        dataset_names={
            "teacher": "PhantomTeacher",
            "so": "PhantomStudentSO",
            "do": "PhantomStudentDO",
            "baseline": "PhantomBaseline",
            "so_nnunet": "PhantomStudentSO",
        },
        train=TRAIN,
        test_images=ph / "test" / "images",
        test_labels=ph / "test" / "labels",
        manifest=ph / "manifest.json",
        weak_labels=ph / "weak" / "labels",
        configuration=settings.configuration,
        small=small,
        folds=("all",),
        device=settings.device,
        budget=Budget(
            settings.epochs,
            settings.iterations,
            settings.val_iterations,
            settings.no_mirroring,
            skip_validation=True,
        ),
        seed=settings.seed,
        tta=not settings.no_mirroring,
        lung_crop=True,
        guard_attempts=2 if settings.mode == "quick" else 3,
    )


def run_demo(request: DemoRequest) -> int:
    """Run (or resume) the demo into ``request.output``; returns the exit code."""
    from ..core.devices import resolve_device
    from ..nnunet.workspace import prepare_run_folder, use_own_nnunet_folders
    from ..workflow.method import method_steps
    from ..workflow.layout import Layout
    from ..workflow.processes import calm_openmp, stop_children_on_sigterm
    from ..workflow.steps import run_steps

    check_request(request)
    calm_openmp()
    stop_children_on_sigterm()
    out = Path(request.output).resolve()
    settings = demo_settings(
        request.quick,
        resolve_device(request.device),
        request.seed,
        request.epochs,
        request.iterations,
        request.minutes,
        request.preset,
    )
    prepare_run_folder(out, asdict(settings), SETTINGS_FILE, "nnts demo", request.overwrite)
    exports = use_own_nnunet_folders(out, "nnts demo")
    announce(settings, exports)
    cfg = _pipeline_config(settings, out)
    layout = Layout(out)
    steps = [synth_step(settings, out, layout), *method_steps(cfg, layout)]
    t0 = time.perf_counter()
    timings = run_steps(steps, layout.timings)
    report = write_demo_report(cfg, layout, settings, timings, [s.command for s in steps], exports)
    wall = time.perf_counter() - t0
    print(f"nnts demo: done in {wall / 60:.1f} min; report: {report}")
    print(f"nnts demo: open {report} (figures beside it); nnU-Net folders under {out}")
    return 0


def check_request(request: DemoRequest) -> None:
    """Refuse epochs or iterations below 1, and ``--minutes`` with ``--quick`` or ``--epochs``."""
    from ..core.errors import InputError

    epochs, iterations, minutes = request.epochs, request.iterations, request.minutes
    if epochs is not None and epochs < 1 or iterations is not None and iterations < 1:
        raise InputError("--epochs and --iterations must be >= 1")
    if minutes is not None and (minutes <= 0 or request.quick or epochs is not None):
        raise InputError("--minutes takes minutes > 0 and goes without --quick and --epochs")


def announce(settings: DemoSettings, exports: list[str]) -> None:
    """Print the run's nnU-Net folders and what it trains, on which data."""
    print("nnts demo: nnU-Net folders of this run (to continue with nnU-Net's commands):")
    print("\n".join(f"  {line}" for line in exports), flush=True)
    print(
        f"nnts demo: mode {settings.mode}, device {settings.device}, configuration "
        f"{settings.small['name'] if settings.small else settings.configuration}, "
        f"{settings.epochs} epoch(s) x {settings.iterations} iterations per model; "
        f"phantoms: {settings.n_strong} strong, {settings.n_weak} weak, {settings.n_test} test "
        f"({settings.preset} preset)",
        flush=True,
    )


def synth_step(settings: DemoSettings, out: Path, layout):
    """The first step: the phantoms of the scarce scenario, the strong ones as an nnU-Net raw dataset."""
    from ..phantom.settings import PhantomSettings
    from ..workflow.layout import raw_done
    from ..workflow.steps import ApiCall, api_step

    ph = out / "phantom"
    phantoms = PhantomSettings(
        ph,
        DATASET_IDS["strong"],
        n_strong=settings.n_strong,
        n_weak=settings.n_weak,
        n_test=settings.n_test,
        seed=settings.seed,
        preset=settings.preset,
        raw_dir=out / "nnUNet_raw",
        dataset_name=STRONG_NAME,
        overwrite=True,
        sites=settings.sites,
    )

    return api_step(
        "generate phantoms (scarce scenario)",
        [
            "synth",
            "-o",
            ph,
            "-d",
            DATASET_IDS["strong"],
            "--name",
            STRONG_NAME,
            "--strong",
            settings.n_strong,
            "--weak",
            settings.n_weak,
            "--test",
            settings.n_test,
            "--seed",
            settings.seed,
            "--preset",
            settings.preset,
            "--sites",
            settings.sites,
            "--raw",
            out / "nnUNet_raw",
            "--overwrite",
        ],
        lambda: ApiCall("phantom.datasets:write_phantom_datasets", (phantoms,), phantoms),
        lambda: (ph / "manifest.json").is_file() and raw_done(DATASET_IDS["strong"]),
        layout.logs / "synth.log",
    )


def demo_report_settings(
    settings: DemoSettings, cfg, commands: list[str], exports: list[str]
) -> ReportSettings:
    """The demo report's title, introduction, settings table and commands."""
    intro = (
        f"`nnts demo{' --quick' if settings.mode == 'quick' else ''}`: the box teacher -> pseudo-label -> "
        f"student method on synthetic lung CT phantoms ({settings.preset} preset, seed {settings.seed}): "
        f"{settings.n_strong} strong cases (tumour masks; sites: {settings.sites}), {settings.n_weak} weak cases "
        f"(axial boxes only), {settings.n_test} held-out test cases. Device {settings.device}, nnU-Net configuration "
        f"`{cfg.train_configuration}`, {settings.epochs} epoch(s) x {settings.iterations} iterations per model, "
        "fold `all` (every model trains on all its cases, the baseline on every strong case as the teacher). "
        "The baseline is plain nnU-Net (`nnUNetTrainerNNTS`) on the strong cases only, with the same "
        "budget; the students train on the strong cases plus the teacher's pseudo-labels of the weak cases, and "
        "the control trains the baseline's trainer on the SO student's dataset (same trainer, more data: the "
        "pseudo-labels' effect on its own)."
    )
    return ReportSettings(
        title="nnts demo: teacher-student lung tumour segmentation on phantoms",
        intro=intro,
        run_settings={"demo": json.loads(json.dumps(asdict(settings))), "pipeline": cfg.summary()},
        commands=tuple(commands),
        continue_lines=tuple(exports),
        quick=settings.mode == "quick",
    )


def write_demo_report(
    cfg,
    layout,
    settings: DemoSettings,
    timings: list[dict],
    commands: list[str],
    exports: list[str],
) -> Path:
    """``<out>/report/report.md`` of the demo run, with its figures."""
    from ..reporting.run_report import write_run_report

    print("[report] tables and figures", flush=True)
    return write_run_report(
        cfg, layout, demo_report_settings(settings, cfg, commands, exports), timings
    )
