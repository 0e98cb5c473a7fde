"""The classical reference teacher: no training, a rule inside each box.

Pseudo mask = (box grown in-plane by ``box_margin_mm``) ∧ (HU > ``hu_threshold``) ∧ lung region (the
classical lung mask of :mod:`...lungs`, which keeps pleural tumours inside), restricted to the 3-D
connected components that reach into a box (the component(s) each box frames; a vessel crossing only
the margin is dropped). It is the floor a learned teacher must beat, and a zero-training option.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from ..core.defaults import BOX_MARGIN_MM
from ..core.components import label_components
from ..core.geometry import spacing_zyx
from ..formats.boxes import BoxSet
from .inference import TeacherPrediction, dilate_in_plane

CLASSICAL_TRAINER = "classical"


@dataclass(frozen=True)
class ClassicalTeacher:
    """The rule's settings (recorded in the pseudo-label folder's provenance)."""

    hu_threshold: float = -400.0
    box_margin_mm: float = BOX_MARGIN_MM
    use_lungs: bool = True

    def provenance(self) -> dict:
        """Who made the pseudo masks, in the keys ``pseudo_labels`` compares before resuming."""
        settings = asdict(self)
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        return {
            "teacher_model_folder": None,
            "dataset": None,
            "trainer": CLASSICAL_TRAINER,
            "plans": None,
            "configuration": None,
            "folds": [],
            "checkpoint": None,
            "checkpoint_sha256": f"classical-{digest}",
            "checkpoint_sha256_per_fold": {},
            "mode": "classical",
            "box_margin_mm": self.box_margin_mm,
            "tta": False,
            "classical": settings,
        }

    def predict(self, ct: sitk.Image, boxset: BoxSet) -> TeacherPrediction:
        boxset.check_against(ct, "boxes")
        spacing = spacing_zyx(ct)
        bmask = boxset.mask()
        hu = sitk.GetArrayFromImage(ct)
        candidate = dilate_in_plane(bmask, spacing, self.box_margin_mm) & (hu > self.hu_threshold)
        if self.use_lungs and candidate.any():
            from ..lungs.mask import lung_mask

            lungs = lung_mask(ct, method="classical")
            if lungs.found:
                candidate &= lungs.mask > 0
        labels, n = label_components(candidate)
        if n:
            framed = np.unique(labels[(bmask > 0) & (labels > 0)])
            mask = np.isin(labels, framed[framed > 0])
        else:
            mask = candidate
        mask = mask.astype(np.uint8)
        return TeacherPrediction(mask, mask.astype(np.float32), bmask, [])
