"""The model registry: every model the method, the demo and the benchmark train or score, and every dataset
slot they train on, defined once. The pipeline, the benchmark, the demo and the reports read their trainers,
dataset slots and table labels from here (stages above derive views, never their own tables)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSlot:
    """An nnU-Net dataset of a run: its id offset in a block of ten ids (``block`` 1: the run's second
    block), and for student-side datasets their form (``so``/``do``/``ignore``), where the weak cases'
    labels come from (``pseudo``, ``truth``, ``uncertain``, ``boxes`` or None: strong cases only) and the
    step's title."""

    offset: int
    form: str | None = None
    labels: str | None = None
    title: str = ""
    block: int = 0


@dataclass(frozen=True)
class Model:
    """A model key's nnU-Net trainer (``classical``: the rule, no training), the dataset slot it trains on,
    its label in tables, its role (``teacher``: its pseudo-labels are scored on the weak set; ``student``:
    trained on pseudo-labels; ``reference``: a baseline, control or upper bound), whether ``nnts pipeline``
    trains it (``method``), the model it needs first and whether its steps come after the rest of a run
    (``later``: options added to finished runs)."""

    trainer: str
    dataset: str
    name: str
    role: str
    method: bool = False
    needs: str | None = None
    later: bool = False


DATASETS: dict[str, DatasetSlot] = {
    "strong": DatasetSlot(0),
    "teacher": DatasetSlot(1),
    "so": DatasetSlot(2, "so", "pseudo", "SO student dataset (strong + pseudo-labels)"),
    "do": DatasetSlot(3, "do", "pseudo", "DO student dataset (box + tumour regions)"),
    "baseline": DatasetSlot(4, "so", None, "baseline dataset (strong cases only, SO form)"),
    "ignore": DatasetSlot(
        5, "ignore", "boxes", "ignore-label dataset (strong + weak boxes as nnU-Net's ignore label)"
    ),
    "upper": DatasetSlot(
        6, "so", "truth", "upper-bound dataset (strong + weak cases with their true masks)"
    ),
    "upper_do": DatasetSlot(
        7,
        "do",
        "truth",
        "DO upper-bound dataset (strong + weak cases with their true masks, DO form)",
    ),
    "so_unc": DatasetSlot(
        8,
        "so",
        "uncertain",
        "uncertainty-aware SO dataset (teacher-unsure box voxels as the ignore label)",
    ),
    "do_unc": DatasetSlot(
        9,
        "do",
        "uncertain",
        "uncertainty-aware DO dataset (teacher-unsure box voxels as the ignore label)",
    ),
    "do_ens": DatasetSlot(
        0, "do", "pseudo", "DO dataset on the teacher ensemble's pseudo-labels", block=1
    ),
    "do_r2": DatasetSlot(
        1, "do", "pseudo", "round 2 DO dataset (the DO student's re-labels)", block=1
    ),
}

BOX_TEACHER, POINT_TEACHER = "nnUNetTrainerBoxTeacher", "nnUNetTrainerPointTeacher"
SO, DO, PLAIN = "nnUNetTrainerSOStudent", "nnUNetTrainerDOStudent", "nnUNetTrainerNNTS"

MODELS: dict[str, Model] = {
    "teacher": Model(
        BOX_TEACHER, "teacher", "Box teacher (pseudo-labels)", role="teacher", method=True
    ),
    "point_teacher": Model(
        POINT_TEACHER, "teacher", "Point teacher (pseudo-labels)", role="teacher"
    ),
    "classical": Model("classical", "teacher", "Classical rule (box ∧ HU ∧ lung)", role="teacher"),
    "baseline": Model(PLAIN, "baseline", "Baseline (strong only)", "reference", method=True),
    "ignore": Model(PLAIN, "ignore", "nnU-Net ignore label (boxes, no teacher)", "reference"),
    "so": Model(SO, "so", "SO student", "student", method=True),
    "do": Model(DO, "do", "DO student", "student", method=True),
    "so_paper": Model(f"{SO}_Paper", "so", "SO student (_Paper)", "student"),
    # control: the baseline's trainer on the SO student dataset
    "so_nnunet": Model(
        PLAIN, "so", "nnU-Net on strong + pseudo (control)", "reference", method=True
    ),
    "do_paper": Model(f"{DO}_Paper", "do", "DO student (_Paper)", "student"),
    "upper": Model(PLAIN, "upper", "Upper bound (true masks for all)", "reference"),
    # the DO student's own ceiling: its trainer on true masks
    "upper_do": Model(
        DO, "upper_do", "DO upper bound (true masks for all, DO trainer)", "reference"
    ),
    # uncertainty-aware pseudo-labels: the box voxels the teacher is unsure of as nnU-Net's ignore label
    "so_unc": Model(SO, "so_unc", "SO student, unsure voxels ignored", "student", later=True),
    "do_unc": Model(DO, "do_unc", "DO student, unsure voxels ignored", "student", later=True),
    # teacher ensemble: the box teacher's folds, probabilities averaged; the DO student on its pseudo-labels
    "teacher_ens": Model(
        BOX_TEACHER, "teacher", "Box teacher ensemble of folds (pseudo-labels)", role="teacher"
    ),
    "do_ens": Model(
        DO,
        "do_ens",
        "DO student on the teacher ensemble",
        "student",
        needs="teacher_ens",
        later=True,
    ),
    # noisy-student round 2: the DO student re-labels the weak set in the boxes; a DO student trains on that
    "do_relabel": Model(
        DO, "do", "DO student's re-labels (round 2 pseudo-labels)", role="teacher", needs="do"
    ),
    "do_r2": Model(
        DO,
        "do_r2",
        "DO student, round 2 (noisy student)",
        "student",
        needs="do_relabel",
        later=True,
    ),
}

#: the method's models that ``nnts pipeline`` may train besides its teacher (``[train] models``)
PIPELINE_MODELS = tuple(k for k, m in MODELS.items() if m.method and m.role != "teacher")
#: the keys scored on the weak set (their pseudo-labels), the keys scored on the test set, the students
TEACHERS = tuple(k for k, m in MODELS.items() if m.role == "teacher")
TEST_MODELS = tuple(k for k, m in MODELS.items() if m.role != "teacher")
STUDENTS = tuple(k for k, m in MODELS.items() if m.role == "student")


def model_names(keys: tuple[str, ...] | None = None) -> dict[str, str]:
    """Key -> label in tables, for ``keys`` (default: every model)."""
    return {k: MODELS[k].name for k in (keys or MODELS)}
