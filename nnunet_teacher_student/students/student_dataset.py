"""Student datasets: strong cases (true masks) + weak cases (teacher pseudo masks) as nnU-Net raw data.

Forms:
- ``so``: labels ``{"background": 0, "tumor": 1}``;
- ``do``: region labels for the dual-output student, voxels 0 background, 1 box without tumour,
  2 tumour; ``"labels": {"background": 0, "box": [1, 2], "tumor": 2}``, ``regions_class_order [1, 2]``;
  boxes of strong cases are derived from their true masks;
- ``ignore``: nnU-Net's own answer to boxes, no teacher: strong cases keep their masks, weak cases are
  background outside their boxes and nnU-Net's ignore label (2) inside them.

Uncertainty-aware ``so``/``do`` (``uncertain_band=(lo, hi)``, from ``nnts calibrate-band``): inside a weak
case's boxes (dilated like the teacher's constraint) voxels whose teacher probability is in ``[lo, hi)``
get nnU-Net's ignore label (``so``: 2, ``do``: 3, in no region), the rest keeps the teacher's mask (outside
the boxes: background). Probabilities come from ``nnts pseudo-label --save-probabilities``.

Giving the weak set's own ``labels/`` folder as the pseudo masks builds the upper bound (true masks
for every case); provenance then says ``weak-true`` instead of ``pseudo``.

``splits_final.json`` (written to the preprocessed folder, where nnU-Net reads it, and beside the raw
dataset): validation folds hold strong cases only, grouped by patient; pseudo-labelled cases are in
every training fold; test cases are never in the dataset. ``dataset.json`` carries provenance
(``nnts_provenance``: per case strong/pseudo, source, teacher checkpoint hash), optional crop boxes
(``nnts_crops``) and optional size-balanced sampling weights (``nnts_sampling_weights``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from ..core.defaults import BOX_MARGIN_MM
from ..core import dataset_keys as keys
from ..core.errors import InputError
from ..core.geometry import Geometry, read_image, read_label, spacing_zyx
from ..lungs.cropping import crop_image, lung_crop_boxes
from ..formats.boxes import boxes_from_mask, box_mask
from ..formats.images import IMAGE_SUFFIX
from ..formats.weak_set import WeakSet
from ..nnunet.folds import install_splits, load_manifest_cases, make_splits, write_splits
from ..nnunet.raw_dataset import (
    SAMPLING_WEIGHTS_KEY,
    find_raw_dataset,
    link_or_copy,
    staged_dataset,
    training_cases,
    write_dataset_json,
)
from ..pseudo_labels.folder_format import (
    EXCLUDED_FILE,
    PROBABILITY_DIR,
    PROVENANCE_FILE,
    probability_file,
)
from .settings import Form, StudentDatasetSettings

LABELS = {
    "so": {"background": 0, "tumor": 1},
    "do": {"background": 0, "box": [1, 2], "tumor": 2},
    "ignore": {"background": 0, "tumor": 1, "ignore": 2},
}
IGNORE_VALUE = 2
#: the uncertainty-aware forms' labels: the ignore label is nnU-Net's highest label, in no region
UNCERTAIN_LABELS = {
    "so": {"background": 0, "tumor": 1, "ignore": 2},
    "do": {"background": 0, "box": [1, 2], "tumor": 2, "ignore": 3},
}


def size_balance_weights(volumes_ml: dict[str, float], n_bins: int = 4) -> dict[str, int]:
    """Repeats per case so that each tumour-volume quantile bin is drawn about equally often."""
    cases = sorted(volumes_ml)
    if len(cases) < n_bins:
        return {c: 1 for c in cases}
    v = np.array([volumes_ml[c] for c in cases])
    edges = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1])
    bins = np.digitize(v, edges)
    counts = np.bincount(bins, minlength=n_bins)
    top = counts.max()
    return {c: int(round(top / counts[b])) for c, b in zip(cases, bins)}


def _do_label(tumour: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    return np.maximum(boxes.astype(np.uint8), 2 * (tumour > 0).astype(np.uint8))


def _label(form: Form, tumour: np.ndarray | None, boxes: np.ndarray | None) -> np.ndarray:
    """The label array of a case: ``tumour`` is None for a weak case of the ``ignore`` form."""
    if form == "do":
        return _do_label(tumour, boxes)
    if form == "ignore" and tumour is None:
        return np.where(boxes > 0, IGNORE_VALUE, 0).astype(np.uint8)
    return (tumour > 0).astype(np.uint8)


def _volume_ml(mask: np.ndarray, image: sitk.Image) -> float:
    return float(mask.sum() * np.prod(image.GetSpacing()) / 1000.0)


class _CaseWriter:
    """Writes one case (CT + label) into a staged dataset, cropping to the lungs when asked."""

    def __init__(
        self, out: Path, form: Form, crop: str | None, lung_weights: str | None, margin_mm: float
    ):
        self.out, self.form, self.crop = out, form, crop
        self.lung_weights, self.margin_mm = lung_weights, margin_mm
        self.crops: dict[str, dict] = {}

    def write(
        self,
        case: str,
        ct_path: Path,
        ct: sitk.Image,
        tumour: np.ndarray | None,
        boxes: np.ndarray | None,
        unsure: np.ndarray | None = None,
    ) -> None:
        label = _label(self.form, tumour, boxes)
        if unsure is not None:
            label[unsure] = UNCERTAIN_LABELS[self.form]["ignore"]
        label_img = sitk.GetImageFromArray(label)
        label_img.CopyInformation(ct)
        img_dst = self.out / "imagesTr" / f"{case}_0000{IMAGE_SUFFIX}"
        lab_dst = self.out / "labelsTr" / f"{case}{IMAGE_SUFFIX}"
        lab_dst.parent.mkdir(parents=True, exist_ok=True)
        if self.crop == "lungs":
            from ..lungs.mask import lung_mask

            lungs = lung_mask(ct, weights=self.lung_weights)
            region = lungs.mask.copy()
            region[label > 0] = (
                1  # never crop a tumour (or a box) away, whatever the lung mask says
            )
            box = lung_crop_boxes(region, spacing_zyx(ct), self.margin_mm)[0]
            self.crops[case] = {
                "box": box.to_dict(),
                "geometry": Geometry.of(ct).to_dict(),
                "lung_method": lungs.method,
            }
            img_dst.parent.mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(crop_image(ct, box), str(img_dst), useCompression=True)
            sitk.WriteImage(crop_image(label_img, box), str(lab_dst), useCompression=True)
        else:
            link_or_copy(ct_path, img_dst)
            sitk.WriteImage(label_img, str(lab_dst), useCompression=True)


def make_student_dataset(settings: StudentDatasetSettings) -> Path:
    """Write the student dataset; without ``pseudo_dir`` it holds strong cases only (the baseline), except
    for the ``ignore`` form, which takes the weak set's boxes and no pseudo masks. ``uncertain_band``: the
    uncertainty-aware form (see the module text)."""
    s = settings
    _check_form(s)
    found = _find_cases(s)
    ignored = 0
    provenance: dict[str, dict] = {}
    volumes: dict[str, float] = {}
    with staged_dataset(s.dataset_id, s.name, s.overwrite) as out:
        writer = _CaseWriter(out, s.form, s.crop, s.lung_weights, s.crop_margin_mm)
        for case in tqdm(
            found.strong_cases, desc=f"student dataset ({s.form}, strong)", unit="case"
        ):
            ct_path = found.src / "imagesTr" / f"{case}_0000{IMAGE_SUFFIX}"
            ct = read_image(ct_path)
            tumour = read_label(found.src / "labelsTr" / f"{case}{IMAGE_SUFFIX}", ct)
            boxes = box_mask(boxes_from_mask(tumour), tumour.shape) if s.form == "do" else None
            writer.write(case, ct_path, ct, tumour, boxes)
            provenance[case] = {
                "kind": "strong",
                "source": found.meta.get(case, {}).get("site", found.src.name),
            }
            volumes[case] = _volume_ml(tumour, ct)
        for case in tqdm(found.weak_cases, desc=f"student dataset ({s.form}, weak)", unit="case"):
            provenance[case], volumes[case], n = _write_weak_case(s, found, writer, case)
            ignored += n
        extra = _dataset_extra(s, provenance, found.teacher, found.margin_mm, ignored)
        if writer.crops:
            extra[keys.CROPS] = writer.crops
        if s.size_balance:
            extra[SAMPLING_WEIGHTS_KEY] = size_balance_weights(volumes)
        patients = {c: str(v.get("patient", c)) for c, v in found.meta.items()}
        write_splits(
            out, make_splits(found.strong_cases, found.weak_cases, patients, s.n_folds, s.seed)
        )
        labels = UNCERTAIN_LABELS[s.form] if s.uncertain_band is not None else LABELS[s.form]
        n_cases = len(found.strong_cases) + len(found.weak_cases)
        write_dataset_json(out, {"0": "CT"}, labels, n_cases, **extra)
    return install_splits(s.dataset_id)


def _check_form(s: StudentDatasetSettings) -> None:
    """Refuse an unknown form and weak/pseudo/band inputs that do not go with it."""
    if s.form not in LABELS:
        raise InputError(f"unknown student dataset form {s.form!r} (so, do or ignore)")
    if s.uncertain_band is not None and (s.form == "ignore" or s.pseudo_dir is None):
        raise InputError(
            "--uncertain-band needs --form so or do with --pseudo (a teacher's pseudo masks)"
        )
    if s.form == "ignore":
        if s.weak_dir is None or s.pseudo_dir is not None:
            raise InputError(
                "the ignore form needs --weak (its boxes become the ignore label) and no --pseudo"
            )
    elif (s.weak_dir is None) != (s.pseudo_dir is None):
        raise InputError(
            "give both --weak and --pseudo (pseudo masks of that weak set), or neither"
        )


@dataclass
class _Cases:
    """The inputs of a student dataset: the strong dataset's cases, the weak set's and their pseudo masks."""

    src: Path
    meta: dict[str, dict]
    strong_cases: list[str]
    weak: WeakSet | None
    weak_cases: list[str]
    pseudo_root: Path | None
    teacher: dict  # the pseudo-labels' provenance (the teacher's checkpoint, box margin)
    true_labels: bool  # the pseudo masks are the weak set's true labels (the upper bound)
    margin_mm: float


def _find_cases(s: StudentDatasetSettings) -> _Cases:
    """The cases to write (test cases and those the pseudo-label QC excluded left out), checked for their
    pseudo masks and teacher probabilities."""
    src = find_raw_dataset(s.strong)
    meta = load_manifest_cases(s.manifest)
    exclude = set(s.exclude) | {c for c, v in meta.items() if v.get("split") == "test"}
    strong_cases = [c for c in training_cases(src) if c not in exclude]
    weak = WeakSet(Path(s.weak_dir)) if s.weak_dir else None
    pseudo_root = Path(s.pseudo_dir) if s.pseudo_dir else None
    teacher = {}
    if pseudo_root is not None:
        prov = pseudo_root / PROVENANCE_FILE
        teacher = json.loads(prov.read_text()) if prov.is_file() else {}
    excluded_file = pseudo_root / EXCLUDED_FILE if pseudo_root else None
    if (
        excluded_file is not None and excluded_file.is_file()
    ):  # cases dropped by pseudo-label QC filters
        exclude |= set(json.loads(excluded_file.read_text()).get("excluded", {}))
    weak_cases = [c for c in (weak.case_ids() if weak else []) if c not in exclude]
    missing = (
        [c for c in weak_cases if not (pseudo_root / f"{c}{IMAGE_SUFFIX}").is_file()]
        if pseudo_root
        else []
    )
    true_labels = (
        pseudo_root is not None
        and weak is not None
        and pseudo_root.resolve() == weak.labels.resolve()
    )
    if missing:
        raise InputError(
            f"{pseudo_root}: no pseudo mask for weak case(s) {missing[:5]} (run nnts pseudo-label)"
        )
    if s.uncertain_band is not None:
        no_prob = [c for c in weak_cases if not probability_file(pseudo_root, c).is_file()]
        if no_prob:
            raise InputError(
                f"{pseudo_root / PROBABILITY_DIR}: no teacher probability for weak case(s) "
                f"{no_prob[:5]} (run nnts pseudo-label --save-probabilities)"
            )
    margin_mm = float(teacher.get("box_margin_mm", BOX_MARGIN_MM))
    clash = sorted(set(strong_cases) & set(weak_cases))
    if clash:
        raise InputError(f"case ids in both the strong dataset and the weak set: {clash[:5]}")
    return _Cases(
        src, meta, strong_cases, weak, weak_cases, pseudo_root, teacher, true_labels, margin_mm
    )


def _write_weak_case(
    s: StudentDatasetSettings, found: _Cases, writer: _CaseWriter, case: str
) -> tuple[dict, float, int]:
    """Write one weak case; its provenance, tumour (or box) volume and voxels given the ignore label."""
    weak, pseudo_root = found.weak, found.pseudo_root
    ct, boxset = weak.read_case(case)
    tumour = read_label(pseudo_root / f"{case}{IMAGE_SUFFIX}", ct) if pseudo_root else None
    unsure = (
        _unsure(
            probability_file(pseudo_root, case),
            ct,
            boxset.mask(),
            s.uncertain_band,
            found.margin_mm,
        )
        if s.uncertain_band is not None
        else None
    )
    writer.write(
        case,
        weak.image_path(case),
        ct,
        tumour,
        boxset.mask() if s.form != "so" else None,
        unsure,
    )
    kind = (
        "weak-true"
        if found.true_labels
        else "weak-boxes-ignored"
        if s.form == "ignore"
        else "pseudo"
    )
    provenance = {
        "kind": kind,
        "source": found.meta.get(case, {}).get("site", weak.root.name),
        "teacher": found.teacher.get("checkpoint_sha256"),
    }
    volume = _volume_ml(tumour if tumour is not None else boxset.mask(), ct)
    return provenance, volume, int(unsure.sum()) if unsure is not None else 0


def _dataset_extra(
    s: StudentDatasetSettings, provenance: dict, teacher: dict, margin_mm: float, ignored: int
) -> dict:
    """Our keys of the dataset's ``dataset.json``: form, provenance, teacher, band, region order."""
    extra = {
        "name": s.name,
        keys.FORM: s.form,
        keys.PROVENANCE: provenance,
        keys.TEACHER: teacher or None,
    }
    if s.form == "do":
        extra["regions_class_order"] = [1, 2]
    if s.uncertain_band is not None:
        extra[keys.UNCERTAIN_BAND] = {
            "band": list(s.uncertain_band),
            "ignored_voxels": ignored,
            "box_margin_mm": margin_mm,
        }
    return extra


def _unsure(
    probability_path: Path,
    ct: sitk.Image,
    boxes: np.ndarray,
    band: tuple[float, float],
    margin_mm: float,
) -> np.ndarray:
    """Voxels inside the dilated boxes whose teacher probability lies in ``[lo, hi)``."""
    from ..teacher.inference import dilate_in_plane

    probability = sitk.GetArrayFromImage(read_image(probability_path))
    if probability.shape != boxes.shape:
        raise InputError(
            f"{probability_path}: shape {probability.shape} differs from its CT's {boxes.shape}"
        )
    lo, hi = band
    inside = dilate_in_plane(boxes, spacing_zyx(ct), margin_mm)
    return inside & (probability >= lo) & (probability < hi)
