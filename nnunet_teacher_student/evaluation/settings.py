"""The settings of ``nnts evaluate`` (:class:`EvaluationSettings`): the command line and the Python API
(:func:`.folders.evaluate_folders`) build the same object."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import InputError
from .metrics import NSD_TOLERANCE_MM, OVERLAP_THRESHOLD


@dataclass(frozen=True)
class EvaluationSettings:
    """How predictions are scored: the tumour labels, lesion overlap, NSD tolerance, missing predictions."""

    # the tumour label in the predictions (None: any value > 0) and in the ground truth (None: label)
    label: int | None = None
    gt_label: int | None = None
    # a lesion is detected when this share of it is covered; surface Dice tolerance in mm
    overlap: float = OVERLAP_THRESHOLD
    nsd_tolerance_mm: float = NSD_TOLERANCE_MM
    # score a ground-truth case without a prediction as an empty prediction instead of failing
    allow_missing: bool = False

    def check(self) -> None:
        """InputError for an overlap outside (0, 1] or a tolerance <= 0."""
        if not 0 < self.overlap <= 1:
            raise InputError(f"overlap threshold must be in (0, 1], got {self.overlap}")
        if not self.nsd_tolerance_mm > 0:
            raise InputError(f"NSD tolerance must be > 0 mm, got {self.nsd_tolerance_mm}")
