"""Evaluation of tumour segmentations: per-case metrics (``metrics``), aggregation and paper-style
tables (``aggregate``), and folder-level scoring with CSV/JSON/Markdown output (``folders``).

The exact rules (lesion matching at >= 25 % overlap, DSC-TP, empty masks, NaN handling) are in
:data:`nnunet_teacher_student.evaluation.metrics.RULES` and are copied into every summary.md/json.
"""

from .aggregate import PAPER_METRICS, SUMMARY_METRICS, markdown_table, mean_std, summarize
from .folders import evaluate_folders, load_manifest, summary_markdown, write_outputs
from .metrics import RULES, case_metrics, dice, match_lesions, rules, surface_metrics
from .settings import EvaluationSettings

__all__ = [
    "RULES",
    "rules",
    "PAPER_METRICS",
    "SUMMARY_METRICS",
    "case_metrics",
    "dice",
    "match_lesions",
    "surface_metrics",
    "summarize",
    "mean_std",
    "markdown_table",
    "EvaluationSettings",
    "evaluate_folders",
    "load_manifest",
    "summary_markdown",
    "write_outputs",
]
