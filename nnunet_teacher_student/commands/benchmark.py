"""``nnts benchmark``: the teacher-student method against plain nnU-Net on phantoms, scenarios x seeds."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

SETTINGS_FILE = "nnts_benchmark.json"


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
            raise InputError(f"--scenarios takes NAME=STRONG_COUNT[@SITE,...] items (e.g. scarce=4@msd vast=12), "
                             f"got {v!r}")
        counts[name] = int(n)
        if where:
            sites[name] = where.split(",")
    return counts, sites


def settings_from_args(args: argparse.Namespace, device: str):
    """The benchmark's settings: a preset (quick, or the default CPU/GPU budget) with the user's overrides."""
    from ..experiments.benchmark import cpu_small, default_settings, quick_settings
    from ..core.errors import InputError

    s = quick_settings(device) if args.quick else default_settings(device)
    if device != "cpu" and not args.quick:  # a GPU: nnU-Net's own 3d_fullres configuration, longer training
        s.small, s.epochs, s.iterations, s.val_iterations, s.no_mirroring = None, 50, 100, 20, False
        s.preset = "default"
    scenarios = _scenarios(args.scenarios)
    if scenarios is not None:
        s.scenarios, s.strong_sites = scenarios
    for key, value in (("seeds", args.seeds), ("pool", args.pool),
                       ("n_test", args.test), ("preset", args.preset), ("data_seed", args.data_seed),
                       ("jitter", args.jitter), ("models", args.models), ("epochs", args.epochs),
                       ("iterations", args.iterations), ("val_iterations", args.val_iterations)):
        if value is not None:
            setattr(s, key, value)
    if args.preset and s.small is not None and not args.quick:
        s.small = cpu_small(args.preset)
    if (args.patch or args.features) and s.small is None:
        raise InputError("--patch/--features shape the reduced CPU configuration; on a GPU nnU-Net's 3d_fullres runs")
    if args.patch:
        s.small = {**s.small, "patch_size": list(args.patch)}
    if args.features:
        s.small = {**s.small, "features": list(args.features)}
    s.check()
    return s


def run(args: argparse.Namespace) -> int:
    from ..experiments.benchmark import (load_run_results, pool_step, run_config, run_steps_for, run_dir, settings_dict)
    from ..core.errors import InputError
    from ..workflow.outputs import Layout
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
    if not args.report_only:
        prepare_run_folder(out, settings_dict(settings), SETTINGS_FILE, "nnts benchmark", args.overwrite,
                           command="nnts " + shlex.join(sys.argv[1:]))
    elif not (out / SETTINGS_FILE).is_file():
        raise InputError(f"{out}: no benchmark here ({SETTINGS_FILE} missing); run it first")
    else:
        settings = _stored_settings(out)
    exports = use_own_nnunet_folders(out, "nnts benchmark")
    runs = settings.runs()
    print(f"nnts benchmark: {len(runs)} run(s) = scenarios {settings.scenarios} x seeds {settings.seeds}; "
          f"models {', '.join(settings.models)}; {settings.epochs} epoch(s) x {settings.iterations} iterations per "
          f"model on {settings.small['name'] if settings.small else '3d_fullres'}, device {settings.device}",
          flush=True)
    t0 = time.perf_counter()
    if not args.report_only:
        run_steps([pool_step(settings, out)], out / "timings_pool.json")
        only = _only_runs(args.only, runs)
        for k, (scenario, seed) in enumerate(runs):
            if only is not None and (scenario, seed) not in only:
                continue
            print(f"=== run {k + 1}/{len(runs)}: scenario {scenario} ({settings.scenarios[scenario]} strong), "
                  f"seed {seed} ===", flush=True)
            cfg = run_config(settings, out, k, scenario, seed)
            run_steps(run_steps_for(settings, cfg, scenario), Layout(run_dir(out, scenario, seed)).timings)
    records = load_run_results(out, settings)
    report = write_benchmark_report(out, settings, records, time.perf_counter() - t0, exports)
    print(f"nnts benchmark: report: {report}")
    return 0


def _only_runs(items: list[str] | None, runs: list[tuple[str, int]]) -> set[tuple[str, int]] | None:
    """``--only scarce:0 vast:2``: the runs this process works on (None: all). Separate processes may
    work on separate runs of one benchmark folder at the same time (each run has its own datasets)."""
    from ..core.errors import InputError

    if not items:
        return None
    out = set()
    for item in items:
        name, _, seed = item.partition(":")
        if not seed.lstrip("-").isdigit() or (name, int(seed)) not in runs:
            raise InputError(f"--only {item}: not a run of this benchmark (runs: "
                             f"{' '.join(f'{a}:{b}' for a, b in runs)})")
        out.add((name, int(seed)))
    return out


def _stored_settings(out: Path):
    from ..experiments.benchmark import BenchmarkSettings

    return BenchmarkSettings(**json.loads((out / SETTINGS_FILE).read_text())["settings"])


def _command(out: Path) -> str:
    """The command that started the benchmark (from its marker), else a pointer to the settings."""
    doc = json.loads((out / SETTINGS_FILE).read_text()) if (out / SETTINGS_FILE).is_file() else {}
    return doc.get("command") or f"nnts benchmark -o {out} ...   # settings in {out / SETTINGS_FILE}"


def _wall_seconds(out: Path) -> float:
    """Seconds of every finished step of every run (an interrupted and resumed benchmark included)."""
    total = 0.0
    for path in [out / "timings_pool.json", *sorted((out / "runs").glob("*/timings.json"))]:
        if path.is_file():
            total += sum(s.get("seconds") or 0.0 for s in json.loads(path.read_text()).get("steps", []))
    return total


def write_benchmark_report(out: Path, settings, records: list[dict], seconds_now: float, exports: list[str]) -> Path:
    """``OUT/report/``: report.md, results.csv (one row per run and model), summary.json, dsc_vs_strong.png."""
    from ..experiments.benchmark import STUDENTS, TEACHERS, TEST_MODELS
    from ..experiments.benchmark import run_config
    from ..experiments.benchmark import load_case_results
    from ..reporting.benchmark_report import (aggregate, csv_text, failed_teachers, figure_dsc_vs_strong, goal_check,
                                    goal_text, markdown_table, paired_table, per_run_teacher_table, per_seed_table)
    from ..workflow.outputs import model_folder
    from ..teacher.guard import load_guard
    from ..core.files import write_text_atomic

    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    rows = aggregate(records)
    scarce = min(settings.scenarios, key=settings.scenarios.get)
    goal = goal_check(rows, scarce)
    fig = figure_dsc_vs_strong(rows, report / "dsc_vs_strong.png")
    wall = _wall_seconds(out)
    write_text_atomic(csv_text(records), report / "results.csv")
    write_text_atomic(json.dumps({"settings": asdict(settings), "rows": rows, "goal": goal, "records": records,
                                  "wall_seconds_steps": wall}, indent=1, default=str), report / "summary.json")
    s = settings
    lines = [
        "# nnts benchmark: teacher-student vs plain nnU-Net on phantoms", "",
        f"Scenarios (strong cases of a pool of {s.pool}; the rest are weak, boxes: "
        f"{'+/-%d voxel jitter (stress setting)' % s.jitter if s.jitter else 'the default annotator model'}): "
        + ", ".join(f"**{k}** {v} strong / {s.pool - v} weak" for k, v in s.scenarios.items())
        + f". Seeds {s.seeds} (which pool cases are strong, the box noise, and training: `NNTS_SEED`). "
        "Box teachers train on fold `all` and pass the teacher guard (retrained with the next seed if not; "
        "see each run's `nnts_guard.json`); the classical rule needs no training. "
        f"The same {s.n_test} held-out test cases for every model ({s.preset} phantom preset, data seed "
        f"{s.data_seed}). Budget per model: {s.epochs} epoch(s) x {s.iterations} iterations "
        f"({s.val_iterations} validation iterations), configuration "
        f"`{s.small['name'] if s.small else '3d_fullres'}`"
        + (f" (patch {s.small['patch_size']}, features {s.small['features']}, batch {s.small['batch_size']})"
           if s.small else "")
        + f", fold {s.folds}, device {s.device}, {'no ' if s.no_mirroring else ''}mirroring. "
        f"Wall time of all steps: {wall / 60:.1f} min.", "",
        "Cells: mean over seeds of each run's mean over cases, ± the sample std across seeds; DSC also "
        "with the 95 % confidence interval of the mean (t distribution, clipped to [0, 100]). Baseline, ignore label and upper "
        "bound train `nnUNetTrainerNNTS` (nnU-Net's default trainer with our budget variables); the students "
        "train on the box teacher's pseudo-labels.", "",
        "## Goal (scarce scenario)", "", goal_text(goal), "",
        "## Test set: students and nnU-Net", "", markdown_table(rows, TEST_MODELS), "",
        "Per seed (test-set DSC, %):", "", per_seed_table(records, [m for m in TEST_MODELS if m in s.models]), "",
        "## Paired comparisons (per test case, pooled over seeds)", "",
        "ΔDSC in points: the first model minus the second on the same test case of the same run; the CI is the t "
        "interval of the mean over all pairs, p the Wilcoxon signed-rank test over the pairs (the pairs of one "
        "seed share a training, so p is optimistic; the per-seed means show the spread).", "",
        paired_table(load_case_results(out, settings), list(s.scenarios)), "",
        "## Teachers: pseudo-labels of the weak cases vs their true masks (cf. the paper's Tables 2 and 4)", "",
        markdown_table(rows, TEACHERS), "",
    ]
    if any(r["model"] in TEACHERS for r in records):
        guards = {f"{sc}:{sd}": load_guard(model_folder(run_config(settings, out, k, sc, sd), "teacher"))
                  for k, (sc, sd) in enumerate(settings.runs())}
        lines += ["Per run: pseudo-label DSC and lesion recall on the weak cases; the box teacher's guard (DSC on "
                  "its strong cases with fresh boxes, per training seed; retrained below 80 % or with a box left "
                  "empty over a real cross-section of its lesion).", "", per_run_teacher_table(records, guards), ""]
    if fig:
        lines += ["## DSC against the number of strong cases", "", "![DSC vs strong cases](dsc_vs_strong.png)", ""]
    missing = [(r, m) for r in s.runs() for m in s.models
               if not any(x["scenario"] == r[0] and x["seed"] == r[1] and x["model"] == m for x in records)]
    if missing:
        lines += [f"**Incomplete**: {len(missing)} (run, model) result(s) missing, e.g. {missing[:3]}; rerun the "
                  "same command to resume.", ""]
    best = goal.get("best_student") or {}
    failed = failed_teachers(records)
    lines += ["## Reading it", ""]
    if failed:
        lines += [f"**The box teacher failed** in run(s) {', '.join(failed)}: it found no lesion on the weak set, "
                  "so those runs' students learned from empty pseudo-labels and pull the student means down: read "
                  "their figures as the cost of a failed teacher. A fresh output folder trains new teachers.", ""]
    lines += ["Phantom tumours, tiny budgets and few test cases: differences of a few DSC points are within the "
              "seed-to-seed spread shown by the confidence intervals. "
              f"Students compared: {', '.join(m for m in STUDENTS if m in s.models)}"
              + (f"; the best was {best.get('name')}." if best else "."), "",
              "## Reproduce", "", "```", _command(out), *exports, "```", ""]
    write_text_atomic("\n".join(lines), report / "report.md")
    return report / "report.md"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "benchmark", help="the method vs plain nnU-Net on phantoms: scenarios x seeds, with a report",
        description="On phantom data: for each scenario (a number of strong cases out of a pool; the rest weak) "
                    "and seed, train the box and point teachers (and score the classical rule), the SO/DO students (defaults and _Paper), the "
                    "strong-only baseline, nnU-Net's ignore-label answer to boxes and the all-true-masks upper "
                    "bound; evaluate on one shared test set; report mean, std and 95 %% CI across seeds, the goal "
                    "check and a DSC-vs-strong-cases plot in OUT/report/. Reruns resume. The default is hours on "
                    "a CPU (see BENCHMARKS.md for measured times); --quick is a smoke run.")
    p.add_argument("-o", "--output", type=Path, default=Path("nnts_benchmark"), help="output folder")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny phantoms, 2 seeds, 1 epoch per model")
    p.add_argument("--scenarios", nargs="+", metavar="NAME=N",
                   help="scenarios as name=strong count[@sites of the strong cases] (default: scarce=4@msd vast=12; "
                        "the smallest is the goal's)")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default: 0 1 2)")
    p.add_argument("--pool", type=int, help="cases that are strong or weak (default 24)")
    p.add_argument("--test", type=int, help="held-out test cases (default 10)")
    p.add_argument("--preset", choices=("default", "tiny"), help="phantom size preset (CPU default: tiny, with a 16x32x32 patch; default: larger phantoms, "
                        "a 16x48x48 patch, about 3x slower per iteration; GPU default: default)")
    p.add_argument("--data-seed", type=int, help="seed of the phantom pool (default 0)")
    p.add_argument("--jitter", type=int,
                   help="stress setting: absolute box edge jitter in voxels (default 0: the annotator model)")
    p.add_argument("--models", nargs="+", help="subset of: teacher point_teacher classical baseline ignore so do so_paper "
                                               "do_paper upper upper_do (default: all)")
    p.add_argument("--epochs", type=int, help="epochs per model (default 10 on a CPU, 50 on a GPU)")
    p.add_argument("--iterations", type=int, help="iterations per epoch (default 100)")
    p.add_argument("--val-iterations", type=int, help="validation iterations per epoch")
    p.add_argument("--patch", type=int, nargs=3, metavar=("Z", "Y", "X"),
                   help="patch of the reduced CPU configuration 3d_small (default: the preset's)")
    p.add_argument("--features", type=int, nargs="+", help="features per stage of 3d_small (default: the preset's)")
    p.add_argument("-device", "--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from the finished runs")
    p.add_argument("--only", nargs="+", metavar="SCENARIO:SEED",
                   help="work on these runs only (e.g. two processes on two GPUs: --only scarce:0 and "
                        "--only vast:0); the report covers every finished run")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier benchmark in OUT")
    p.set_defaults(func=run)
