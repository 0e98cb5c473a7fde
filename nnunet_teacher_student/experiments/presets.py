"""The demo's and the benchmark's vocabulary: the CPU presets and the display names of every model they train."""

from __future__ import annotations

from ..workflow.config import MODEL_NAMES as METHOD_MODEL_NAMES
from ..workflow.method import STUDENT_DATASETS as METHOD_DATASETS

#: the reduced CPU configuration per phantom preset (tiny phantoms are 32-48 voxels in-plane)
CPU_SMALL = {
    "default": {
        "name": "3d_small",
        "patch_size": (16, 48, 48),
        "features": (8, 16, 32, 64),
        "batch_size": 2,
    },
    "tiny": {
        "name": "3d_small",
        "patch_size": (16, 32, 32),
        "features": (8, 16, 32),
        "batch_size": 2,
    },
}
#: the CPU budget per model of the demo and the benchmark: on tiny phantoms 1000 iterations let every model
#: learn (demo, BENCHMARKS.md); 300 iterations on the default preset did not
CPU_PRESET, CPU_EPOCHS, CPU_ITERATIONS, CPU_VAL_ITERATIONS = "tiny", 10, 100, 3
#: display names of every model the demo and the benchmark train (the method's and the benchmark's own)
MODEL_NAMES = {
    **METHOD_MODEL_NAMES,
    "classical": "Classical rule (box ∧ HU ∧ lung)",
    "point_teacher": "Point teacher (pseudo-labels)",
    "so_paper": "SO student (_Paper)",
    "do_paper": "DO student (_Paper)",
    "ignore": "nnU-Net ignore label (boxes, no teacher)",
    "upper": "Upper bound (true masks for all)",
    "upper_do": "DO upper bound (true masks for all, DO trainer)",
    "so_unc": "SO student, unsure voxels ignored",
    "do_unc": "DO student, unsure voxels ignored",
    "teacher_ens": "Box teacher ensemble of folds (pseudo-labels)",
    "do_ens": "DO student on the teacher ensemble",
    "do_relabel": "DO student's re-labels (round 2 pseudo-labels)",
    "do_r2": "DO student, round 2 (noisy student)",
}
#: the student-side datasets of the benchmark, the method's and its controls (see ``workflow.method.student_dataset_step``)
STUDENT_DATASETS = {
    **METHOD_DATASETS,
    "ignore": (
        "ignore",
        "boxes",
        "ignore-label dataset (strong + weak boxes as nnU-Net's ignore label)",
    ),
    "upper": ("so", "truth", "upper-bound dataset (strong + weak cases with their true masks)"),
    "upper_do": (
        "do",
        "truth",
        "DO upper-bound dataset (strong + weak cases with their true masks, DO form)",
    ),
    "so_unc": (
        "so",
        "uncertain",
        "uncertainty-aware SO dataset (teacher-unsure box voxels as the ignore label)",
    ),
    "do_unc": (
        "do",
        "uncertain",
        "uncertainty-aware DO dataset (teacher-unsure box voxels as the ignore label)",
    ),
    "do_ens": ("do", "pseudo", "DO dataset on the teacher ensemble's pseudo-labels"),
    "do_r2": ("do", "pseudo", "round 2 DO dataset (the DO student's re-labels)"),
}
