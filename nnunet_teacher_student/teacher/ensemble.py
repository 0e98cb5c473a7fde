"""A teacher ensemble: several folds of one teacher, averaged in probability, and how much its members disagree.

nnU-Net's predictor ensembles folds by averaging their logits inside the sliding window and gives no member's
own answer; here each fold predicts the case on its own (the same network passes in all), the ensemble's
probability is the members' mean and its mask is that mean above 0.5, constrained as one teacher's. The members'
masks give the case's disagreement for the pseudo-label QC: 1 - their mean pairwise DSC.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from ..core.geometry import spacing_zyx
from ..core.defaults import BOX_MARGIN_MM
from ..evaluation.metrics import dice
from ..formats.boxes import BoxSet
from .inference import TeacherMode, TeacherPrediction, allowed_region, teacher_predict_case


def member_disagreement(masks: Sequence[np.ndarray]) -> float:
    """1 - the mean DSC over pairs of member masks (two empty masks agree); 0 for fewer than two members."""
    pairs = list(combinations(masks, 2))
    if not pairs:
        return 0.0
    return 1.0 - float(np.mean([dice(a > 0, b > 0) for a, b in pairs]))


class TeacherEnsemble:
    """One :class:`~..prediction.region.RegionPredictor` per fold of a teacher's model folder."""

    def __init__(
        self,
        model_folder: str | Path,
        folds: Sequence[int | str],
        checkpoint: str = "checkpoint_final.pth",
        device: str = "cpu",
        tta: bool = True,
    ):
        from ..prediction.region import RegionPredictor

        self.members = [RegionPredictor(model_folder, (f,), checkpoint, device, tta) for f in folds]

    def predict(
        self,
        ct: sitk.Image,
        boxset: BoxSet,
        mode: TeacherMode,
        box_margin_mm: float = BOX_MARGIN_MM,
    ) -> tuple[TeacherPrediction, dict]:
        """The ensemble's prediction and its QC entries (``ensemble_members``, ``disagreement``)."""
        preds = [teacher_predict_case(m, ct, boxset, mode, box_margin_mm) for m in self.members]
        first = preds[0]
        probability = np.mean([p.probability for p in preds], axis=0).astype(np.float32)
        if first.regions:
            spacing = spacing_zyx(ct)
            allowed = allowed_region(
                first.box_mask, spacing, self.members[0].patch_size_mm, mode, box_margin_mm
            )
            mask = (probability > 0.5) & allowed
        else:  # no box: nothing was predicted
            mask = np.zeros(first.mask.shape, bool)
        qc = {
            "ensemble_members": len(preds),
            "disagreement": member_disagreement([p.mask for p in preds]),
        }
        return TeacherPrediction(
            mask.astype(np.uint8), probability, first.box_mask, first.regions
        ), qc
