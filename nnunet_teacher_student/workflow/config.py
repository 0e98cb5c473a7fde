"""The method's settings (:class:`PipelineConfig`), read from a pipeline TOML file, and the environment
nnU-Net's commands run in."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.defaults import BOX_MARGIN_MM
from ..core.devices import resolve_device
from ..core.env import EPOCHS, ITERATIONS, NO_MIRRORING, SEED, SKIP_VALIDATION, VAL_ITERATIONS
from ..core.errors import InputError
from ..core.files import read_parsed_file
from ..core.models import MODELS, PIPELINE_MODELS, model_names
from ..formats.annotator import refuse_jitter
from ..nnunet.plans import with_ext_trainer


#: the roles with a dataset id of their own in ``[datasets]`` and a ``<role>_trainer`` in ``[train]``
ROLES = ("teacher", "so", "do", "baseline")
#: what ``[train] models`` may name, their trainers, the models that train on another's dataset, the labels
STUDENT_ROLES = PIPELINE_MODELS
DEFAULT_TRAINERS = {k: MODELS[k].trainer for k in ("teacher", *PIPELINE_MODELS)}
DATASET_OF = {k: MODELS[k].dataset for k in PIPELINE_MODELS if MODELS[k].dataset != k}
MODEL_NAMES = model_names()
BASE_CONFIGURATION = "3d_fullres"
PLANS = "nnUNetPlans"


@dataclass
class Budget:
    """Training budget, passed to our trainers as ``NNTS_*`` variables (None: nnU-Net's default)."""

    epochs: int | None = None
    iterations: int | None = None
    val_iterations: int | None = None
    no_mirroring: bool = False
    skip_validation: bool = (
        False  # skip nnU-Net's final validation (the test set is scored instead)
    )

    def env(self) -> dict[str, str]:
        out = {}
        for key, value in (
            (EPOCHS, self.epochs),
            (ITERATIONS, self.iterations),
            (VAL_ITERATIONS, self.val_iterations),
        ):
            if value is not None:
                out[key] = str(int(value))
        if self.no_mirroring:
            out[NO_MIRRORING] = "1"
        if self.skip_validation:
            out[SKIP_VALIDATION] = "1"
        return out


@dataclass
class SmallConfig:
    """A reduced nnU-Net configuration added to every dataset's plans (see ``plans.add_small_configuration``)."""

    name: str = "3d_small"
    patch_size: tuple[int, int, int] = (16, 32, 32)
    features: tuple[int, ...] = (8, 16, 32)
    batch_size: int = 2
    spacing: tuple[float, float, float] | None = (
        None  # set (mm, z y x): own resampling and preprocessing
    )


@dataclass
class PipelineConfig:
    """Everything the method's steps need. Paths are absolute after :func:`load_config`."""

    work_dir: Path
    strong: int
    weak_dir: Path
    dataset_ids: dict[str, int]
    dataset_names: dict[str, str] = field(
        default_factory=lambda: {
            "teacher": "Teacher",
            "so": "StudentSO",
            "do": "StudentDO",
            "baseline": "BaselineStrongOnly",
        }
    )
    test_images: Path | None = None
    test_labels: Path | None = None
    manifest: Path | None = None
    weak_labels: Path | None = None  # true masks of the weak cases (phantoms): teacher evaluation
    configuration: str = BASE_CONFIGURATION
    small: SmallConfig | None = None  # set: add this reduced configuration and train it
    folds: tuple[int, ...] = (0,)
    device: str = "cpu"
    trainers: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TRAINERS))
    train: tuple[str, ...] = (
        "so",
        "do",
        "baseline",
    )  # which student-side models to build and train
    budget: Budget = field(default_factory=Budget)
    n_folds: int = 5
    seed: int = 0
    annotator: str | None = None  # the teacher's box noise model (None: the default model)
    box_mode: str = "lesion"  # the teacher's boxes: axial per lesion, or lesion3d (one 3-D box)
    teacher_folds: tuple = ("all",)  # the teacher trains on every strong case (nnU-Net's fold all)
    guard: bool = True  # retrain a box teacher that fails on its own strong cases
    guard_attempts: int = 3  # trainings at most (seeds seed, seed + 1, ...)
    box_margin_mm: float = BOX_MARGIN_MM
    tta: bool = True  # test-time mirroring of the teacher's pseudo-labelling
    predict_tta: bool | None = None  # ... and of the test predictions (None: as ``tta``)
    filters: dict[str, float] = field(default_factory=dict)
    filter_mode: str = "flag"
    lung_crop: bool = True
    student_crop: str | None = None  # "lungs": the student datasets hold lung crops (+ margin)
    num_processes: int = 1
    model_names: dict[str, str] = field(
        default_factory=lambda: dict(MODEL_NAMES)
    )  # role -> display name
    rounds: int = 1  # noisy-student rounds (1: the paper's method)
    relabel_with: str | None = None  # the student that re-labels the weak set for the next round
    folds_override: dict[str, tuple] = field(
        default_factory=dict
    )  # role -> its own folds (teacher ensembles)
    role_budgets: dict[str, Budget] = field(
        default_factory=dict
    )  # role -> its own budget (benchmark ceilings)

    def model_name(self, role: str) -> str:
        """The display name of a role's model (its key when it has none)."""
        return self.model_names.get(role, role)

    def names_clash(self) -> bool:
        return len(set(self.dataset_names.values())) != len(self.dataset_names)

    @property
    def test_tta(self) -> bool:
        return self.tta if self.predict_tta is None else self.predict_tta

    @property
    def train_configuration(self) -> str:
        return self.small.name if self.small else self.configuration

    def folds_for(self, role: str) -> tuple:
        """A role's own folds if it has them, else a teacher's folds (default ``all``) or the students' folds."""
        if role in self.folds_override:
            return tuple(self.folds_override[role])
        return (
            tuple(self.teacher_folds)
            if "Teacher" in self.trainers.get(role, "")
            else tuple(self.folds)
        )

    def round_models(self) -> list[str]:
        """The students a noisy-student round trains again (those whose datasets hold pseudo-labels)."""
        return [m for m in ("so", "do") if m in self.train]

    def round_role(self, role: str, k: int) -> str:
        """The key of a student's round-``k`` model (round 1: the role itself)."""
        return role if k == 1 else f"{role}_r{k}"

    def round_pseudo_role(self, k: int) -> str:
        """The key under which round ``k``'s pseudo-labels are evaluated (round 1: the teacher's)."""
        return "teacher" if k == 1 else f"pseudo_r{k}"

    def summary(self) -> dict:
        """The settings as JSON-able values (display names left out: they are not settings)."""
        d = asdict(self)
        d.pop("model_names")
        return json.loads(json.dumps(d, default=str))


def nnunet_env(
    cfg: PipelineConfig, training: bool = False, seed: int | None = None, role: str | None = None
) -> dict[str, str]:
    """The environment for nnU-Net's commands: current env + our trainers + budget + ``NNTS_SEED``; on a
    CPU one preprocessing worker and no data-augmentation workers (spawning workers on 2 cores is ~10x
    slower, and in the main process the seeded augmentation repeats)."""
    env = dict(os.environ)
    with_ext_trainer(env)
    env.update(cfg.role_budgets.get(role, cfg.budget).env())
    if training:
        env[SEED] = str(cfg.seed if seed is None else seed)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if cfg.device == "cpu":
        env.setdefault("nnUNet_def_n_proc", str(cfg.num_processes))
        env.setdefault("OMP_NUM_THREADS", "1")
        if training:
            env["nnUNet_n_proc_DA"] = "0"  # planning breaks on 0; training on a CPU wants it
    return env


def _student_crop(value: Any, path: Path) -> str | None:
    """``[train] crop``: ``"lungs"`` crops every student-side case to its lungs; absent: whole CTs."""
    if value in (None, "none"):
        return None
    if value != "lungs":
        raise InputError(f'{path}: [train] crop must be "lungs" or "none", got {value!r}')
    return "lungs"


def read_toml(path: Path) -> dict:
    """The TOML document at ``path``; a missing or invalid file is an :class:`InputError` naming it."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser as a package
        import tomli as tomllib

    return read_parsed_file(
        path, tomllib.loads, (tomllib.TOMLDecodeError,), "config file not found", "not valid TOML"
    )


def path_reader(path: Path):
    """A function ``(value, key) -> Path | None`` reading a path setting of the file at ``path`` (``~`` and
    variables expanded, relative to the file's folder)."""
    base = path.resolve().parent

    def read(value: Any, key: str) -> Path | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise InputError(f"{path}: {key} must be a path string, got {value!r}")
        q = Path(os.path.expandvars(os.path.expanduser(value)))
        return q if q.is_absolute() else base / q

    return read


def strong_id(data: dict, path: Path) -> int:
    """``[data] strong``, after checking that ``[data]`` names the strong dataset and the weak set."""
    for key in ("strong", "weak"):
        if key not in data:
            raise InputError(
                f"{path}: [data] needs '{key}' (strong: nnU-Net dataset id; weak: weak-set folder)"
            )
    strong = data["strong"]
    if not isinstance(strong, int):
        raise InputError(
            f"{path}: [data] strong must be an nnU-Net dataset id (integer), got {strong!r}"
        )
    return strong


def pipeline_models(train: dict, path: Path) -> tuple[str, ...]:
    """``[train] models``: the models trained after the teacher (none: the teacher and pseudo-labels only)."""
    models = tuple(train.get("models", ("so", "do", "baseline")))
    if [m for m in models if m not in STUDENT_ROLES]:
        raise InputError(
            f"{path}: [train] models may name {list(STUDENT_ROLES)}, got {list(models)}"
        )
    return models


def role_dataset_ids(ids: dict, strong: int, models: Sequence[str], path: Path) -> dict[str, int]:
    """Role -> new nnU-Net dataset id from ``[datasets]``: the teacher's and each model's dataset (models
    that train on another's dataset share its id)."""
    dataset_ids = {}
    for role in ("teacher", *dict.fromkeys(DATASET_OF.get(m, m) for m in models)):
        value = ids.get(role)
        if not isinstance(value, int) or not 1 <= value <= 999:
            raise InputError(
                f"{path}: [datasets] {role} must be a new nnU-Net dataset id in 1..999, got {value!r}"
            )
        dataset_ids[role] = value
    all_ids = [strong, *dataset_ids.values()]
    if len(set(all_ids)) != len(all_ids):
        raise InputError(
            f"{path}: dataset ids must all differ, got strong={strong} and {dataset_ids}"
        )
    dataset_ids.update({m: dataset_ids[DATASET_OF[m]] for m in models if m in DATASET_OF})
    return dataset_ids


def small_config(doc: dict, path: Path) -> SmallConfig | None:
    """``[small]``: the reduced configuration, or None."""
    if "small" not in doc:
        return None
    s = doc["small"]
    small = SmallConfig(
        name=s.get("name", "3d_small"),
        patch_size=tuple(s.get("patch_size", (16, 32, 32))),
        features=tuple(s.get("features", (8, 16, 32))),
        batch_size=int(s.get("batch_size", 2)),
        spacing=tuple(float(v) for v in s["spacing"]) if "spacing" in s else None,
    )
    if len(small.patch_size) != 3 or not small.features:
        raise InputError(f"{path}: [small] patch_size needs 3 numbers and features at least one")
    if small.spacing is not None and (len(small.spacing) != 3 or min(small.spacing) <= 0):
        raise InputError(
            f"{path}: [small] spacing needs 3 positive numbers (mm, z y x), got {s['spacing']!r}"
        )
    return small


def train_device(train: dict, path: Path) -> str:
    """``[train] device``, resolved (``auto``: what this machine has)."""
    device = str(train.get("device", "auto"))
    if device not in ("auto", "cpu", "cuda", "mps"):
        raise InputError(f"{path}: [train] device must be auto, cpu, cuda or mps, got {device!r}")
    return resolve_device(device)


def train_folds(train: dict, path: Path) -> tuple[int, ...]:
    """``[train] folds``: one fold number or a list."""
    folds = train.get("folds", [0])
    folds = tuple(folds if isinstance(folds, list) else [folds])
    if not all(isinstance(f, int) and f >= 0 for f in folds):
        raise InputError(f"{path}: [train] folds must be a list of fold numbers, got {folds!r}")
    return folds


def train_budget(train: dict) -> Budget:
    """``[train]``'s budget keys (absent: nnU-Net's defaults)."""
    return Budget(
        train.get("epochs"),
        train.get("iterations"),
        train.get("val_iterations"),
        bool(train.get("no_mirroring", False)),
        bool(train.get("skip_validation", False)),
    )


def load_config(path: str | os.PathLike) -> tuple[PipelineConfig, dict[str, str]]:
    """Read a pipeline TOML file; returns the config and the nnU-Net folders it sets (``[paths]``).
    Relative paths are relative to the file's folder."""
    path = Path(path)
    doc = read_toml(path)
    p = path_reader(path)
    check_config_keys(doc, path)
    paths, data = doc.get("paths", {}), doc.get("data", {})
    ids, train = doc.get("datasets", {}), doc.get("train", {})
    pl, pred = doc.get("pseudo_label", {}), doc.get("predict", {})
    strong = strong_id(data, path)
    refuse_jitter(train.get("jitter"), f"{path}: [train] jitter")
    models = pipeline_models(train, path)
    trainers = dict(DEFAULT_TRAINERS)
    trainers.update({r: train[f"{r}_trainer"] for r in ROLES if f"{r}_trainer" in train})
    cfg = PipelineConfig(
        work_dir=p(paths.get("work_dir", "nnts_pipeline"), "work_dir"),
        strong=strong,
        weak_dir=p(data["weak"], "weak"),
        dataset_ids=role_dataset_ids(ids, strong, models, path),
        test_images=p(data.get("test_images"), "test_images"),
        test_labels=p(data.get("test_labels"), "test_labels"),
        manifest=p(data.get("manifest"), "manifest"),
        weak_labels=p(data.get("weak_labels"), "weak_labels"),
        configuration=str(train.get("configuration", BASE_CONFIGURATION)),
        small=small_config(doc, path),
        folds=train_folds(train, path),
        device=train_device(train, path),
        trainers=trainers,
        train=models,
        budget=train_budget(train),
        n_folds=int(train.get("n_folds", 5)),
        seed=int(train.get("seed", 0)),
        annotator=train.get("annotator"),
        box_mode=_box_mode(train.get("box_mode", "lesion"), path),
        teacher_folds=_teacher_folds(train.get("teacher_folds", "all"), path),
        guard=bool(train.get("guard", True)),
        guard_attempts=int(train.get("guard_attempts", 3)),
        box_margin_mm=float(pl.get("box_margin_mm", BOX_MARGIN_MM)),
        tta=bool(pl.get("tta", True)),
        predict_tta=bool(pred.get("tta", True)),
        filters={k: pl[k] for k in FILTER_KEYS if k in pl},
        filter_mode=str(pl.get("filter_mode", "flag")),
        lung_crop=bool(pred.get("lung_crop", True)),
        student_crop=_student_crop(train.get("crop"), path),
        num_processes=int(train.get("num_processes", 1)),
    )
    add_rounds(
        cfg,
        train.get("rounds", 1),
        train.get("relabel_with"),
        ids.get("round_offset", 100),
        [strong],
        path,
    )
    if "max_label_change" in cfg.filters and cfg.rounds == 1:
        raise InputError(
            f"{path}: [pseudo_label] max_label_change compares a round's pseudo-labels with the previous "
            "round's: it needs [train] rounds >= 2"
        )
    if cfg.names_clash():
        raise InputError(f"{path}: dataset names must differ")
    folders = {
        k: str(p(paths[k], k))
        for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
        if k in paths
    }
    return cfg, folders


def add_rounds(
    cfg: PipelineConfig,
    rounds: Any,
    relabel_with: Any,
    offset: Any,
    taken: Sequence[int],
    path: Path | str = "config",
) -> None:
    """Noisy-student rounds: round ``k``'s students (:meth:`PipelineConfig.round_models`) get the keys
    ``<role>_r<k>``, dataset ids ``id + offset * (k - 1)``, their role's trainer and names ending in the round."""
    if not isinstance(rounds, int) or rounds < 1:
        raise InputError(f"{path}: [train] rounds must be a whole number >= 1, got {rounds!r}")
    cfg.rounds = rounds
    if rounds == 1:
        return
    models = cfg.round_models()
    if not models:
        raise InputError(
            f"{path}: [train] rounds = {rounds} needs a student that learns from pseudo-labels "
            "(models with so or do)"
        )
    relabel_with = relabel_with or ("do" if "do" in models else "so")
    if relabel_with not in models:
        raise InputError(
            f"{path}: [train] relabel_with must be a trained student ({' or '.join(models)}), "
            f"got {relabel_with!r}"
        )
    cfg.relabel_with = relabel_with
    if not isinstance(offset, int) or offset < 1:
        raise InputError(
            f"{path}: [datasets] round_offset must be a whole number >= 1, got {offset!r}"
        )
    for k in range(2, rounds + 1):
        for role in models:
            key = cfg.round_role(role, k)
            value = cfg.dataset_ids[role] + offset * (k - 1)
            if value > 999:
                raise InputError(
                    f"{path}: round {k}'s {role} dataset id {value} is over 999; lower [datasets] "
                    "round_offset or the rounds"
                )
            cfg.dataset_ids[key] = value
            cfg.dataset_names[key] = f"{cfg.dataset_names[role]}Round{k}"
            cfg.trainers[key] = cfg.trainers[role]
            cfg.model_names[key] = f"{cfg.model_name(role)}, round {k}"
        cfg.model_names[cfg.round_pseudo_role(k)] = (
            f"Pseudo-labels of round {k} ({cfg.model_name(cfg.round_role(relabel_with, k - 1))})"
        )
    all_ids = [*taken, *{r: i for r, i in cfg.dataset_ids.items() if r not in DATASET_OF}.values()]
    if len(set(all_ids)) != len(all_ids):
        raise InputError(
            f"{path}: the rounds' dataset ids (id + round_offset * (k - 1)) clash with other ids: "
            f"{sorted(all_ids)}; choose another [datasets] round_offset"
        )


#: the QC filters' names, as ``pseudo_labels.qc.FILTERS`` has them (spelled here: reading a config must not import the
#: QC's numerics; a test checks the two agree)
FILTER_KEYS = (
    "min_box_fill",
    "min_box_iou",
    "max_entropy",
    "max_empty_slices",
    "min_volume_ml",
    "max_disagreement",
    "max_label_change",
)

#: every key a pipeline TOML may hold, per section
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "paths": ("work_dir", "nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"),
    "data": ("strong", "weak", "test_images", "test_labels", "manifest", "weak_labels"),
    "datasets": (*ROLES, "round_offset"),
    "train": (
        "configuration",
        "crop",
        "folds",
        "device",
        "models",
        *(f"{r}_trainer" for r in (*ROLES, "so_nnunet")),
        "epochs",
        "iterations",
        "val_iterations",
        "no_mirroring",
        "skip_validation",
        "n_folds",
        "seed",
        "jitter",  # removed: refused unless 0 (formats.annotator.refuse_jitter)
        "annotator",
        "box_mode",
        "teacher_folds",
        "guard",
        "guard_attempts",
        "num_processes",
        "rounds",
        "relabel_with",
    ),
    "pseudo_label": ("box_margin_mm", "tta", *FILTER_KEYS, "filter_mode"),
    "predict": ("lung_crop", "tta"),
    "small": ("name", "patch_size", "features", "batch_size", "spacing"),
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
        raise InputError(
            f'{path}: [train] teacher_folds must be "all" or a list of fold numbers, got {value!r}'
        )
    return folds


def _box_mode(value: Any, path: Path) -> str:
    if value not in ("lesion", "lesion3d"):
        raise InputError(
            f'{path}: [train] box_mode must be "lesion" (axial boxes) or "lesion3d" (one 3-D box per '
            f"lesion, as the weak set's boxes are), got {value!r}"
        )
    return value
