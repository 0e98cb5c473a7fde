"""The keys this package adds to nnU-Net's ``dataset.json`` (and to a fingerprint), named once.

nnU-Net ignores keys it does not know, so our datasets carry their provenance and settings in them:
"""

from __future__ import annotations

#: teacher datasets: the annotator model of the boxes, axial or 3-D boxes, the source dataset, cases left out
ANNOTATOR = "nnts_annotator"
BOX_MODE = "nnts_box_mode"
SOURCE = "nnts_source"
WITHOUT_TUMOUR = "nnts_without_tumour"
#: in a teacher's fingerprint: its CT properties are the box window (``teacher.teacher_dataset.use_box_window``)
BOX_WINDOW = "nnts_box_window"
#: student datasets: the form (so/do/ignore), each case's provenance, the teacher that made the pseudo-labels,
#: the uncertain band's record, the lung-crop boxes, the size-balancing sampling weights
FORM = "nnts_form"
PROVENANCE = "nnts_provenance"
TEACHER = "nnts_teacher"
UNCERTAIN_BAND = "nnts_uncertain_band"
CROPS = "nnts_crops"
SAMPLING_WEIGHTS = "nnts_sampling_weights"
#: scenario strong datasets: every choice of ``make-scenario``
SCENARIO = "nnts_scenario"
