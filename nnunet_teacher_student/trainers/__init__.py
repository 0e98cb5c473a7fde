"""nnU-Net trainers of the teacher-student method (import these names with ``-tr``)."""

from .base import nnUNetTrainerNNTS
from .students import (
    nnUNetTrainerBaseline_Paper,
    nnUNetTrainerDOStudent,
    nnUNetTrainerDOStudent_Paper,
    nnUNetTrainerSOStudent,
    nnUNetTrainerSOStudent_Paper,
)
from .teachers import (
    nnUNetTrainerBoxTeacher,
    nnUNetTrainerBoxTeacher_Paper,
    nnUNetTrainerPointTeacher,
    nnUNetTrainerPointTeacher_Paper,
)

__all__ = [
    "nnUNetTrainerNNTS",
    "nnUNetTrainerBoxTeacher",
    "nnUNetTrainerBoxTeacher_Paper",
    "nnUNetTrainerPointTeacher",
    "nnUNetTrainerPointTeacher_Paper",
    "nnUNetTrainerSOStudent",
    "nnUNetTrainerSOStudent_Paper",
    "nnUNetTrainerDOStudent",
    "nnUNetTrainerDOStudent_Paper",
    "nnUNetTrainerBaseline_Paper",
]
