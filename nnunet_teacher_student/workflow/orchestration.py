"""The teacher-student method as a list of resumable steps, shared by ``nnts demo`` and ``nnts pipeline``.

A :class:`Step` has a name, the equivalent shell command (printed, so users can run it by hand), a
``done()`` check on its outputs and a ``run()``. :func:`run_steps` prints ``[stage k/n] name`` and the
command, skips finished steps (so an interrupted run resumes), times the others and keeps the timings
in ``timings.json``. nnU-Net's own commands run as subprocesses whose progress lines (epochs, losses,
pseudo Dice) are streamed; their full output goes to ``logs/``.

:func:`method_steps` builds the method from a :class:`PipelineConfig`: teacher dataset -> plan ->
train the box teacher -> pseudo-label the weak set (QC) -> SO/DO student and strong-only baseline
datasets -> plan -> train -> predict the test set -> evaluate.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..core.files import file_sha256
from ..core.errors import InputError
from ..core.files import write_text_atomic
from ..nnunet.plans import dataset_folder_name, ext_trainer_dir

ROLES = ("teacher", "so", "do", "baseline")
STUDENT_ROLES = ("so", "do", "so_nnunet", "baseline")
DEFAULT_TRAINERS = {"teacher": "nnUNetTrainerBoxTeacher", "so": "nnUNetTrainerSOStudent",
                    "do": "nnUNetTrainerDOStudent", "baseline": "nnUNetTrainerNNTS", "so_nnunet": "nnUNetTrainerNNTS"}
#: models that train on another model's dataset (the rest train on their own role's dataset)
DATASET_OF = {"so_nnunet": "so", "so_paper": "so", "do_paper": "do"}
MODEL_NAMES = {"so": "SO student", "do": "DO student", "baseline": "Baseline (strong only)",
               "teacher": "Box teacher (pseudo-labels)", "classical": "Classical rule (box ∧ HU ∧ lung)",
               # the benchmark's other models (nnts benchmark)
               "point_teacher": "Point teacher (pseudo-labels)", "so_paper": "SO student (_Paper)",
               "do_paper": "DO student (_Paper)",
               "so_nnunet": "nnU-Net on strong + pseudo (control)", "ignore": "nnU-Net ignore label (boxes, no teacher)",
               "upper": "Upper bound (true masks for all)",
               "upper_do": "DO upper bound (true masks for all, DO trainer)"}
BASE_CONFIGURATION = "3d_fullres"
PLANS = "nnUNetPlans"
# nnU-Net output lines worth showing live (the rest goes to the log file)
PROGRESS_LINE = re.compile(r"Epoch \d+|train_loss|val_loss|Pseudo dice|Epoch time|Yayy|best ema|"
                           r"Fingerprint extraction|Experiment planning|Preprocessing dataset|Configuration: |"
                           r"predicting |Validation complete|Mean Validation Dice|Traceback|Error|error:",
                           re.IGNORECASE)


# --------------------------------------------------------------------------- steps
@dataclass
class Step:
    """One stage: ``command`` is the equivalent shell command shown to the user. ``inputs`` are the files and
    folders it reads from outside the pipeline (the user's data); ``clear`` removes its outputs so that a
    stale or forced step is made anew."""

    name: str
    command: str
    run: Callable[[], Any]
    done: Callable[[], bool] = lambda: False
    inputs: Callable[[], Sequence[Path]] = lambda: ()
    clear: Callable[[], None] = lambda: None


def files_stamp(paths: Sequence[Path | None]) -> list:
    """(path, size, mtime) of every file under ``paths``: what a step's outputs were made from."""
    out = []
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        out += [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
        if not files:
            out.append([str(path), None, None])
    return out


def step_fingerprint(step: Step, previous: str) -> str:
    """A hash of the step's command (its settings), its inputs' files and the previous step's fingerprint: a
    step's outputs are current only while it equals the one recorded when they were made. Computed when the
    step's turn comes (earlier steps may make its inputs)."""
    import hashlib

    return hashlib.sha256(json.dumps([step.command, files_stamp(list(step.inputs())), previous]).encode()).hexdigest()


def _state(step: Step, fingerprint: str, record: Mapping) -> str:
    if not step.done():
        return "to do"
    made = record.get("fingerprint")
    return "done" if made in (None, fingerprint) else "stale"   # None: made before fingerprints were kept


def remove_paths(*paths: Path | None) -> None:
    """Remove files or folders (for a step's ``clear``)."""
    for p in paths:
        if p is None or not (p.exists() or p.is_symlink()):
            continue
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children, nnU-Net's workers included:
    unlike wall time, it does not grow when other jobs share the machine."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def step_states(steps: Sequence[Step], timings_file: Path | None) -> list[str]:
    """Per step: ``done``, ``stale`` (outputs there, made from other inputs or settings) or ``to do``."""
    old = {r["name"]: r for r in load_json(timings_file).get("steps", [])} if timings_file else {}
    states, previous = [], ""
    for step in steps:
        previous = step_fingerprint(step, previous)
        states.append(_state(step, previous, old.get(step.name, {})))
    return states


def run_steps(steps: Sequence[Step], timings_file: Path | None = None, out=None,
              force: Sequence[int] = ()) -> list[dict]:
    """Run the unfinished steps in order; returns ``[{name, command, status, seconds, fingerprint}]``.

    ``timings_file`` keeps the seconds and fingerprints of steps finished by an earlier (interrupted) run. A
    step whose outputs are there but stale (see :func:`step_fingerprints`), or whose index (0-based) is in
    ``force``, is cleared and run again. A step whose ``done()`` is still false after ``run()`` is an error:
    its outputs are incomplete."""
    out = out or sys.stdout
    old = {r["name"]: r for r in load_json(timings_file).get("steps", [])} if timings_file else {}
    records: list[dict] = []
    fp = ""
    n = len(steps)

    def save() -> None:
        if timings_file:
            rest = [{"name": s.name, "command": s.command, "status": "pending", "seconds": None}
                    for s in steps[len(records):]]
            write_text_atomic(json.dumps({"steps": records + rest}, indent=1), timings_file)

    for k, step in enumerate(steps, 1):
        fp = step_fingerprint(step, fp)
        state = _state(step, fp, old.get(step.name, {}))
        if state == "done" and k - 1 not in force:
            prev = old.get(step.name, {})
            print(f"[stage {k}/{n}] {step.name}: done already, skipped", file=out, flush=True)
            print(f"  $ {step.command}", file=out, flush=True)
            records.append({"name": step.name, "command": step.command, "status": "done in an earlier run",
                            "seconds": prev.get("seconds"), "cpu_seconds": prev.get("cpu_seconds"),
                            "fingerprint": fp})
            save()
            continue
        why = ("forced" if k - 1 in force else
               "outputs made from other inputs or settings" if state == "stale" else "")
        print(f"[stage {k}/{n}] {step.name}" + (f" (redone: {why})" if why else ""), file=out, flush=True)
        print(f"  $ {step.command}", file=out, flush=True)
        if why:
            step.clear()
        t0, c0 = time.perf_counter(), cpu_seconds()
        step.run()
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        if not step.done():
            raise InputError(f"step '{step.name}' finished but its outputs are incomplete (command: {step.command})")
        print(f"  ... {step.name}: {seconds:.1f} s (CPU {cpu:.1f} s)", file=out, flush=True)
        records.append({"name": step.name, "command": step.command, "status": "ran", "seconds": seconds,
                        "cpu_seconds": cpu, "fingerprint": fp})
        save()
    return records


def run_command(args: Sequence[str], env: Mapping[str, str], log_file: Path | None = None,
                show: re.Pattern | None = PROGRESS_LINE, out=None) -> None:
    """Run a command, streaming the lines matching ``show`` (indented) and logging all output.
    A non-zero exit raises :class:`InputError` with the last lines and the log's path; Ctrl-C stops
    the child too."""
    out = out or sys.stdout
    tail: deque[str] = deque(maxlen=30)
    log = None
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_file, "a", buffering=1)  # line-buffered: a killed run keeps its log
        log.write(f"\n$ {shlex.join(args)}\n")
    try:
        # own process group: stopping the step also stops the workers nnU-Net spawns
        proc = subprocess.Popen(list(args), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, start_new_session=True)
    except FileNotFoundError as e:
        raise InputError(f"{args[0]}: command not found (is nnU-Net installed in this environment?)") from e
    try:
        for line in proc.stdout:
            line = line.rstrip()
            if not line:
                continue
            tail.append(line)
            if log:
                log.write(line + "\n")
            if show is not None and show.search(line):
                print(f"    {line.strip()}", file=out, flush=True)
        rc = proc.wait()
    except BaseException:
        _stop_group(proc)
        raise
    finally:
        if log:
            log.close()
    if rc != 0:
        where = f"; full log: {log_file}" if log_file else ""
        raise InputError(f"`{shlex.join(args)}` failed with exit code {rc}{where}; last output:\n" + "\n".join(tail))


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the child's process group, SIGKILL after 10 s."""
    import signal

    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            os.killpg(proc.pid, signal.SIGKILL)  # leftover workers of a finished child
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


def calm_openmp() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless set: OpenMP threads sleep instead of spinning while they wait.
    nnU-Net sets torch to one thread per core on a CPU; on a machine shared with other jobs, spinning
    threads made training epochs 6-10x slower in our measurements (2 cores, load ~4); idle, it costs little.
    Must run before torch is imported (it reads the variable once)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def stop_children_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so :func:`run_command` stops its child before exiting."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def nnunet_command(name: str) -> str:
    """An nnU-Net console script of this Python environment (else found on PATH)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


# --------------------------------------------------------------------------- configuration
@dataclass
class Budget:
    """Training budget, passed to our trainers as ``NNTS_*`` variables (None: nnU-Net's default)."""

    epochs: int | None = None
    iterations: int | None = None
    val_iterations: int | None = None
    no_mirroring: bool = False
    skip_validation: bool = False   # skip nnU-Net's final validation (the test set is scored instead)

    def env(self) -> dict[str, str]:
        out = {}
        for key, value in (("NNTS_EPOCHS", self.epochs), ("NNTS_ITERATIONS", self.iterations),
                           ("NNTS_VAL_ITERATIONS", self.val_iterations)):
            if value is not None:
                out[key] = str(int(value))
        if self.no_mirroring:
            out["NNTS_NO_MIRRORING"] = "1"
        if self.skip_validation:
            out["NNTS_SKIP_VALIDATION"] = "1"
        return out

    def shell(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.env().items())


@dataclass
class SmallConfig:
    """A reduced nnU-Net configuration added to every dataset's plans (see ``plans.add_small_configuration``)."""

    name: str = "3d_small"
    patch_size: tuple[int, int, int] = (16, 32, 32)
    features: tuple[int, ...] = (8, 16, 32)
    batch_size: int = 2


#: the reduced CPU configuration per phantom preset (tiny phantoms are 32-48 voxels in-plane)
CPU_SMALL = {"default": {"name": "3d_small", "patch_size": (16, 48, 48), "features": (8, 16, 32, 64), "batch_size": 2},
             "tiny": {"name": "3d_small", "patch_size": (16, 32, 32), "features": (8, 16, 32), "batch_size": 2}}
#: the CPU budget per model of the demo and the benchmark: on tiny phantoms 1000 iterations let every model
#: learn (demo, BENCHMARKS.md); 300 iterations on the default preset did not
CPU_PRESET, CPU_EPOCHS, CPU_ITERATIONS, CPU_VAL_ITERATIONS = "tiny", 10, 100, 3


@dataclass
class PipelineConfig:
    """Everything the method's steps need. Paths are absolute after :func:`load_config`."""

    work_dir: Path
    strong: int
    weak_dir: Path
    dataset_ids: dict[str, int]
    dataset_names: dict[str, str] = field(default_factory=lambda: {
        "teacher": "Teacher", "so": "StudentSO", "do": "StudentDO", "baseline": "BaselineStrongOnly"})
    test_images: Path | None = None
    test_labels: Path | None = None
    manifest: Path | None = None
    weak_labels: Path | None = None            # true masks of the weak cases (phantoms): teacher evaluation
    configuration: str = BASE_CONFIGURATION
    small: SmallConfig | None = None            # set: add this reduced configuration and train it
    folds: tuple[int, ...] = (0,)
    device: str = "cpu"
    trainers: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TRAINERS))
    train: tuple[str, ...] = ("so", "do", "baseline")   # which student-side models to build and train
    budget: Budget = field(default_factory=Budget)
    n_folds: int = 5
    seed: int = 0
    jitter: int = 0                             # stress setting: absolute box jitter (voxels) of the teacher's boxes
    annotator: str | None = None                # the teacher's box noise model (None: default, or jitter)
    teacher_folds: tuple = ("all",)             # the teacher trains on every strong case (nnU-Net's fold all)
    guard: bool = True                          # retrain a box teacher that fails on its own strong cases
    guard_attempts: int = 3                     # trainings at most (seeds seed, seed + 1, ...)
    box_margin_mm: float = 2.0
    tta: bool = True                            # test-time mirroring of the teacher's pseudo-labelling
    predict_tta: bool | None = None             # ... and of the test predictions (None: as ``tta``)
    filters: dict[str, float] = field(default_factory=dict)
    filter_mode: str = "flag"
    lung_crop: bool = True
    num_processes: int = 1

    def names_clash(self) -> bool:
        return len(set(self.dataset_names.values())) != len(self.dataset_names)

    @property
    def test_tta(self) -> bool:
        return self.tta if self.predict_tta is None else self.predict_tta

    @property
    def train_configuration(self) -> str:
        return self.small.name if self.small else self.configuration

    def folds_for(self, role: str) -> tuple:
        """A teacher's folds (default ``all``) or the students' folds."""
        return tuple(self.teacher_folds) if "Teacher" in self.trainers.get(role, "") else tuple(self.folds)

    def summary(self) -> dict:
        d = asdict(self)
        return json.loads(json.dumps(d, default=str))


def nnunet_env(cfg: PipelineConfig, training: bool = False, seed: int | None = None) -> dict[str, str]:
    """The environment for nnU-Net's commands: current env + our trainers + budget + ``NNTS_SEED``; on a
    CPU one preprocessing worker and no data-augmentation workers (spawning workers on 2 cores is ~10x
    slower, and in the main process the seeded augmentation repeats)."""
    env = dict(os.environ)
    current = [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if str(ext_trainer_dir()) not in current:
        env["nnUNet_extTrainer"] = os.pathsep.join(current + [str(ext_trainer_dir())])
    env.update(cfg.budget.env())
    if training:
        env["NNTS_SEED"] = str(cfg.seed if seed is None else seed)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if cfg.device == "cpu":
        env.setdefault("nnUNet_def_n_proc", str(cfg.num_processes))
        env.setdefault("OMP_NUM_THREADS", "1")
        if training:
            env["nnUNet_n_proc_DA"] = "0"  # planning breaks on 0; training on a CPU wants it
    return env


def load_config(path: str | os.PathLike) -> tuple[PipelineConfig, dict[str, str]]:
    """Read a pipeline TOML file; returns the config and the nnU-Net folders it sets (``[paths]``).
    Relative paths are relative to the file's folder."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser as a package
        import tomli as tomllib

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid TOML ({e})") from e
    base = path.resolve().parent

    def p(value: Any, key: str) -> Path | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise InputError(f"{path}: {key} must be a path string, got {value!r}")
        q = Path(os.path.expandvars(os.path.expanduser(value)))
        return q if q.is_absolute() else base / q

    check_config_keys(doc, path)
    paths, data = doc.get("paths", {}), doc.get("data", {})
    ids, train = doc.get("datasets", {}), doc.get("train", {})
    pl, pred = doc.get("pseudo_label", {}), doc.get("predict", {})
    for key in ("strong", "weak"):
        if key not in data:
            raise InputError(f"{path}: [data] needs '{key}' (strong: nnU-Net dataset id; weak: weak-set folder)")
    strong = data["strong"]
    if not isinstance(strong, int):
        raise InputError(f"{path}: [data] strong must be an nnU-Net dataset id (integer), got {strong!r}")
    models = tuple(train.get("models", ("so", "do", "baseline")))
    bad = [m for m in models if m not in STUDENT_ROLES]
    if bad or not models:
        raise InputError(f"{path}: [train] models may name {list(STUDENT_ROLES)}, got {list(models)}")
    dataset_ids = {}
    for role in ("teacher", *dict.fromkeys(DATASET_OF.get(m, m) for m in models)):
        value = ids.get(role)
        if not isinstance(value, int) or not 1 <= value <= 999:
            raise InputError(f"{path}: [datasets] {role} must be a new nnU-Net dataset id in 1..999, got {value!r}")
        dataset_ids[role] = value
    all_ids = [strong, *dataset_ids.values()]
    if len(set(all_ids)) != len(all_ids):
        raise InputError(f"{path}: dataset ids must all differ, got strong={strong} and {dataset_ids}")
    dataset_ids.update({m: dataset_ids[DATASET_OF[m]] for m in models if m in DATASET_OF})
    trainers = dict(DEFAULT_TRAINERS)
    trainers.update({r: train[f"{r}_trainer"] for r in ROLES if f"{r}_trainer" in train})
    small = None
    if "small" in doc:
        s = doc["small"]
        small = SmallConfig(name=s.get("name", "3d_small"), patch_size=tuple(s.get("patch_size", (16, 32, 32))),
                            features=tuple(s.get("features", (8, 16, 32))), batch_size=int(s.get("batch_size", 2)))
        if len(small.patch_size) != 3 or not small.features:
            raise InputError(f"{path}: [small] patch_size needs 3 numbers and features at least one")
    device = str(train.get("device", "auto"))
    if device not in ("auto", "cpu", "cuda", "mps"):
        raise InputError(f"{path}: [train] device must be auto, cpu, cuda or mps, got {device!r}")
    folds = train.get("folds", [0])
    folds = tuple(folds if isinstance(folds, list) else [folds])
    if not all(isinstance(f, int) and f >= 0 for f in folds):
        raise InputError(f"{path}: [train] folds must be a list of fold numbers, got {folds!r}")
    budget = Budget(train.get("epochs"), train.get("iterations"), train.get("val_iterations"),
                    bool(train.get("no_mirroring", False)), bool(train.get("skip_validation", False)))
    cfg = PipelineConfig(
        work_dir=p(paths.get("work_dir", "nnts_pipeline"), "work_dir"), strong=strong,
        weak_dir=p(data["weak"], "weak"), dataset_ids=dataset_ids,
        test_images=p(data.get("test_images"), "test_images"), test_labels=p(data.get("test_labels"), "test_labels"),
        manifest=p(data.get("manifest"), "manifest"), weak_labels=p(data.get("weak_labels"), "weak_labels"),
        configuration=str(train.get("configuration", BASE_CONFIGURATION)), small=small, folds=folds,
        device=resolve_device(device), trainers=trainers, train=models, budget=budget,
        n_folds=int(train.get("n_folds", 5)), seed=int(train.get("seed", 0)), jitter=int(train.get("jitter", 0)),
        annotator=train.get("annotator"), teacher_folds=_teacher_folds(train.get("teacher_folds", "all"), path),
        guard=bool(train.get("guard", True)), guard_attempts=int(train.get("guard_attempts", 3)),
        box_margin_mm=float(pl.get("box_margin_mm", 2.0)), tta=bool(pl.get("tta", True)),
        predict_tta=bool(pred.get("tta", True)),
        filters={k: pl[k] for k in ("min_box_fill", "min_box_iou", "max_entropy", "max_empty_slices", "min_volume_ml")
                 if k in pl},
        filter_mode=str(pl.get("filter_mode", "flag")), lung_crop=bool(pred.get("lung_crop", True)),
        num_processes=int(train.get("num_processes", 1)))
    if cfg.names_clash():
        raise InputError(f"{path}: dataset names must differ")
    folders = {k: str(p(paths[k], k)) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results") if k in paths}
    return cfg, folders


#: every key a pipeline TOML may hold, per section
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "paths": ("work_dir", "nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"),
    "data": ("strong", "weak", "test_images", "test_labels", "manifest", "weak_labels"),
    "datasets": ROLES,
    "train": ("configuration", "folds", "device", "models", *(f"{r}_trainer" for r in (*ROLES, "so_nnunet")),
              "epochs", "iterations", "val_iterations", "no_mirroring", "skip_validation", "n_folds", "seed",
              "jitter", "annotator", "teacher_folds", "guard", "guard_attempts", "num_processes"),
    "pseudo_label": ("box_margin_mm", "tta", "min_box_fill", "min_box_iou", "max_entropy", "max_empty_slices",
                     "min_volume_ml", "filter_mode"),
    "predict": ("lung_crop", "tta"),
    "small": ("name", "patch_size", "features", "batch_size"),
}


def _unknown(found: Any, known: Sequence[str], where: str, path: Path) -> None:
    from difflib import get_close_matches

    for key in found:
        if key not in known:
            near = get_close_matches(str(key), list(known), n=1, cutoff=0.5)
            hint = f"did you mean '{near[0]}'?" if near else f"known: {', '.join(known)}"
            raise InputError(f"{path}: unknown {where} '{key}' ({hint})")


def check_config_keys(doc: Mapping[str, Any], path: Path) -> None:
    """Every section and key of a pipeline TOML is one we read: a typo (``epoch = 1``) would otherwise be
    ignored silently and, for a budget, train with nnU-Net's full default."""
    _unknown(doc, list(CONFIG_KEYS), "section", path)
    for section, body in doc.items():
        if not isinstance(body, dict):
            raise InputError(f"{path}: [{section}] must be a table of keys, got {body!r}")
        _unknown(body, CONFIG_KEYS[section], f"key in [{section}]", path)


def _teacher_folds(value: Any, path: Path) -> tuple:
    folds = tuple(value if isinstance(value, list) else [value])
    if not folds or not all(f == "all" or isinstance(f, int) and f >= 0 for f in folds):
        raise InputError(f"{path}: [train] teacher_folds must be \"all\" or a list of fold numbers, got {value!r}")
    return folds


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- folders and checks
def nnunet_root(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise InputError(f"environment variable {name} is not set (run: eval \"$(nnts env)\")")
    return Path(value)


def dataset_dir(kind: str, dataset_id: int) -> Path | None:
    """``$nnUNet_<kind>/DatasetXXX_Name`` of an id, or None."""
    root = nnunet_root(f"nnUNet_{kind}")
    name = dataset_folder_name(dataset_id, root)
    return root / name if name else None


def raw_done(dataset_id: int) -> bool:
    folder = dataset_dir("raw", dataset_id)
    return folder is not None and (folder / "dataset.json").is_file()


def preprocessed_done(dataset_id: int, configuration: str) -> bool:
    """Plans hold ``configuration`` and the base configuration's data folder has every training case."""
    raw, pre = dataset_dir("raw", dataset_id), dataset_dir("preprocessed", dataset_id)
    if raw is None or pre is None:
        return False
    plans = load_json(pre / f"{PLANS}.json")
    if configuration not in plans.get("configurations", {}):
        return False
    n_train = load_json(raw / "dataset.json").get("numTraining")
    data = pre / f"{PLANS}_{BASE_CONFIGURATION}"
    return (bool(n_train) and data.is_dir() and len(list(data.glob("*.pkl"))) >= int(n_train)
            and newer(pre / "dataset.json", raw / "dataset.json"))  # planning copies dataset.json


def newer(path: Path, *than: Path) -> bool:
    """``path`` exists and is at least as recent as every existing file of ``than`` (as make does)."""
    if not path.is_file():
        return False
    t = path.stat().st_mtime
    return all(t >= p.stat().st_mtime for p in than if p.is_file())


def model_folder(cfg: PipelineConfig, role: str) -> Path:
    """``$nnUNet_results/DatasetXXX_Name/TRAINER__nnUNetPlans__CONFIG`` of a role's model."""
    ds = dataset_folder_name(cfg.dataset_ids[role], nnunet_root("nnUNet_raw")) or \
        f"Dataset{cfg.dataset_ids[role]:03d}_{cfg.dataset_names[role]}"
    return nnunet_root("nnUNet_results") / ds / f"{cfg.trainers[role]}__{PLANS}__{cfg.train_configuration}"


def trained(cfg: PipelineConfig, role: str) -> bool:
    """Every fold has its final checkpoint, newer than the dataset's plans (else the model is stale)."""
    folder = model_folder(cfg, role)
    pre = dataset_dir("preprocessed", cfg.dataset_ids[role])
    plans = [pre / f"{PLANS}.json"] if pre else []
    return all(newer(folder / f"fold_{f}" / "checkpoint_final.pth", *plans) for f in cfg.folds_for(role))


def guarded(cfg: PipelineConfig, role: str) -> bool:
    """A box teacher whose training the guard checks (see :mod:`.teacher_guard`)."""
    return cfg.guard and "BoxTeacher" in cfg.trainers.get(role, "")


def checkpoints(cfg: PipelineConfig, role: str) -> list[Path]:
    return [model_folder(cfg, role) / f"fold_{f}" / "checkpoint_final.pth" for f in cfg.folds_for(role)]


IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")  # those nnts predict reads


def image_cases(folder: Path) -> list[str]:
    """Case names of the CT files in a folder (``_0000`` channel suffix dropped, as ``nnts predict`` does).
    Written out here so that checking a step does not import torch (as ``predict`` does)."""
    names = []
    for p in folder.iterdir():
        suffix = next((s for s in IMAGE_SUFFIXES if p.name.lower().endswith(s)), None)
        if p.is_file() and not p.name.startswith(".") and suffix:
            stem = p.name[: -len(suffix)]
            names.append(stem[:-5] if stem.endswith("_0000") else stem)
    return sorted(names)


def predictions_done(images: Path, out: Path, models: Sequence[Path] = ()) -> bool:
    """Every case has its mask and report, made after the model's checkpoints."""
    if not out.is_dir():
        return False
    return all(newer(out / f"{c}.json", *models) and (out / f"{c}.nii.gz").is_file() for c in image_cases(images))


def stale_outputs(folder: Path, models: Sequence[Path]) -> bool:
    """Some output in ``folder`` is older than a model checkpoint (the model was retrained since)."""
    if not folder.is_dir():
        return False
    return any(not newer(p, *models) for p in folder.glob("*.json"))


def pseudo_done(out: Path, teacher: Sequence[Path] = ()) -> bool:
    """The QC table says every weak case is finished, and the pseudo-labels came from these checkpoints."""
    qc = load_json(out / "qc.json")
    return bool(qc) and qc.get("complete") is True and not pseudo_stale(out, teacher)


def pseudo_stale(out: Path, teacher: Sequence[Path]) -> bool:
    """Pseudo-labels in ``out`` were made by other teacher checkpoints than ``teacher``."""
    prov = load_json(out / "provenance.json")
    if not prov or not teacher:
        return False
    if not all(p.is_file() for p in teacher):
        return True
    per_fold = prov.get("checkpoint_sha256_per_fold", {})
    return sorted(per_fold.values()) != sorted(file_sha256(p) for p in teacher)


def student_dataset_current(cfg: PipelineConfig, role: str, pseudo_dir: Path) -> bool:
    """The student dataset exists and was built from the current pseudo-labels' teacher."""
    folder = dataset_dir("raw", cfg.dataset_ids[role])
    if folder is None or not (folder / "dataset.json").is_file():
        return False
    if role == "baseline":
        return True
    made_by = (load_json(folder / "dataset.json").get("nnts_teacher") or {}).get("checkpoint_sha256")
    return made_by is not None and made_by == load_json(pseudo_dir / "provenance.json").get("checkpoint_sha256")


# --------------------------------------------------------------------------- the method
@dataclass
class Layout:
    """Where the non-nnU-Net outputs go, under the work folder."""

    work: Path

    @property
    def pseudo(self) -> Path:
        return self.work / "pseudo_labels"

    def predictions(self, role: str) -> Path:
        return self.work / "predictions" / role

    def evaluation(self, role: str) -> Path:
        return self.work / "evaluation" / role

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def timings(self) -> Path:
        return self.work / "timings.json"


def plan_step(cfg: PipelineConfig, layout: Layout, roles: Sequence[str], what: str) -> Step:
    """nnU-Net's planning and preprocessing of the roles' datasets (and our small configuration). The teacher's
    CT window is fitted to its box voxels (:func:`~.teacher_dataset.use_box_window`) between nnU-Net's
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


def train_step_name(role: str, trainer: str) -> str:
    """The name of a training step (keys its seconds in ``timings.json``)."""
    return f"train {MODEL_NAMES.get(role, role)} ({trainer})"


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
            print(f"  training {MODEL_NAMES.get(role, role)}: dataset {did}, fold {f}, seed {seed} (log: {log})",
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

    return Step(train_step_name(role, trainer), " && ".join(cmds), run, done, clear=clear)


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
        f"pseudo-label the weak set ({MODEL_NAMES.get(role, role)})"
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


#: role -> (dataset form, where the weak cases' labels come from, step title)
STUDENT_DATASETS = {
    "so": ("so", "pseudo", "SO student dataset (strong + pseudo-labels)"),
    "do": ("do", "pseudo", "DO student dataset (box + tumour regions)"),
    "baseline": ("so", None, "baseline dataset (strong cases only, SO form)"),
    "ignore": ("ignore", "boxes", "ignore-label dataset (strong + weak boxes as nnU-Net's ignore label)"),
    "upper": ("so", "truth", "upper-bound dataset (strong + weak cases with their true masks)"),
    "upper_do": ("do", "truth", "DO upper-bound dataset (strong + weak cases with their true masks, DO form)"),
}


def student_dataset_step(cfg: PipelineConfig, layout: Layout, role: str) -> Step:
    """Build the nnU-Net raw dataset of a student-side role (see :data:`STUDENT_DATASETS`)."""
    form, weak_labels, what = STUDENT_DATASETS[role]
    ids, names, q = cfg.dataset_ids, cfg.dataset_names, shlex.quote
    pseudo = {"pseudo": layout.pseudo, "truth": cfg.weak_dir / "labels"}.get(weak_labels)

    def run() -> None:
        from ..students.dataset import make_student_dataset

        excluded = set(load_json(layout.pseudo / "excluded.json").get("excluded", {})) if weak_labels == "pseudo" \
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
        from ..predict import predict_path

        predict_path(cfg.test_images, out, model_folder(cfg, role), folds=cfg.folds, device=cfg.device,
                     lung_crop=cfg.lung_crop, tta=cfg.test_tta, overwrite=stale_outputs(out, checkpoints(cfg, role)))

    cmd = (f"nnts predict -i {shlex.quote(str(cfg.test_images))} -o {shlex.quote(str(out))} "
           f"-m {shlex.quote(str(model_folder(cfg, role)))} -f {_folds_arg(cfg)} -device {cfg.device}"
           f"{'' if cfg.test_tta else ' --disable-tta'}{'' if cfg.lung_crop else ' --no-lung-crop'}")
    return Step(f"predict the test set ({MODEL_NAMES[role]})", cmd, run,
                lambda: predictions_done(cfg.test_images, out, checkpoints(cfg, role)),
                inputs=lambda: [cfg.test_images], clear=lambda: remove_paths(out))


def evaluate_step(cfg: PipelineConfig, layout: Layout, role: str, pred: Path, gt: Path) -> Step:
    out = layout.evaluation(role)
    name = MODEL_NAMES[role]

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


def load_results(layout: Layout, roles: Sequence[str]) -> dict[str, dict]:
    """``{model name: evaluation summary.json}`` of the roles that have one."""
    out = {}
    for role in roles:
        doc = load_json(layout.evaluation(role) / "summary.json")
        if doc:
            out[MODEL_NAMES[role]] = doc
    return out
