"""``nnts pseudo-label``: a trained teacher's box-region predictions over a weak set.

Output folder::

    OUT/<case>.nii.gz        pseudo mask (uint8 0/1) on the CT's own grid
    OUT/qc/<case>.json       QC record of the case (written after its mask: a case is finished when both exist)
    OUT/provenance.json      the teacher (model folder, checkpoint SHA-256 per fold, folds, mode, margin, TTA)
    OUT/qc.csv, qc.json      QC table of all finished cases + summary + filter results
    OUT/excluded.json        {"excluded": {case: [failed filters]}}: cases dropped by --filter-mode drop
    OUT/probabilities/       the teacher's tumour probability per case (``save_probabilities``)

Every file is written to a hidden temporary name and renamed, so a killed run leaves no truncated file
and a rerun skips the finished cases and redoes the rest; the result equals an uninterrupted run. Cases
are sorted and part ``k`` of ``N`` takes ``cases[k::N]`` (like ``nnUNetv2_predict -num_parts/-part_id``),
so parts can run on separate GPUs/machines into the same folder; each part refreshes the QC table at its
end (a rerun with every case finished only refreshes it).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from dataclasses import replace
from typing import Callable, Mapping, Sequence

from tqdm import tqdm

from ..core.errors import InputError
from ..core.files import write_text_atomic, file_sha256
from ..core.geometry import Geometry, array_to_image, write_image_atomic, read_label
from ..core.sharding import part_cases
from ..evaluation.metrics import dice
from ..formats.images import IMAGE_SUFFIX
from ..formats.weak_set import WeakSet
from ..teacher.inference import teacher_predict_case, teacher_mode
from .folder_format import (
    EXCLUDED_FILE,
    PROBABILITY_DIR,
    PROVENANCE_FILE,
    QC_DIR,
    QC_FILE,
    QC_TABLE,
    probability_file,
)
from .qc import FILTERS, case_qc, failed_filters, write_qc_table
from .settings import PseudoLabelSettings

# provenance entries that must agree before a run may resume into an existing output folder
IDENTITY_KEYS = (
    "checkpoint_sha256",
    "folds",
    "checkpoint",
    "mode",
    "box_margin_mm",
    "tta",
    "ensemble",
    "previous",
)
#: how several folds of a teacher are combined (nnU-Net's predictor averages logits; we average probabilities)
ENSEMBLE_RULE = "mean of the folds' probabilities > 0.5"


def teacher_provenance(
    model_folder: str | Path,
    folds: Sequence[int | str],
    checkpoint: str,
    mode: str,
    box_margin_mm: float,
    tta: bool,
) -> dict:
    """Who made the pseudo masks. ``checkpoint_sha256`` is the checkpoint file's SHA-256 for one fold,
    else the SHA-256 of the per-fold hashes (``checkpoint_sha256_per_fold``)."""
    folder = Path(model_folder).resolve()
    per_fold = {}
    for f in folds:
        ckpt = folder / f"fold_{f}" / checkpoint
        if not ckpt.is_file():
            raise InputError(f"{ckpt}: checkpoint missing (train fold {f} first, or pick -f/-chk)")
        per_fold[str(f)] = file_sha256(ckpt)
    combined = (
        next(iter(per_fold.values()))
        if len(per_fold) == 1
        else hashlib.sha256(json.dumps(per_fold, sort_keys=True).encode()).hexdigest()
    )
    parts = folder.name.split("__")
    return {
        "teacher_model_folder": str(folder),
        "dataset": folder.parent.name,
        "trainer": parts[0],
        "plans": parts[1] if len(parts) > 1 else None,
        "configuration": parts[2] if len(parts) > 2 else None,
        "folds": [str(f) for f in folds],
        "checkpoint": checkpoint,
        "checkpoint_sha256": combined,
        "checkpoint_sha256_per_fold": per_fold,
        "mode": mode,
        "box_margin_mm": float(box_margin_mm),
        "tta": bool(tta),
    }


def _is_finished(out: Path, case: str, probabilities: bool = False) -> bool:
    return (
        (out / f"{case}{IMAGE_SUFFIX}").is_file()
        and (out / QC_DIR / f"{case}.json").is_file()
        and (not probabilities or probability_file(out, case).is_file())
    )


def _remove_stale_temps(out: Path, cases: Sequence[str]) -> int:
    """Delete hidden temporary files a killed run left for ``cases`` (names ``.<case>.*.tmp*``)."""
    prefixes = tuple(f".{c.split('.')[0]}." for c in cases)
    n = 0
    for folder in (out, out / QC_DIR, out / PROBABILITY_DIR):
        if folder.is_dir():
            for p in folder.iterdir():
                if p.is_file() and p.name.startswith(prefixes) and ".tmp" in p.name:
                    p.unlink()
                    n += 1
    return n


def _remove_outputs(out: Path, cases: Sequence[str]) -> None:
    """Remove what an earlier run (another teacher) wrote for ``cases`` and the aggregated files."""
    for c in cases:
        for p in (out / f"{c}{IMAGE_SUFFIX}", out / QC_DIR / f"{c}.json", probability_file(out, c)):
            p.unlink(missing_ok=True)
    for name in (QC_TABLE, QC_FILE, EXCLUDED_FILE, PROVENANCE_FILE):
        (out / name).unlink(missing_ok=True)


def _check_provenance(out: Path, prov: dict, cases: Sequence[str], overwrite: bool) -> None:
    path = out / PROVENANCE_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON ({e}); remove it or pass --overwrite") from e
        diff = [k for k in IDENTITY_KEYS if old.get(k) != prov.get(k)]
        if not diff:
            return
        if not overwrite:
            raise InputError(
                f"{path}: {out} holds pseudo masks of another teacher or setting (differs in "
                f"{', '.join(diff)}: {[old.get(k) for k in diff]} vs {[prov.get(k) for k in diff]}); "
                "choose another output folder or pass --overwrite to replace them"
            )
        _remove_outputs(out, cases)
    write_text_atomic(json.dumps(prov, indent=1), path)


def _check_filters(
    filters: Mapping[str, float | None] | None, filter_mode: str
) -> dict[str, float]:
    if filter_mode not in ("flag", "drop"):
        raise InputError(f"--filter-mode must be flag or drop, got {filter_mode!r}")
    filters = {k: v for k, v in (filters or {}).items() if v is not None}
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise InputError(f"unknown QC filter(s) {unknown} (known: {', '.join(FILTERS)})")
    return filters


def aggregate_qc(
    out_dir: str | Path,
    cases: Sequence[str],
    filters: Mapping[str, float | None] | None = None,
    filter_mode: str = "flag",
) -> dict:
    """QC table of the finished ``cases`` with filter flags; in ``drop`` mode the failing cases go
    to ``excluded.json`` (else it lists none). Idempotent; returns the ``qc.json`` document."""
    filters = _check_filters(filters, filter_mode)
    out = Path(out_dir)
    records, missing = [], []
    for case in sorted(cases):
        if not _is_finished(out, case):
            missing.append(case)
            continue
        record = json.loads((out / QC_DIR / f"{case}.json").read_text())
        record["flags"] = failed_filters(record, filters)
        records.append(record)
    removed = {name: [r["case"] for r in records if name in r["flags"]] for name in filters}
    failing = {r["case"]: r["flags"] for r in records if r["flags"]}
    excluded = failing if filter_mode == "drop" else {}
    extra = {
        "complete": not missing,
        "cases_expected": len(cases),
        "missing": missing,
        "filters": filters,
        "filter_mode": filter_mode,
        "removed_by_filter": {k: len(v) for k, v in removed.items()},
        "removed_cases": removed,
        "failing_any_filter": len(failing),
        "excluded": sorted(excluded),
    }
    doc = write_qc_table(records, out, extra)
    write_text_atomic(
        json.dumps(
            {"filter_mode": filter_mode, "filters": filters, "excluded": excluded}, indent=1
        ),
        out / EXCLUDED_FILE,
    )
    return doc


def pseudo_label(
    weak_dir: str | Path,
    out_dir: str | Path,
    settings: PseudoLabelSettings,
    num_parts: int = 1,
    part_id: int = 0,
) -> dict:
    """Pseudo-label part ``part_id`` of ``num_parts`` of the cases of ``weak_dir`` into ``out_dir`` (resumable);
    returns a summary. ``settings.teacher="classical"``: the rule of :mod:`..teacher.box_rule` instead of a
    trained model. ``labels_dir``: the weak cases' true masks for the QC's ``dice_vs_truth`` (default: the weak
    set's ``labels/``). ``save_probabilities``: also write the teacher's tumour probability per case
    (``OUT/probabilities/``). Several ``folds``: an ensemble (:class:`..teacher.ensemble.TeacherEnsemble`), with
    the members' disagreement per case in the QC. ``previous``: the pseudo-label folder of the previous
    noisy-student round; each case's ``label_change`` (1 - DSC against its label there) goes into the QC."""
    weak = WeakSet(Path(weak_dir), settings.labels_dir)
    out = Path(out_dir)
    all_cases = weak.case_ids()
    mine = part_cases(all_cases, num_parts, part_id)
    settings, prov = _checked_teacher(weak, out, mine, settings)
    todo = [
        c
        for c in mine
        if settings.overwrite or not _is_finished(out, c, settings.save_probabilities)
    ]
    first = (
        weak.read_case(todo[0]) if todo else None
    )  # and the first image in full, before the output exists
    out.mkdir(parents=True, exist_ok=True)
    _check_provenance(out, prov, all_cases, settings.overwrite)
    _remove_stale_temps(out, mine)
    t_start = time.perf_counter()
    seconds: list[float] = []
    if todo:
        labeller = _CaseLabeller(weak, out, settings, prov)
        bar = tqdm(
            todo,
            desc=f"nnts pseudo-label (part {part_id}/{num_parts})",
            unit="case",
            disable=settings.quiet,
        )
        for case in bar:
            seconds.append(labeller.label(case, first if case == todo[0] else None))
            bar.set_postfix_str(f"{case} {seconds[-1]:.1f}s")
    doc = aggregate_qc(out, all_cases, settings.filters, settings.filter_mode)
    counts = {
        "cases_total": len(all_cases),
        "num_parts": num_parts,
        "part_id": part_id,
        "cases_in_part": len(mine),
        "predicted": len(seconds),
        "skipped": len(mine) - len(todo),
    }
    return _summary(out, counts, seconds, time.perf_counter() - t_start, doc)


def _checked_teacher(
    weak: WeakSet, out: Path, mine: Sequence[str], settings: PseudoLabelSettings
) -> tuple[PseudoLabelSettings, dict]:
    """Check the run before anything is written: the output folder, the filters, the teacher, this part's weak
    cases and the previous round's folder. Returns the settings with the teacher's mode and the provenance."""
    if out.resolve() in {
        p.resolve() for p in (weak.images, weak.boxes, weak.boxmasks, weak.labels)
    }:
        raise InputError(
            f"{out}: output folder is a folder of the weak set itself; choose another one"
        )
    _check_filters(settings.filters, settings.filter_mode)
    settings, prov = _teacher_provenance(settings)
    prov["weak_dir"] = str(weak.root.resolve())
    for case in (
        mine
    ):  # headers and box files of every case first: nothing is written for a broken weak set
        weak.check_case(case)
    if settings.previous is not None:
        _check_previous(settings.previous, out, mine)
        prov["previous"] = str(settings.previous.resolve())
    if settings.save_probabilities and settings.teacher == "classical":
        raise InputError(
            "--save-probabilities needs a trained teacher: the classical rule has no probabilities"
        )
    return settings, prov


def _teacher_provenance(settings: PseudoLabelSettings) -> tuple[PseudoLabelSettings, dict]:
    """The provenance of the settings' teacher, and the settings with the model's mode resolved."""
    if settings.teacher == "classical":
        from ..teacher.box_rule import ClassicalTeacher

        return settings, ClassicalTeacher(box_margin_mm=settings.box_margin_mm).provenance()
    if settings.teacher != "model":
        raise InputError(f"unknown teacher {settings.teacher!r} (model or classical)")
    if settings.model_folder is None:
        raise InputError(
            "pseudo-labelling needs a trained teacher (-m MODEL_FOLDER) or --teacher classical"
        )
    settings = replace(settings, mode=settings.mode or teacher_mode(settings.model_folder))
    prov = teacher_provenance(
        settings.model_folder,
        settings.folds,
        settings.checkpoint,
        settings.mode,
        settings.box_margin_mm,
        settings.tta,
    )
    if len(settings.folds) > 1:
        prov["ensemble"] = ENSEMBLE_RULE
    return settings, prov


def _check_previous(previous: Path, out: Path, mine: Sequence[str]) -> None:
    """The previous round's folder is not the output folder and holds a pseudo-label of each case."""
    if previous.resolve() == out.resolve():
        raise InputError(
            f"{previous}: the previous round's pseudo-labels cannot be the output folder"
        )
    lacking = [c for c in mine if not (previous / f"{c}{IMAGE_SUFFIX}").is_file()]
    if lacking:
        raise InputError(
            f"{previous}: no pseudo-label of {len(lacking)} case(s) of the weak set, e.g. "
            f"{previous / (lacking[0] + IMAGE_SUFFIX)} (not the previous round's folder?)"
        )


def _case_predictor(settings: PseudoLabelSettings) -> Callable:
    """``predict(ct, boxset) -> (TeacherPrediction, extra QC entries)`` of the settings' teacher."""
    if settings.teacher == "classical":
        from ..teacher.box_rule import ClassicalTeacher

        rule = ClassicalTeacher(box_margin_mm=settings.box_margin_mm)

        def predict(ct, boxset):
            return rule.predict(ct, boxset), {}
    elif len(settings.folds) > 1:
        from ..teacher.ensemble import TeacherEnsemble

        ensemble = TeacherEnsemble(*_model_args(settings))

        def predict(ct, boxset):
            return ensemble.predict(ct, boxset, settings.mode, settings.box_margin_mm)
    else:
        from ..prediction.region import RegionPredictor

        predictor = RegionPredictor(*_model_args(settings))

        def predict(ct, boxset):
            return teacher_predict_case(
                predictor, ct, boxset, settings.mode, settings.box_margin_mm
            ), {}

    return predict


def _model_args(settings: PseudoLabelSettings) -> tuple:
    """(model folder, folds, checkpoint, device, tta): how the teacher's networks are loaded."""
    return (
        settings.model_folder,
        settings.folds,
        settings.checkpoint,
        settings.device,
        settings.tta,
    )


class _CaseLabeller:
    """Predicts one weak case with the teacher and writes its mask, probability and QC record."""

    def __init__(self, weak: WeakSet, out: Path, settings: PseudoLabelSettings, prov: dict) -> None:
        self.weak, self.out, self.settings, self.prov = weak, out, settings, prov
        self.predict = _case_predictor(settings)

    def label(self, case: str, loaded: tuple | None = None) -> float:
        """Pseudo-label ``case`` (``loaded``: its CT and boxes, already read); returns the seconds it took."""
        t0 = time.perf_counter()
        weak, out, previous = self.weak, self.out, self.settings.previous
        ct, boxset = loaded if loaded is not None else weak.read_case(case)
        pred, extra = self.predict(ct, boxset)
        geometry = Geometry.of(ct)
        truth = read_label(weak.label_path(case), ct) if weak.has_labels(case) else None
        record = {"case": case, **case_qc(pred, boxset, geometry.spacing, truth), **extra}
        if previous is not None:
            before = read_label(previous / f"{case}{IMAGE_SUFFIX}", ct) > 0
            record["label_change"] = 1.0 - dice(before, pred.mask > 0)
        if self.settings.save_probabilities:
            write_image_atomic(
                array_to_image(pred.probability.astype("float32"), geometry),
                probability_file(out, case),
            )
        write_image_atomic(array_to_image(pred.mask, geometry), out / f"{case}{IMAGE_SUFFIX}")
        record["seconds"] = time.perf_counter() - t0
        record["teacher_checkpoint_sha256"] = self.prov["checkpoint_sha256"]
        write_text_atomic(json.dumps(record, indent=1), out / QC_DIR / f"{case}.json")
        return record["seconds"]


def _summary(out: Path, counts: dict, seconds: list[float], total: float, doc: dict) -> dict:
    """The run's summary: the case ``counts``, the timings and the QC document's totals."""
    return {
        "out_dir": str(out),
        **counts,
        "seconds_total": total,
        "seconds_per_case": sum(seconds) / len(seconds) if seconds else None,
        "complete": doc["complete"],
        "missing": len(doc["missing"]),
        "qc": doc["summary"],
        "removed_by_filter": doc["removed_by_filter"],
        "failing_any_filter": doc["failing_any_filter"],
        "excluded": len(doc["excluded"]),
        "filter_mode": doc["filter_mode"],
    }
