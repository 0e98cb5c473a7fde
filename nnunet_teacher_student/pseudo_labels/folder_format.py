"""The pseudo-label folder's format (``nnts pseudo-label -o OUT``)::

    OUT/<case>.nii.gz        the pseudo mask on the CT's grid
    OUT/qc/<case>.json       the case's QC record (a finished case has both)
    OUT/provenance.json      the teacher (model folder, checkpoint SHA-256 per fold, folds, mode, margin, TTA)
    OUT/qc.csv, qc.json      QC table of all finished cases + summary + filter results
    OUT/excluded.json        {"excluded": {case: [failed filters]}}: cases dropped by --filter-mode drop
    OUT/probabilities/<case>.nii.gz   the teacher's tumour probability (float32, 0 outside its regions), with
                             --save-probabilities: what the uncertainty-aware student datasets read

Only names here: writers and readers (pseudo-labelling, student datasets, the workflow's checks, the report)
share them."""

from __future__ import annotations

from pathlib import Path

from ..formats.images import IMAGE_SUFFIX

PROVENANCE_FILE = "provenance.json"
QC_FILE = "qc.json"
QC_TABLE = "qc.csv"
EXCLUDED_FILE = "excluded.json"
QC_DIR = "qc"
PROBABILITY_DIR = "probabilities"


def probability_file(out: Path, case: str) -> Path:
    """Where ``--save-probabilities`` puts a case's teacher probability."""
    return out / PROBABILITY_DIR / f"{case}{IMAGE_SUFFIX}"
