"""Re-exports our trainers for nnU-Net's ``nnUNet_extTrainer`` search (this folder holds only this module)."""

from nnunet_teacher_student.trainers import *  # noqa: F401,F403
from nnunet_teacher_student.trainers import __all__  # noqa: F401
