"""``nnts benchmark``: the teacher-student method against plain nnU-Net on phantoms, scenarios x seeds."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from . import add_annotator_arguments, add_phantom_run_arguments, check_removed
from ..experiments.benchmark_run import (
    SETTINGS_FILE,
    only_runs,
    stored_settings,
    write_benchmark_report,
)


def _scenarios(values: list[str] | None) -> tuple[dict[str, int], dict[str, list[str]]] | None:
    """``NAME=N`` or ``NAME=N@SITE[,SITE]`` items: strong counts and, where given, the strong cases' sites."""
    from ..core.errors import InputError

    if not values:
        return None
    counts, sites = {}, {}
    for v in values:
        name, _, rest = v.partition("=")
        n, _, where = rest.partition("@")
        if not n.isdigit() or (rest.count("@") and not where):
            raise InputError(
                f"--scenarios takes NAME=STRONG_COUNT[@SITE,...] items (e.g. scarce=4@msd vast=12), "
                f"got {v!r}"
            )
        counts[name] = int(n)
        if where:
            sites[name] = where.split(",")
    return counts, sites


def _epochs_for(items: list[str]) -> dict[str, int]:
    """``--epochs-for upper=30 baseline=20``: per-model epochs."""
    from ..core.errors import InputError

    out = {}
    for item in items:
        name, _, n = item.partition("=")
        if not n.isdigit():
            raise InputError(f"--epochs-for takes MODEL=EPOCHS items (e.g. upper=30), got {item!r}")
        out[name] = int(n)
    return out


def settings_from_args(args: argparse.Namespace, device: str):
    """The benchmark's settings: a preset (quick, or the default CPU/GPU budget) with the user's overrides."""
    check_removed(args)
    from ..experiments.benchmark import cpu_small, default_settings, quick_settings
    from ..core.errors import InputError

    s = quick_settings(device) if args.quick else default_settings(device)
    if (
        device != "cpu" and not args.quick
    ):  # a GPU: nnU-Net's own 3d_fullres configuration, longer training
        s.small, s.epochs, s.iterations, s.val_iterations, s.no_mirroring = None, 50, 100, 20, False
        s.preset = "default"
    scenarios = _scenarios(args.scenarios)
    if scenarios is not None:
        s.scenarios, s.strong_sites = scenarios
    for key, value in (
        ("seeds", args.seeds),
        ("pool", args.pool),
        ("n_test", args.test),
        ("preset", args.preset),
        ("data_seed", args.data_seed),
        ("annotator", args.annotator),
        ("box_mode", args.box_mode),
        ("models", args.models),
        ("epochs", args.epochs),
        ("family", args.family),
        ("tumour_free", args.tumour_free),
        ("folds", args.folds),
        ("iterations", args.iterations),
        ("val_iterations", args.val_iterations),
    ):
        if value is not None:
            setattr(s, key, value)
    if args.pool_from is not None:
        s.pool_from = str(Path(args.pool_from).resolve())
    if args.no_lung_crop:
        s.lung_crop = False
    if args.configuration:
        s.configuration, s.small = (
            args.configuration,
            None,
        )  # nnU-Net's own configuration as planned
    if args.epochs_for:
        s.model_epochs = _epochs_for(args.epochs_for)
    if args.preset and s.small is not None and not args.quick:
        s.small = cpu_small(args.preset)
    if (args.patch or args.features) and s.small is None:
        raise InputError(
            "--patch/--features shape the reduced CPU configuration; on a GPU nnU-Net's 3d_fullres runs"
        )
    if args.patch:
        s.small = {**s.small, "patch_size": list(args.patch)}
    if args.features:
        s.small = {**s.small, "features": list(args.features)}
    s.check()
    return s


def run(args: argparse.Namespace) -> int:
    from ..experiments.benchmark import (
        load_run_results,
        pool_step,
        run_config,
        run_steps_for,
        run_dir,
        settings_dict,
        settings_defaults,
    )
    from ..core.errors import InputError
    from ..workflow.layout import Layout
    from ..core.devices import resolve_device
    from ..workflow.processes import calm_openmp, stop_children_on_sigterm
    from ..workflow.steps import run_steps
    from ..nnunet.workspace import prepare_run_folder, use_own_nnunet_folders

    if any(v is not None and v < 1 for v in (args.epochs, args.iterations, args.val_iterations)):
        raise InputError("--epochs, --iterations and --val-iterations must be >= 1")
    calm_openmp()
    stop_children_on_sigterm()
    out = Path(args.output).resolve()
    settings = settings_from_args(args, resolve_device(args.device))
    if (out / SETTINGS_FILE).is_file() and not args.overwrite:
        stored_settings(out)  # refuses a folder made with a removed setting (jitter)
    if not args.report_only:
        prepare_run_folder(
            out,
            settings_dict(settings),
            SETTINGS_FILE,
            "nnts benchmark",
            args.overwrite,
            command="nnts " + shlex.join(sys.argv[1:]),
            defaults=settings_defaults(),
        )
    elif not (out / SETTINGS_FILE).is_file():
        raise InputError(f"{out}: no benchmark here ({SETTINGS_FILE} missing); run it first")
    else:
        settings = stored_settings(out)
    exports = use_own_nnunet_folders(out, "nnts benchmark")
    runs = settings.runs()
    print(
        f"nnts benchmark: {len(runs)} run(s) = scenarios {settings.scenarios} x seeds {settings.seeds}; "
        f"models {', '.join(settings.models)}; {settings.epochs} epoch(s) x {settings.iterations} iterations per "
        f"model on {settings.small['name'] if settings.small else settings.configuration}, device {settings.device}",
        flush=True,
    )
    t0 = time.perf_counter()
    if not args.report_only:
        run_steps([pool_step(settings, out)], out / "timings_pool.json")
        only = only_runs(args.only, runs)
        for k, (scenario, seed) in enumerate(runs):
            if only is not None and (scenario, seed) not in only:
                continue
            print(
                f"=== run {k + 1}/{len(runs)}: scenario {scenario} ({settings.scenarios[scenario]} strong), "
                f"seed {seed} ===",
                flush=True,
            )
            cfg = run_config(settings, out, k, scenario, seed)
            run_steps(
                run_steps_for(settings, cfg, scenario), Layout(run_dir(out, scenario, seed)).timings
            )
    records = load_run_results(out, settings)
    report = write_benchmark_report(out, settings, records, time.perf_counter() - t0, exports)
    print(f"nnts benchmark: report: {report}")
    return 0


def _add_scenario_arguments(p: argparse.ArgumentParser) -> None:
    """The scenarios and seeds, the phantom pool and test set, and the weak labels."""
    p.add_argument(
        "--scenarios",
        nargs="+",
        metavar="NAME=N",
        help="scenarios as name=strong count[@sites of the strong cases] (default: scarce=4@msd vast=12; "
        "the smallest is the goal's)",
    )
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default: 0 1 2)")
    p.add_argument("--pool", type=int, help="cases that are strong or weak (default 24)")
    p.add_argument("--test", type=int, help="held-out test cases (default 10)")
    add_phantom_run_arguments(p)
    p.add_argument("--data-seed", type=int, help="seed of the phantom pool (default 0)")
    add_annotator_arguments(
        p,
        "the weak and teacher boxes' noise model (default: the annotator model; 'exact'; "
        "'voxels=N': the absolute +/-N-voxel stress setting)",
        metavar=None,
    )
    p.add_argument(
        "--box-mode",
        choices=("lesion", "lesion3d"),
        default=None,
        help="weak labels: lesion (axial 2-D boxes, default) or lesion3d (one 3-D box per lesion, for "
        "the weak cases and the teacher's boxes)",
    )


def _add_models_arguments(p: argparse.ArgumentParser) -> None:
    """The models trained and their epochs and folds."""
    p.add_argument(
        "--models",
        nargs="+",
        help="subset of: teacher point_teacher classical baseline ignore so do so_paper "
        "do_paper upper upper_do so_unc do_unc (default: all)",
    )
    p.add_argument("--epochs", type=int, help="epochs per model (default 10 on a CPU, 50 on a GPU)")
    p.add_argument(
        "--epochs-for",
        nargs="+",
        metavar="MODEL=N",
        help="a model's own epochs, e.g. upper=30 upper_do=30 (ceilings trained to convergence) or a "
        "baseline budget chosen on a tuning pool",
    )
    p.add_argument(
        "--folds", nargs="+", help="folds of the test-set models (default: all = every strong case)"
    )


def _add_pool_arguments(p: argparse.ArgumentParser) -> None:
    """The kind of phantoms, or a pool of one's own."""
    p.add_argument(
        "--family",
        choices=("standard", "copd"),
        default=None,
        help="phantom family (default standard; copd: emphysema, consolidation, pleural tumours)",
    )
    p.add_argument(
        "--tumour-free",
        type=float,
        default=None,
        metavar="SHARE",
        help="this share of the pool and of the test set is tumour-free (default: test cases drawn)",
    )
    p.add_argument(
        "--pool-from",
        metavar="DIR",
        help="a pool of your own (real data) instead of phantoms: DIR/dataset (an nnU-Net raw dataset of "
        "the strong-able cases), DIR/manifest.json (case -> patient), DIR/test/images and "
        "DIR/test/labels; --pool and --test give their sizes",
    )


def _add_network_arguments(p: argparse.ArgumentParser) -> None:
    """nnU-Net's configuration, the training iterations and the reduced CPU network."""
    p.add_argument(
        "--configuration",
        choices=("2d", "3d_fullres", "3d_lowres"),
        help="train nnU-Net's own configuration, as it plans it, instead of the reduced CPU 3d_small "
        "(e.g. 2d for 2-D data)",
    )
    p.add_argument(
        "--no-lung-crop",
        action="store_true",
        help="predict the test cases whole (for images not in Hounsfield units, e.g. pre-scaled patches)",
    )
    p.add_argument("--iterations", type=int, help="iterations per epoch (default 100)")
    p.add_argument("--val-iterations", type=int, help="validation iterations per epoch")
    p.add_argument(
        "--patch",
        type=int,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help="patch of the reduced CPU configuration 3d_small (default: the preset's)",
    )
    p.add_argument(
        "--features",
        type=int,
        nargs="+",
        help="features per stage of 3d_small (default: the preset's)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "benchmark",
        help="the method vs plain nnU-Net on phantoms: scenarios x seeds, with a report",
        description="On phantom data: for each scenario (a number of strong cases out of a pool; the rest weak) "
        "and seed, train the box and point teachers (and score the classical rule), the SO/DO students (defaults and _Paper), the "
        "strong-only baseline, nnU-Net's ignore-label answer to boxes and the all-true-masks upper "
        "bound; evaluate on one shared test set; report case-level means over the tumour cases (seeds averaged "
        "per case, bootstrap 95 %% CI over cases, paired Wilcoxon tests over cases), tumour-free cases "
        "apart (false positives), the goal "
        "check and a DSC-vs-strong-cases plot in OUT/report/. Reruns resume. The default is hours on "
        "a CPU (see BENCHMARKS.md for measured times); --quick is a smoke run.",
    )
    p.add_argument(
        "-o", "--output", type=Path, default=Path("nnts_benchmark"), help="output folder"
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run: tiny phantoms, 2 seeds, 1 epoch per model"
    )
    _add_scenario_arguments(p)
    _add_models_arguments(p)
    _add_pool_arguments(p)
    _add_network_arguments(p)
    p.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the finished runs"
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="SCENARIO:SEED",
        help="work on these runs only (e.g. two processes on two GPUs: --only scarce:0 and "
        "--only vast:0); the report covers every finished run",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier benchmark in OUT")
    p.set_defaults(func=run)
